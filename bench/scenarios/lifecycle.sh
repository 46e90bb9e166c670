# lifecycle: how long the node takes to do what the e2e scenarios only check it does: a pod's
# creation up to its first proxied request, drift repair, agent restart (graceful, SIGKILL, and the
# listener-handoff upgrade) and config reload. Median, p90, p99 over every sample of every round.
# These are the figures the tests used to bound with wall-clock asserts (issue 11): the tests
# assert behaviour, this measures speed.
# shellcheck shell=bash
bench_require_root
bench_lab_up

pods_per_round=10
drifts_per_round=5
reloads_per_round=3
if [[ $BENCH_SMOKE == 1 ]]; then
  pods_per_round=2
  drifts_per_round=1
  reloads_per_round=1
fi
hang_s=${BENCH_LIFECYCLE_HANG_S:-120}  # a sample that takes longer counts as failed

samples=$BENCH_WORK/lifecycle.tsv  # what <TAB> ms (empty: failed)
: >"$samples"
record() { printf '%s\t%s\n' "$1" "$2" >>"$samples"; }
now() { echo "$EPOCHREALTIME"; }
ms_between() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.1f", (b - a) * 1000}'; }

httpbin=$(bench_lab addr httpbin.test)
se=$LAB_CONFIG_DIR/20-serviceentry-httpbin.yaml
parked=$BENCH_WORK/20-serviceentry-httpbin.yaml
[[ -f $se ]] || bench_die "no $se in the lab config"
restore_se() { [[ -f $parked ]] && mv -f "$parked" "$se"; return 0; }
trap 'restore_se; _bench_cleanup' EXIT

# probe_start <pod>: a request loop in the pod (uid 1000, its netns and cgroup) to httpbin.test
# through the agent and the gateway, one line per request: "<start> <end> <status>" (epoch
# seconds, microseconds; 000 = refused or failed). The pod's clock is the host's.
probe_start() {
  PROBE_LOG=$BENCH_WORK/probe-$1-$(date +%s%N).log
  : >"$PROBE_LOG"
  bench_spawn PROBE_PID "$PROBE_LOG" "$LAB" exec "$1" -- bash -c '
    while :; do
      t0=$EPOCHREALTIME
      c=$(curl -s -o /dev/null --connect-timeout 2 --max-time 5 -w "%{http_code}" \
        --resolve "httpbin.test:80:$0" http://httpbin.test/headers)
      echo "$t0 $EPOCHREALTIME $c"
      sleep 0.01
    done' "$httpbin"
}
# probe_first <code> <after>: the end time of the first request that started after <after> and
# got <code>; waits for it (hang bound). Prints nothing when none came.
probe_first() {
  local code=$1 after=$2 deadline=$((SECONDS + hang_s)) t
  while ((SECONDS < deadline)); do
    t=$(awk -v a="$after" -v c="$code" '$1 > a && $3 == c { print $2; exit }' "$PROBE_LOG")
    [[ -n $t ]] && { echo "$t"; return 0; }
    sleep 0.02
  done
}
# probe_failed_since <after>: requests started after <after> that did not get 200.
probe_failed_since() { awk -v a="$1" '$1 > a && $3 != 200' "$PROBE_LOG" | wc -l; }

bench_notes <<EOF
- **pod create -> first 200**: \`tollgate-lab add-pod lc-<i>\` (runtime-like: netns, cgroup, the
  conflist's bridge + host-local + tollgate-cni; ADD returns once the agent installed the pod's
  rules and listeners), then at once, as the pod's first process, \`curl http://httpbin.test/\`
  (agent -> gateway tunnel -> nginx). Measured from the add-pod command to curl's exit with 200;
  \`add-pod\` alone is given too, and \`del-pod\` (CNI DEL).
- **drift repair**: root deletes \`table inet tollgate\` in pod lc-drift's netns; the time until the
  agent has put it back (polled with \`nft list table\` in the pod's netns; the nftables event
  brings the reconcile pass forward).
- **agent restart**: a request loop runs in pod client (one curl per request to httpbin.test
  through the gateway, 10 ms apart). *restart* = \`tollgate-lab agent restart\` (SIGTERM, then a
  fresh start that re-adopts the pods): from the command to the end of the first 200 of a
  request that started after the first refused one (0 when none was refused), and the number of
  refused requests. *sigkill* = \`agent kill\`, then \`agent start\`: from the start command to
  the first 200 of a request started after it. *upgrade* = \`agent upgrade\` (listener handoff):
  the command's duration and the refused requests (goal 0).
- **config reload**: with the same loop, the file 20-serviceentry-httpbin.yaml is moved out of
  the config dir (then back): from the move to the end of the first request that started after
  it and got 403 (then 200). Both the agent and the gateway reload on inotify.
- A sample that has not happened after ${hang_s} s counts as failed.
- p99 over few samples is the maximum: n is in the table.
EOF

# ---------------------------------------------------------------------------------------------
bench_add_pod lc-drift
pod_has_table() { ip netns exec "$LAB_POD_NS_PREFIX$1" nft list table inet tollgate >/dev/null 2>&1; }
bench_note_cmd "tollgate-lab add-pod lc-<i>; tollgate-lab exec lc-<i> -- curl -s -o /dev/null -w '%{http_code}' --resolve httpbin.test:80:$httpbin http://httpbin.test/headers; tollgate-lab del-pod lc-<i>"
bench_note_cmd "ip netns exec ${LAB_POD_NS_PREFIX}lc-drift nft delete table inet tollgate; until ip netns exec ${LAB_POD_NS_PREFIX}lc-drift nft list table inet tollgate; do :; done"
bench_note_cmd "tollgate-lab agent restart | agent kill; agent start | agent upgrade   # with the client request loop running"
bench_note_cmd "mv $se <elsewhere>; ...; mv back   # with the client request loop running"

for ((round = 1; round <= BENCH_ROUNDS; round++)); do
  bench_log "round $round/$BENCH_ROUNDS"

  # Pod creation.
  for ((i = 1; i <= pods_per_round; i++)); do
    name=lc-$round-$i
    bench_lab del-pod "$name" >/dev/null 2>&1 || true
    t0=$(now)
    if ! bench_lab add-pod "$name" >>"$BENCH_WORK/add-pod.log" 2>&1; then
      record "pod: add-pod (CNI ADD returned)" ""
      record "pod: add-pod -> first 200" ""
      continue
    fi
    t1=$(now)
    record "pod: add-pod (CNI ADD returned)" "$(ms_between "$t0" "$t1")"
    code=$("$LAB" exec "$name" -- curl -s -o /dev/null --connect-timeout 5 --max-time "$hang_s" \
      -w '%{http_code}' --resolve "httpbin.test:80:$httpbin" http://httpbin.test/headers || true)
    t2=$(now)
    if [[ $code == 200 ]]; then record "pod: add-pod -> first 200" "$(ms_between "$t0" "$t2")"; else
      record "pod: add-pod -> first 200" ""
    fi
    t3=$(now)
    if bench_lab del-pod "$name" >>"$BENCH_WORK/add-pod.log" 2>&1; then
      record "pod: del-pod (CNI DEL)" "$(ms_between "$t3" "$(now)")"
    else record "pod: del-pod (CNI DEL)" ""; fi
  done

  # Drift repair.
  for ((i = 1; i <= drifts_per_round; i++)); do
    pod_has_table lc-drift || bench_die "lc-drift has no table before tampering"
    ip netns exec "${LAB_POD_NS_PREFIX}lc-drift" nft delete table inet tollgate
    t0=$(now)
    deadline=$((SECONDS + hang_s))
    until pod_has_table lc-drift || ((SECONDS >= deadline)); do :; done
    if pod_has_table lc-drift; then record "drift: table deleted -> repaired" "$(ms_between "$t0" "$(now)")"; else
      record "drift: table deleted -> repaired" ""
    fi
    sleep 0.5  # let the pass that repaired it finish before tampering again
  done

  probe_start client
  first=$(probe_first 200 0)
  [[ -n $first ]] || bench_die "the client probe never got a 200 (see $PROBE_LOG)"

  # Graceful restart.
  t0=$(now)
  bench_lab agent restart >>"$BENCH_WORK/agent.log" 2>&1 || bench_die "agent restart failed"
  t1=$(now)
  record "agent restart: command (stop + start until ready)" "$(ms_between "$t0" "$t1")"
  # Once a request started after the command returned got its 200, every request of the restart
  # window has ended.
  probe_first 200 "$t1" >/dev/null
  refused=$(awk -v a="$t0" '$1 > a && $3 != 200 { print $1; exit }' "$PROBE_LOG")
  if [[ -z $refused ]]; then
    record "agent restart: unavailable (first refused -> next 200)" 0
  else
    back=$(probe_first 200 "$refused")
    if [[ -n $back ]]; then record "agent restart: unavailable (first refused -> next 200)" "$(ms_between "$refused" "$back")"; else
      record "agent restart: unavailable (first refused -> next 200)" ""
    fi
  fi
  record "agent restart: refused requests" "$(probe_failed_since "$t0")"

  # SIGKILL, then start.
  bench_lab agent kill >>"$BENCH_WORK/agent.log" 2>&1 || bench_die "agent kill failed"
  sleep 0.5
  t0=$(now)
  bench_lab agent start >>"$BENCH_WORK/agent.log" 2>&1 || bench_die "agent start failed"
  record "agent sigkill: start command (until ready)" "$(ms_between "$t0" "$(now)")"
  back=$(probe_first 200 "$t0")
  if [[ -n $back ]]; then record "agent sigkill: start command -> first 200" "$(ms_between "$t0" "$back")"; else
    record "agent sigkill: start command -> first 200" ""
  fi

  # Listener handoff.
  t0=$(now)
  if bench_lab agent upgrade >>"$BENCH_WORK/agent.log" 2>&1; then
    t1=$(now)
    record "agent upgrade: command (handoff)" "$(ms_between "$t0" "$t1")"
    probe_first 200 "$t1" >/dev/null
    record "agent upgrade: refused requests" "$(awk -v a="$t0" -v b="$t1" '$1 > a && $1 < b && $3 != 200' "$PROBE_LOG" | wc -l)"
  else
    record "agent upgrade: command (handoff)" ""
  fi

  # Config reload: deny, then allow again.
  for ((i = 1; i <= reloads_per_round; i++)); do
    probe_first 200 "$(now)" >/dev/null
    t0=$(now)
    mv -f "$se" "$parked"
    denied=$(probe_first 403 "$t0")
    if [[ -n $denied ]]; then record "reload: ServiceEntry removed -> 403" "$(ms_between "$t0" "$denied")"; else
      record "reload: ServiceEntry removed -> 403" ""
    fi
    t0=$(now)
    restore_se
    allowed=$(probe_first 200 "$t0")
    if [[ -n $allowed ]]; then record "reload: ServiceEntry restored -> 200" "$(ms_between "$t0" "$allowed")"; else
      record "reload: ServiceEntry restored -> 200" ""
    fi
  done
  bench_stop "$PROBE_PID"
done
bench_lab del-pod lc-drift >/dev/null 2>&1 || true

python3 - "$samples" >"$BENCH_WORK/lifecycle.md" <<'PY'
import sys
def pct(v, p):
    s = sorted(v)
    return s[min(len(s) - 1, int(round(p * (len(s) - 1))))]
rows, order = {}, []
for line in open(sys.argv[1]):
    what, ms = line.rstrip("\n").split("\t")
    if what not in rows:
        rows[what] = []
        order.append(what)
    rows[what].append(float(ms) if ms else None)
print("| what | n | failed | median | p90 | p99 | max |")
print("|---|---|---|---|---|---|---|")
for what in order:
    ok = [v for v in rows[what] if v is not None]
    bad = len(rows[what]) - len(ok)
    counts = what.endswith("requests")
    unit = "" if counts else " ms"
    f = (lambda v: f"{v:.0f}") if counts else (lambda v: f"{v:.1f}")
    if ok:
        print(f"| {what} | {len(ok)} | {bad} | {f(pct(ok, .5))}{unit} | {f(pct(ok, .9))}{unit} | "
              f"{f(pct(ok, .99))}{unit} | {f(max(ok))}{unit} |")
    else:
        print(f"| {what} | 0 | {bad} | - | - | - | - |")
PY
bench_report "### Lifecycle latencies (all samples of all rounds)"
bench_report ""
bench_report <"$BENCH_WORK/lifecycle.md"
bench_report ""
failed=$(awk -F'\t' '$2 == ""' "$samples" | wc -l)
bench_report "Samples that did not happen within ${hang_s} s: $failed."
bench_report_finish "lifecycle latencies: pod creation, drift repair, agent restart, config reload"
cat "$BENCH_MD"
((failed == 0)) || bench_die "$failed lifecycle samples failed (see the report)"
