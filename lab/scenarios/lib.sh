# shellcheck shell=bash disable=SC2034  # variables here are used by the scenarios
# Sourced by every lab scenario (lab/scenarios/NN-name.sh). A scenario prints one "expected: ..."
# line and one "observed: ..." line, and exits 0 for PASS, 77 to skip (not root), anything else
# for FAIL. It assumes `tollgate-lab up` has run (ctest fixture e2e.lab-up, or tollgate-lab demo).
set -uo pipefail

SCENARIO_DIR=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
LAB=${TOLLGATE_LAB:-$(dirname "$SCENARIO_DIR")/tollgate-lab}
# The instance's names (TOLLGATE_LAB_INSTANCE): LAB_STATE, LAB_NS_NODE, LAB_NS_NET, LAB_NS_GW,
# LAB_POD_NS_PREFIX, LAB_AGENT_RUN_DIR, LAB_CGROUP.
eval "$("$LAB" env)" || exit 2
LAB_LOGS=$LAB_STATE/logs
LAB_CA=$LAB_STATE/pki/ca.crt
LAB_CONFIG=$LAB_STATE/config
BLOCKED6=fd00:198:18::13   # blocked.test's IPv6 address in tg-net (tollgate-lab addr -6 blocked.test)
# The egress gateway (tollgate-gateway in tg-gw): every allowed external flow is tunnelled to it.
LAB_GW=198.19.0.6
LAB_GW_PORT=15008
LAB_MESH_CA=$LAB_STATE/ca   # scripts/gen-ca layout: root-cert.pem, ca-cert.pem, ca-key.pem, ...
LAB_GW_ACCESS_LOG=$LAB_LOGS/gateway-access.log
# gw_route <host:port>: the route the agent logs for a flow through the lab's default gateway.
gw_route() { echo "gateway egress($LAB_GW:$LAB_GW_PORT) -> $1"; }

if [[ $EUID -ne 0 ]]; then
  echo "needs root"
  exit 77
fi
if [[ ! -f $LAB_STATE/up ]]; then
  echo "expected: a running lab"
  echo "observed: the lab is not up (run: tollgate-lab up)"
  exit 1
fi

_failures=()
_observed=()

lab() { "$LAB" "$@"; }
lab_addr() { "$LAB" addr "$@"; }  # lab_addr [-6] <name>
# lab_exec <pod> [--root|--uid N] -- cmd...: as a pod would run it.
lab_exec() { "$LAB" exec "$@"; }

expected() { echo "expected: $*"; }
# observe "<text>": adds to the observed line.
observe() { _observed+=("$*"); }
# fail "<why>": records a failure (the scenario still runs to the end).
fail() { _failures+=("$*"); }
check() {  # check <condition description> <cmd...>: records a failure if cmd fails
  local what=$1
  shift
  "$@" || fail "$what"
}

# expect_ok <label> <cmd...>: the command must succeed.
expect_ok() {
  local label=$1 rc=0
  shift
  LAST_OUT=$("$@" 2>&1) || rc=$?
  if ((rc == 0)); then observe "$label: ok"; else
    observe "$label: failed rc=$rc"
    fail "$label: expected success, got rc=$rc: $(tail -c 300 <<<"$LAST_OUT")"
  fi
  return 0
}

# expect_fail <label> <cmd...>: the command must fail (nonzero exit).
expect_fail() {
  local label=$1 rc=0
  shift
  LAST_OUT=$("$@" 2>&1) || rc=$?
  if ((rc != 0)); then observe "$label: refused rc=$rc"; else
    observe "$label: SUCCEEDED"
    fail "$label: expected failure, but it succeeded: $(tail -c 300 <<<"$LAST_OUT")"
  fi
  return 0
}

# server_log_lines <name>: number of requests the named server logged so far.
server_log_lines() {
  local f=$LAB_LOGS/$1.access.log
  [[ -f $f ]] || {
    echo 0
    return
  }
  wc -l <"$f" | tr -d ' '
}

# server_saw <name> <pattern> [since-line]: grep -E the server's access log (after since-line).
server_saw() {
  local f=$LAB_LOGS/$1.access.log since=${3:-0}
  [[ -f $f ]] && tail -n "+$((since + 1))" "$f" | grep -qE -- "$2"
}

# witness <counter>: packets tg-net's witness counters saw (from_pods, from_pods_nondns,
# from_node_nondns (both: not to port 53), from_gateway, to_blocked, to_blocked_udp, any_icmp, any_ipv6); compare before/after to prove that nothing arrived, even what nginx never logs.
witness() {
  ip netns exec "$LAB_NS_NET" nft list counter inet tglab_witness "$1" |
    sed -n 's/.*packets \([0-9]*\).*/\1/p' | head -1
}

# Waits until nginx has flushed the requests of a finished curl (it logs after the response).
settle() { sleep 0.2; }

# pod_curl <pod> [--root|--uid N] -- <curl args...>: runs curl in the pod with -i; sets CURL_RC
# (curl's exit code), CURL_CODE (HTTP status, 000 when none) and CURL_OUT (headers, body, errors).
pod_curl() {
  local pod=$1 opts=()
  shift
  while (($#)) && [[ $1 != -- ]]; do
    opts+=("$1")
    shift
  done
  shift
  CURL_RC=0
  CURL_OUT=$(lab_exec "$pod" "${opts[@]}" -- "${CURL[@]}" -i -w '\n@@code=%{http_code}\n' "$@" 2>&1) ||
    CURL_RC=$?
  CURL_CODE=$(sed -n 's/^@@code=//p' <<<"$CURL_OUT" | tail -1)
  CURL_CODE=${CURL_CODE:-000}
}
denied_header() { grep -qi '^x-tollgate-denied:' <<<"$CURL_OUT"; }

# mark <name>: remembers the server's log length (and, for blocked.test, the witness counter);
# untouched <name>: fails unless nothing new reached it since mark.
declare -A _mark_lines=()
_mark_packets=0
mark() {
  _mark_lines[$1]=$(server_log_lines "$1")
  [[ $1 == blocked.test ]] && _mark_packets=$(witness to_blocked)
  return 0
}
# marked <name>: the log length recorded by mark (for server_saw ... "$(marked name)").
marked() { echo "${_mark_lines[$1]:-0}"; }
untouched() {
  settle
  local lines
  lines=$(($(server_log_lines "$1") - ${_mark_lines[$1]}))
  if [[ $1 == blocked.test ]]; then
    local packets=$(($(witness to_blocked) - _mark_packets))
    observe "$1 log +$lines packets +$packets"
    ((lines == 0 && packets == 0)) || fail "$1 was reached: $lines log lines, $packets packets"
  else
    observe "$1 log +$lines"
    ((lines == 0)) || fail "$1 was reached: $lines new log lines"
  fi
}

# udp_send <pod> [exec opts] -- <addr> <port>: sends 5 datagrams, each one tried even when the
# previous send failed (a drop in the pod's output hook fails sendto with EPERM); prints
# "sent N, failed M (errors)".
udp_send() {
  local pod=$1 opts=()
  shift
  while (($#)) && [[ $1 != -- ]]; do
    opts+=("$1")
    shift
  done
  shift
  lab_exec "$pod" "${opts[@]}" -- python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET, socket.SOCK_DGRAM)
sent, errors = 0, []
for _ in range(5):
    try:
        s.sendto(b"\x0d" + b"q" * 1199, (sys.argv[1], int(sys.argv[2])))  # QUIC-sized datagrams
        sent += 1
    except OSError as e:
        errors.append(e.strerror)
print(f"sent {sent}, failed {len(errors)}" + (f" ({errors[0]})" if errors else ""))
' "$@" 2>&1
}

# lab_mode: nftables or ebpf, as the lab was brought up.
lab_mode() { cat "$LAB_STATE/mode" 2>/dev/null || echo nftables; }

# only_in_mode <mode> <why>: ends the scenario as skipped (77) in the other mode, saying why, so
# the demo table shows it instead of losing it.
only_in_mode() {
  if [[ $(lab_mode) != "$1" ]]; then
    expected "only in $1 mode: $2"
    echo "observed: skipped in $(lab_mode) mode"
    exit 77
  fi
}

# lab_pod_cgroup <pod>: the pod's cgroup directory.
lab_pod_cgroup() { echo "$(awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts)/$LAB_CGROUP/$1"; }

# redirect_installed <pod>: whether the kernel has tollgate's redirect for the pod (nftables:
# table inet tollgate in its netns; ebpf: the connect and egress programs on its cgroup).
redirect_installed() {
  if [[ $(lab_mode) == ebpf ]]; then
    local progs
    progs=$(bpftool cgroup show "$(lab_pod_cgroup "$1")" 2>/dev/null) || return 1
    grep -q tg_sock4_connect <<<"$progs" && grep -q tg_skb_egress <<<"$progs"
  else
    ip netns exec "$LAB_POD_NS_PREFIX$1" nft list table inet tollgate >/dev/null 2>&1
  fi
}

# remove_redirect <pod>: what a privileged pod (or an operator) does to take tollgate's redirect
# away: deletes the table (nftables), or detaches every pinned link of the pod (ebpf; needs
# CAP_BPF, which the lab's --root has).
remove_redirect() {
  if [[ $(lab_mode) == ebpf ]]; then
    local l rc=0
    for l in "$LAB_STATE"/bpffs/tollgate/pods/*_"$1"/*; do
      lab_exec "$1" --root -- bpftool link detach pinned "$l" || rc=1
    done
    return $rc
  else
    lab_exec "$1" --root -- nft delete table inet tollgate
  fi
}

# mode_independent <why>: in the second (eBPF) pass of make test, ends a long scenario whose
# subject is not the redirect as skipped (77), saying that the first pass ran it. `tollgate-lab
# demo --mode ebpf` runs it.
mode_independent() {
  if [[ -n ${TOLLGATE_E2E_SECOND_PASS:-} ]]; then
    expected "mode-independent: $1"
    echo "observed: skipped in the second pass (make test ran it in the nftables pass)"
    exit 77
  fi
}

# scratch_pod <pod> [add-pod options]: a pod of the scenario's own, made afresh (what an earlier
# run left is deleted first) and deleted when the scenario exits; when it cannot be made the
# scenario ends with "observed: add-pod failed". A scenario with an EXIT trap of its own sets
# SCRATCH_POD_TRAP=0 and deletes the pod there.
scratch_pod() {
  local pod=$1 out
  shift
  lab del-pod "$pod" >/dev/null 2>&1
  # shellcheck disable=SC2064 # the pod's name, fixed now
  [[ ${SCRATCH_POD_TRAP:-1} == 0 ]] || trap "\"\$LAB\" del-pod '$pod' >/dev/null 2>&1" EXIT
  if ! out=$(lab add-pod "$pod" "$@" 2>&1); then
    echo "observed: add-pod failed: $out"
    exit 1
  fi
}

# require_protected <pod>: records a failure unless tollgate's redirect is installed for the pod
# (nftables mode: table inet tollgate in its netns; ebpf mode: its links pinned on the lab's
# bpffs). Without it, an "allowed" result proves nothing.
require_protected() {
  case $(lab_mode) in
  nftables)
    if ! ip netns exec "$LAB_POD_NS_PREFIX$1" nft list table inet tollgate >/dev/null 2>&1; then
      fail "pod $1 is not enrolled (no table inet tollgate in its netns)"
      observe "pod $1 NOT enrolled"
    fi
    ;;
  ebpf)
    if ! compgen -G "$LAB_STATE/bpffs/tollgate/pods/*_$1/cgroup_connect4" >/dev/null; then
      fail "pod $1 is not enrolled (no pinned cgroup_connect4 link for it)"
      observe "pod $1 NOT enrolled"
    fi
    ;;
  esac
  return 0
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# Scenarios assert what happens, never how fast: every wait for something that must happen is
# bounded only to catch a hang, by HANG_S seconds (generous for a loaded 2-core CI machine; how
# fast things happen is measured by `bench/run lifecycle`). Waits that show something does NOT
# happen keep their own short windows.
HANG_S=${TOLLGATE_HANG_S:-60}

# wait_until [-t seconds] <cmd...>: runs cmd every 0.1 s until it succeeds (returns 0) or the hang
# bound passes (returns 1). WAITED_MS is how long it took, for an observed line only.
wait_until() {
  local limit=$HANG_S
  if [[ $1 == -t ]]; then
    limit=$2
    shift 2
  fi
  local t0 deadline
  t0=$(now_ms)
  deadline=$((t0 + limit * 1000))
  until "$@"; do
    if (($(now_ms) >= deadline)); then
      WAITED_MS=$(($(now_ms) - t0))
      return 1
    fi
    sleep 0.1
  done
  WAITED_MS=$(($(now_ms) - t0))
}

# finish: prints the observed line and exits with the verdict.
finish() {
  local joined="" part
  for part in "${_observed[@]}"; do joined+="${joined:+; }$part"; done
  echo "observed: ${joined:-nothing}"
  if ((${#_failures[@]})); then
    local f
    for f in "${_failures[@]}"; do echo "FAIL: $f"; done
    exit 1
  fi
  exit 0
}

# Common curl flags: fail fast, never hang a test.
CURL=(curl -sS --connect-timeout 3 --max-time 8)

# ---------------------------------------------------------------------------------------------
# The agent's access log (JSON, one object per ended connection: pod_namespace, pod_name,
# identity, original_dst, name, protocol, decision, reason, decided_by, route, bytes_up,
# bytes_down, duration_ms) and its Prometheus metrics (:15020/metrics in tg-node).
LAB_ACCESS_LOG=$LAB_LOGS/access.log
LAB_METRICS_URL=http://127.0.0.1:15020/metrics
_access_mark=0

_access_log_lines() {
  [[ -f $LAB_ACCESS_LOG ]] || {
    echo 0
    return
  }
  wc -l <"$LAB_ACCESS_LOG" | tr -d ' '
}

# access_log_mark: later access_log_has calls look only at lines written after this point.
access_log_mark() { _access_mark=$(_access_log_lines); }

# access_log_new: the access log lines written since access_log_mark.
access_log_new() {
  [[ -f $LAB_ACCESS_LOG ]] && tail -n "+$((_access_mark + 1))" "$LAB_ACCESS_LOG"
  return 0
}

# _access_log_match <cond...>: prints the first new line matching every condition; exit 1 if none.
# A condition is key=value (equality of the JSON field; pod=NS/NAME and dst=ADDR:PORT are short
# for pod_namespace+pod_name and original_dst), key~regex (re.search on the field), or any other
# python expression over the fields (e.g. 'bytes_down > 0', 'name != "blocked.test"'; the whole
# record is r).
_access_log_match() {
  "${_alog_src:-access_log_new}" | python3 -c '
import json, re, sys
conds = sys.argv[1:]
alias = {"dst": "original_dst", "ns": "pod_namespace"}
def ok(r, c):
    m = re.fullmatch(r"([a-z_]+)([=~])(.*)", c, re.S)
    if m and not c.startswith(m.group(1) + "=="):
        key, op, want = m.groups()
        if key == "pod":
            have = r.get("pod_namespace", "") + "/" + r.get("pod_name", "")
        else:
            have = str(r.get(alias.get(key, key), ""))
        return have == want if op == "=" else re.search(want, have) is not None
    return bool(eval(c, {"re": re}, dict(r, r=r)))
for line in sys.stdin:
    try:
        r = json.loads(line)
    except ValueError:
        continue
    if all(ok(r, c) for c in conds):
        print(line.rstrip("\n"))
        sys.exit(0)
sys.exit(1)
' "$@"
}

# access_log_has <cond...>: succeeds when a line written since access_log_mark matches every
# condition (see _access_log_match). The agent logs when it has closed the connection, which can
# be a moment after the client saw the close: waits for the line (up to the hang bound). Sets
# ACCESS_LINE.
access_log_has() {
  local deadline=$(($(now_ms) + HANG_S * 1000))
  ACCESS_LINE=""
  until ACCESS_LINE=$(_access_log_match "$@"); do
    (($(now_ms) < deadline)) || return 1
    sleep 0.05
  done
}

# expect_access_log <label> <cond...>: access_log_has, observed as "<label>: logged <decision>
# <reason> <name>"; a failure shows the conditions and the new lines.
expect_access_log() {
  local label=$1
  shift
  if access_log_has "$@"; then
    observe "$label: logged $(python3 -c '
import json, sys
r = json.loads(sys.argv[1])
print(r["decision"], r["reason"], r["name"] or "(no name)")' "$ACCESS_LINE")"
  else
    observe "$label: NOT logged"
    fail "$label: no access log line with $* since the mark; new lines: $("${_alog_src:-access_log_new}" | tail -c 1500)"
  fi
  return 0
}

# metric <name> [label=value...]: the sum of the agent's series <name> whose labels match (all
# given labels equal; others ignored); 0 when none. Prints "error" and returns 1 when /metrics
# cannot be read.
metric() {
  local text
  text=$(ip netns exec "${_metric_ns:-$LAB_NS_NODE}" curl -sf --max-time 3 "$LAB_METRICS_URL") || {
    echo error
    return 1
  }
  python3 -c '
import re, sys
name, want = sys.argv[1], dict(a.split("=", 1) for a in sys.argv[2:])
total = 0.0
for line in sys.stdin:
    m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$", line.strip())
    if not m or m.group(1) != name:
        continue
    labels = dict((k, v.encode().decode("unicode_escape"))
                  for k, v in re.findall(r"(\w+)=\"((?:[^\"\\]|\\.)*)\"", m.group(2) or ""))
    if all(labels.get(k) == v for k, v in want.items()):
        total += float(m.group(3))
print(int(total) if total == int(total) else total)
' "$@" <<<"$text"
}

# metric_mark <name> [label=value...]: remembers the series' current value for metric_delta.
declare -A _metric_marks=()
metric_mark() { _metric_marks["$*"]=$(metric "$@"); }

# metric_delta <name> [label=value...]: how much it grew since metric_mark with the same args.
metric_delta() {
  local now before=${_metric_marks["$*"]:-}
  now=$(metric "$@") || {
    echo error
    return 1
  }
  [[ $before =~ ^[0-9]+$ ]] || {
    echo error
    return 1
  }
  echo $((now - before))
}

# _metric_short <name> [label=value...]: "name{v1,v2}" for the observed line.
_metric_short() {
  local n=${1#tollgate_} l=()
  n=${n%_total}
  shift
  local kv
  for kv in "$@"; do l+=("${kv#*=}"); done
  if ((${#l[@]})); then
    local IFS=,
    echo "$n{${l[*]}}"
  else
    echo "$n"
  fi
}

# expect_metric_increase <min> <name> [label=value...]: the series grew by at least <min> since
# metric_mark (waits for it, up to the hang bound: connection counters are bumped when the
# agent closes the connection). The delta goes into the observed line as "name{labels} +N".
expect_metric_increase() {
  local min=$1 d
  shift
  local deadline=$(($(now_ms) + HANG_S * 1000))
  while :; do
    d=$(metric_delta "$@")
    [[ $d =~ ^-?[0-9]+$ ]] && ((d >= min)) && break
    (($(now_ms) < deadline)) || break
    sleep 0.1
  done
  observe "$(_metric_short "$@") +$d"
  if ! [[ $d =~ ^-?[0-9]+$ ]] || ((d < min)); then fail "metric $* grew by $d, want >= $min"; fi
  return 0
}

# ---------------------------------------------------------------------------------------------
# The gateway's access log (JSON, same fields as the agent's; identity is the tunnel peer's SPIFFE
# ID, name is host:port from the CONNECT authority) and its metrics (:15020/metrics in tg-gw).
_gw_mark=0
_gw_log_lines() {
  [[ -f $LAB_GW_ACCESS_LOG ]] || {
    echo 0
    return
  }
  wc -l <"$LAB_GW_ACCESS_LOG" | tr -d ' '
}
# gw_log_mark: later gw_log_has calls look only at lines written after this point.
gw_log_mark() { _gw_mark=$(_gw_log_lines); }
gw_log_new() {
  [[ -f $LAB_GW_ACCESS_LOG ]] && tail -n "+$((_gw_mark + 1))" "$LAB_GW_ACCESS_LOG"
  return 0
}
# gw_log_has <cond...> / expect_gw_log <label> <cond...>: access_log_has / expect_access_log on
# the gateway's access log.
gw_log_has() { _alog_src=gw_log_new access_log_has "$@"; }
expect_gw_log() { _alog_src=gw_log_new expect_access_log "$@"; }
# gw_metric <name> [label=value...]: metric, from the gateway's /metrics.
gw_metric() { _metric_ns=$LAB_NS_GW metric "$@"; }
# access_field <field>: a field of the line the last access_log_has / gw_log_has matched.
access_field() { python3 -c 'import json, sys; print(json.loads(sys.argv[1]).get(sys.argv[2], ""))' \
  "${ACCESS_LINE:-{\}}" "$1" 2>/dev/null; }

# issue_svid <ca dir (scripts/gen-ca layout)> <out prefix> <spiffe id>: an ECDSA P-256 client SVID
# (<out>.pem, <out>-key.pem) signed by that CA's issuing certificate, valid one day.
issue_svid() {
  local ca=$1 out=$2 id=$3
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$out-key.pem" 2>/dev/null &&
    openssl req -new -key "$out-key.pem" -subj "/O=tollgate lab test" -out "$out.csr" 2>/dev/null &&
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\nsubjectAltName=critical,URI:%s\n' \
      "$id" >"$out.ext" &&
    openssl x509 -req -in "$out.csr" -CA "$ca/ca-cert.pem" -CAkey "$ca/ca-key.pem" \
      -set_serial "0x$(openssl rand -hex 16)" -days 1 -sha256 -extfile "$out.ext" -out "$out.pem" 2>/dev/null
}

# ---------------------------------------------------------------------------------------------
# Config changes in both sources (tollgate-lab up --config-source files|kubernetes). The files in
# $LAB_CONFIG are always written (the agent and the gateway read them with files); with
# kubernetes the same objects are applied to / deleted from the lab's API server as well, which
# both of them read then.
lab_is_kube() { [[ ${LAB_CONFIG_SOURCE:-files} == kubernetes ]]; }
# lab_kubectl ARGS...: kubectl as cluster admin in the node netns (kubernetes source only). The
# request timeout only catches a hang.
lab_kubectl() {
  lab_is_kube || { echo "lab_kubectl: the lab runs with --config-source files" >&2; return 2; }
  ip netns exec "$LAB_NS_NODE" "$LAB_KUBECTL" --kubeconfig "$LAB_KUBECONFIG" \
    --request-timeout "${LAB_KUBECTL_TIMEOUT:-30s}" "$@"
}
# lab_config_apply FILE: FILE (in $LAB_CONFIG) was written or edited; kubernetes: kubectl apply.
lab_config_apply() {
  lab_is_kube || return 0
  lab_kubectl apply -f "$1" >/dev/null || { fail "kubectl apply -f $1 failed"; return 1; }
}
# lab_config_delete FILE: removes FILE's objects (kubernetes) and the file.
lab_config_delete() {
  if lab_is_kube && [[ -f $1 ]]; then
    lab_kubectl delete --ignore-not-found --grace-period=0 --force -f "$1" >/dev/null 2>&1 || { fail "kubectl delete -f $1 failed"; return 1; }
  fi
  rm -f "$1"
}
# lab_config_park FILE PARKED: takes FILE's objects out of the config, keeping FILE at PARKED.
lab_config_park() {
  if lab_is_kube; then
    lab_kubectl delete --ignore-not-found --grace-period=0 --force -f "$1" >/dev/null 2>&1 || { fail "kubectl delete -f $1 failed"; return 1; }
  fi
  mv -f "$1" "$2"
}
# lab_config_unpark PARKED FILE: puts parked objects back (no-op when nothing is parked).
lab_config_unpark() {
  [[ -f $1 ]] || return 0
  mv -f "$1" "$2"
  lab_config_apply "$2"
}
# kube_only: skips (77) a scenario about the kubernetes source when the lab reads files.
kube_only() {
  lab_is_kube && return 0
  echo "observed: skipped: needs tollgate-lab up --config-source kubernetes (this lab reads files)"
  exit 77
}
