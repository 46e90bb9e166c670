#!/usr/bin/env bash
# tollgatectl verify: from inside a pod's netns the agent tries every known way around the node
# (direct TCP/UDP/ICMP, IPv6, raw IP, TCP Fast Open, uid 1337, SO_MARK with the proxy's mark,
# loopback aliases, the proxy's own port, DNS to a resolver of its own, DoT, QUIC) as the pod's
# uid, as uid 1337 and as root without and with NET_ADMIN/NET_RAW, and judges each from its own
# counters and journal (in ebpf mode the probes run in a child process in the pod's cgroup). On a
# healthy pod all are refused and nothing reaches tg-net. Then one pod's redirect (table, or
# programs) and the host fence are deleted with the agent's reconciler off: verify exits 1 naming
# the vectors, and tg-net's witness confirms that what it called leaks did arrive there. The agent
# restarted with its reconciler puts both back and verify passes again.
source "$(dirname "$0")/lib.sh"
expected "verify default/client exit 0, every check PASS (tcp redirected to the proxy, udp dropped by" \
  "the pod's rules, so-mark as root+net_admin dropped by the host fence in nftables mode," \
  "redirected to the proxy in ebpf mode), witness from_pods +0; pod redirect + fence deleted (no" \
  "reconciler): verify default/leaky exit 1, rules/fence/tcp/udp/so-mark FAIL with LEAK, witness" \
  "from_pods > 0; agent restarted: verify default/leaky exit 0"
# In ebpf mode the probes run in a child process in the pod's cgroup (where its programs are); a
# packet mark changes nothing there, so a marked TCP connect is redirected like any other, where
# the nftables mode lets the proxy's mark out of the pod and the fence drops it.

ctl() { "$LAB_TOLLGATECTL" "$@" --run-dir "$LAB_AGENT_RUN_DIR"; }
[[ -x $LAB_TOLLGATECTL ]] || fail "no tollgatectl at $LAB_TOLLGATECTL"
# Free addresses of tg-net (docs/lab.md: .200-.254 stay free for tests): the node routes them off
# the node, nothing listens there, and the witness counts what arrives.
target=198.18.0.250
target6=fd00:198:18::250
pod=leaky
broken=0
cleanup() {
  ((broken)) && lab agent restart >/dev/null 2>&1
  lab del-pod "$pod" >/dev/null 2>&1
}
trap cleanup EXIT
SCRATCH_POD_TRAP=0 scratch_pod "$pod" --namespace default
require_protected client
require_protected "$pod"

# judge <json> <expect: pass|leak>: checks the verify reply; prints a summary.
judge() {
  python3 - "$1" "$2" "$(lab_mode)" <<'PY'
import json, sys
doc, want, mode = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
checks = doc.get("checks", [])
by = {(c["vector"], c.get("user", "")): c for c in checks}
def outcome(v, u=""): return by.get((v, u), {}).get("outcome", "(missing)")
problems = []
if len(checks) < 25: problems.append(f"only {len(checks)} checks")
failed = [c for c in checks if not c.get("passed")]
if want == "pass":
    problems += [f"{c['vector']} as {c.get('user') or '-'}: {c.get('outcome')}" for c in failed]
    for (v, u), start in {("tcp", "pod-uid"): "redirected to the proxy",
                          ("tcp", "uid-1337"): "redirected to the proxy",
                          ("udp", "pod-uid"): "dropped by the pod's rules (drop_udp",
                          ("so-mark", "root+net_admin"): "dropped by the host fence (fence_drop"
                          if mode == "nftables" else "redirected to the proxy",
                          ("proxy-port", "pod-uid"): "refused by the proxy itself",
                          ("dns", "pod-uid"): "redirected to the DNS proxy",
                          ("dot", "pod-uid"): "dropped by the pod's rules (drop_dot"}.items():
        if not outcome(v, u).startswith(start): problems.append(f"{v} as {u}: {outcome(v, u)!r}")
    summary = f"{len(checks)} checks passed"
else:
    for v, u in [("rules", ""), ("fence", ""), ("tcp", "pod-uid"), ("udp", "pod-uid"),
                 ("icmp", "root+net_admin"), ("so-mark", "root+net_admin"), ("quic", "pod-uid")]:
        c = by.get((v, u))
        if c is None or c.get("passed"): problems.append(f"{v} as {u or '-'} passed: {outcome(v, u)!r}")
    for v, u in [("tcp", "pod-uid"), ("udp", "pod-uid"), ("so-mark", "root+net_admin")]:
        if not outcome(v, u).startswith("LEAK: "): problems.append(f"{v} as {u}: {outcome(v, u)!r}")
    summary = f"{len(failed)} of {len(checks)} FAILED: " + ", ".join(
        sorted({c["vector"] for c in failed}))
print("; ".join(problems) if problems else summary)
sys.exit(1 if problems else 0)
PY
}

# 1. Healthy: every vector refused, nothing arrives beyond the node.
w0=$(witness from_pods)
rc=0
json=$(ctl verify default/client --target "$target" --target6 "$target6" -o json 2>&1) || rc=$?
((rc == 0)) || fail "verify default/client exit $rc on a healthy pod"
verdict=$(judge "$json" pass) || fail "healthy verify: $verdict"
observe "healthy client: $verdict"
w1=$(witness from_pods)
((w1 == w0)) || fail "tg-net saw $((w1 - w0)) packet(s) from pods during a healthy verify"
table=$(ctl verify default/client --target "$target" --target6 "$target6" 2>&1) ||
  fail "verify (table) exit $?: $(tail -n 3 <<<"$table")"
grep -q '^default/client: no way around the node found' <<<"$table" ||
  fail "table verdict: $(tail -n 1 <<<"$table")"
observe "table: $(tail -n 1 <<<"$table")"

# 2. Both defences broken (the pod's table, or its programs detached), nothing to repair them:
# verify must say so, vector by vector.
broken=1
TOLLGATE_AGENT_EXTRA_ARGS="--reconcile-interval 0" lab agent restart >/dev/null 2>&1 ||
  fail "agent restart with --reconcile-interval 0 failed"
remove_redirect "$pod" >/dev/null || fail "removing the pod's redirect failed"
ip netns exec "$LAB_NS_NODE" nft delete table inet tollgate_fence || fail "deleting the fence failed"
w0=$(witness from_pods)
rc=0
json=$(ctl verify "default/$pod" --target "$target" --target6 "$target6" -o json 2>&1) || rc=$?
((rc == 1)) || fail "verify default/$pod exit $rc with its table and the fence gone (want 1)"
verdict=$(judge "$json" leak) || fail "broken verify: $verdict"
observe "broken $pod: exit $rc, $verdict"
w1=$(witness from_pods)
((w1 > w0)) || fail "verify reported leaks but tg-net's witness saw nothing arrive"
observe "tg-net witness from_pods +$((w1 - w0)) during the broken verify"

# 3. The agent restarted as the lab runs it re-installs the fence and re-adopts the pod.
lab agent restart >/dev/null 2>&1 || fail "agent restart failed"
broken=0
rc=0
json=$(ctl verify "default/$pod" --target "$target" --target6 "$target6" -o json 2>&1) || rc=$?
((rc == 0)) || fail "verify default/$pod exit $rc after the restart repaired it"
verdict=$(judge "$json" pass) || fail "repaired verify: $verdict"
observe "repaired $pod: $verdict"
finish
