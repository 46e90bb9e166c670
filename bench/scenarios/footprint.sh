# footprint: the agent's idle RSS, its RSS per 1,000 idle proxied connections, and CNI ADD ->
# ready latency (p50/p99) over 200 pods.
# shellcheck shell=bash
bench_require_root
bench_lab_up
# shellcheck source=bench/tools/churn_lib.sh
source "$BENCH_ROOT/bench/tools/churn_lib.sh"

# BENCH_FOOTPRINT_PARTS: which parts run (default all: idle conns enroll).
parts=" ${BENCH_FOOTPRINT_PARTS:-idle conns enroll} "
part() { [[ $parts == *" $1 "* ]]; }
npods=${BENCH_FOOTPRINT_PODS:-200}
nconns=1000
holders=4   # pods (each its own service account = identity) sharing the idle connections
settle=${BENCH_FOOTPRINT_SETTLE:-6}
if [[ $BENCH_SMOKE == 1 ]]; then
  npods=5
  nconns=100
  settle=1
fi

for ((h = 1; h <= holders; h++)); do
  bench_add_pod "bench-hold-$h" --service-account "hold-$h"
done
CHURN_PROBE_POD=bench-hold-1  # this scenario has no bench-churn pod (run on its own, too)
churn_server_up
churn_set_entries 10
churn_tune_netns
for ((h = 1; h <= holders; h++)); do churn_wait_path "bench-hold-$h"; done

# kB fields of /proc/<pid>/status and smaps_rollup.
mem_of() {  # <pid>: "rss_kb anon_kb pss_kb"
  echo "$(awk '/^VmRSS:/{r=$2} /^RssAnon:/{a=$2} END{print r, a}' "/proc/$1/status")" \
    "$(awk '/^Pss:/{print $2}' "/proc/$1/smaps_rollup")"
}
enrolled_pods() { ls "$LAB_AGENT_RUN_DIR/pods" 2>/dev/null | wc -l; }

bench_notes <<EOF
- **idle RSS**: the lab agent restarted with its default flags (lab pods enrolled and re-adopted:
  client, other, bench-hold-1..$holders, and whatever pods other scenarios left: $(enrolled_pods) in
  all), no traffic, sampled ${settle} s after it reported ready (one reconcile pass, default
  5 s, has run). VmRSS, RssAnon (private anonymous memory: heap, stacks) and Pss (shared library
  pages divided among the processes that map them) from /proc/<pid>/status and smaps_rollup.
- **RSS per 1,000 idle connections**: \`connload hold\` in $holders enrolled pods (each its own
  service account, so its own SPIFFE identity and tunnel pool key: one key allows 2 x 256 streams)
  opens $nconns connections in all to \`$CHURN_HOST\` (nginx, keep-alive 900 s) through the agent and
  the gateway tunnel, sends one keep-alive request on each and reads the response, then keeps them
  open. Each round starts with a freshly restarted agent (the gateway is restarted once before
  the rounds). Agent (and gateway) VmRSS before, while held (1 s after all are set up) and 2 s after
  they are closed; the delta is scaled to 1,000 connections.
- **CNI ADD -> ready**: $npods pods created one after another with \`tollgate-lab add-pod\`
  (runtime-like: netns, cgroup, then the conflist bridge + host-local + tollgate-cni through
  lab/cni_exec.py). The tollgate-cni call is timed alone by a wrapper (the lab's installed
  cni/bin/tollgate-cni temporarily replaced by a script that records bash \$EPOCHREALTIME around
  the real plugin): it
  returns when the agent has installed the pod's rules and listeners, so it is the enrollment
  round trip (plugin exec + unix socket + agent work). The whole \`add-pod\` (netns, cgroup,
  bridge, host-local, tollgate-cni, python) is given for scale. The pods are deleted afterwards
  (CNI DEL, also timed).
EOF

agent_pid=$(bench_agent_pid)
gw_pid=$(bench_gateway_pid)

if part idle; then
# ---------------------------------------------------------------------------------------------
# Idle RSS

measure_idle() {  # <target> <round>
  bench_lab agent restart >>"$BENCH_WORK/agent-restarts.log" 2>&1 || bench_die "agent restart failed"
  bench_note_cmd "tollgate-lab agent restart; sleep $settle; cat /proc/<agent>/status /proc/<agent>/smaps_rollup"
  sleep "$settle"
  agent_pid=$(bench_agent_pid)
  local rss anon pss
  read -r rss anon pss <<<"$(mem_of "$agent_pid")"
  bench_sample "idle, $(enrolled_pods) pods" agent rss_mb "$(awk -v k="$rss" 'BEGIN{printf "%.2f", k / 1024}')"
  bench_sample "idle, $(enrolled_pods) pods" agent anon_mb "$(awk -v k="$anon" 'BEGIN{printf "%.2f", k / 1024}')"
  bench_sample "idle, $(enrolled_pods) pods" agent pss_mb "$(awk -v k="$pss" 'BEGIN{printf "%.2f", k / 1024}')"
  bench_sample "idle" agent threads "$(ls "/proc/$agent_pid/task" | wc -l)"
}
bench_rounds measure_idle agent
# Which mappings hold the idle RSS (last round), for the report.
python3 - "$agent_pid" >"$BENCH_WORK/idle-maps.md" <<'PY'
import collections, re, sys
agg = collections.Counter()
cur = None
for line in open(f"/proc/{sys.argv[1]}/smaps"):
    if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
        parts = line.split()
        cur = parts[5] if len(parts) > 5 else "[anon: malloc arenas, thread stacks]"
    elif line.startswith("Rss:"):
        agg[cur.rsplit("/", 1)[-1]] += int(line.split()[1])
print("| mapping | RSS (kB) |")
print("|---|---|")
for k, v in agg.most_common(12):
    print(f"| {k} | {v:,} |")
PY

fi
if part conns; then
# ---------------------------------------------------------------------------------------------
# RSS per 1,000 idle proxied connections

per=$((nconns / holders))
# The gateway too starts fresh (other scenarios may have loaded large registries into it).
bench_lab gateway restart >>"$BENCH_WORK/agent-restarts.log" 2>&1 || bench_die "gateway restart failed"
gw_pid=$(bench_gateway_pid)
bench_note_cmd "tollgate-lab gateway restart; then each round: tollgate-lab agent restart; sleep $settle"
measure_conns() {  # <target> <round>
  local round=$2 h out a0 g0 a1 g1 a2 g2 opened=0 failed=0 i
  # A fresh agent each round: memory a previous round freed would otherwise be reused and hide
  # the growth.
  bench_lab agent restart >>"$BENCH_WORK/agent-restarts.log" 2>&1 || bench_die "agent restart failed"
  for ((h = 1; h <= holders; h++)); do churn_wait_path "bench-hold-$h"; done
  sleep "$settle"
  agent_pid=$(bench_agent_pid)
  read -r a0 _ _ <<<"$(mem_of "$agent_pid")"
  read -r g0 _ _ <<<"$(mem_of "$gw_pid")"
  local pids=()
  for ((h = 1; h <= holders; h++)); do
    out=$BENCH_WORK/hold-$round-$h.json
    : >"$out"
    # "$LAB" exec execs down to connload, so hold_pid is connload's own pid (bench_stop works).
    bench_spawn "hold_pid" "$out" "$LAB" exec "bench-hold-$h" -- "$CONNLOAD" hold \
      --connect "$CHURN_ADDR:80" --host "$CHURN_HOST" --count "$per" --parallel 32 --hold-seconds 600
    pids+=("$hold_pid")
  done
  bench_note_cmd "tollgate-lab exec bench-hold-<1..$holders> -- $CONNLOAD hold --connect $CHURN_ADDR:80 --host $CHURN_HOST --count $per --parallel 32 --hold-seconds 600   # $holders at once"
  for ((i = 0; i < 600; i++)); do
    local ready=0
    for ((h = 1; h <= holders; h++)); do
      grep -q '"open"' "$BENCH_WORK/hold-$round-$h.json" && ready=$((ready + 1))
    done
    ((ready == holders)) && break
    sleep 0.1
  done
  for ((h = 1; h <= holders; h++)); do
    read -r o f <<<"$(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    if "\"open\"" in line:
        d = json.loads(line); print(d["open"], d["failed"]); break
else:
    print(0, 0)' "$BENCH_WORK/hold-$round-$h.json")"
    opened=$((opened + o))
    failed=$((failed + f))
  done
  sleep 1
  read -r a1 _ _ <<<"$(mem_of "$agent_pid")"
  read -r g1 _ _ <<<"$(mem_of "$gw_pid")"
  local pid
  for pid in "${pids[@]}"; do bench_stop "$pid"; done
  sleep 2
  read -r a2 _ _ <<<"$(mem_of "$agent_pid")"
  read -r g2 _ _ <<<"$(mem_of "$gw_pid")"
  ((opened > 0)) || bench_die "no connection could be held open (see $BENCH_WORK/hold-*.json)"
  local c="$nconns idle connections"
  bench_sample "$c" agent opened "$opened"
  bench_sample "$c" agent failed "$failed"
  bench_sample "$c" agent mb_per_1k "$(awk -v a="$a0" -v b="$a1" -v n="$opened" 'BEGIN{printf "%.3f", (b - a) / 1024 * 1000 / n}')"
  bench_sample "$c" gateway mb_per_1k "$(awk -v a="$g0" -v b="$g1" -v n="$opened" 'BEGIN{printf "%.3f", (b - a) / 1024 * 1000 / n}')"
  bench_sample "$c" agent rss_before_mb "$(awk -v k="$a0" 'BEGIN{printf "%.2f", k / 1024}')"
  bench_sample "$c" agent rss_held_mb "$(awk -v k="$a1" 'BEGIN{printf "%.2f", k / 1024}')"
  bench_sample "$c" agent rss_after_mb "$(awk -v k="$a2" 'BEGIN{printf "%.2f", k / 1024}')"
  bench_sample "$c" gateway rss_before_mb "$(awk -v k="$g0" 'BEGIN{printf "%.2f", k / 1024}')"
  bench_sample "$c" gateway rss_held_mb "$(awk -v k="$g1" 'BEGIN{printf "%.2f", k / 1024}')"
  bench_sample "$c" gateway rss_after_mb "$(awk -v k="$g2" 'BEGIN{printf "%.2f", k / 1024}')"
}
bench_rounds measure_conns agent

fi
if part enroll; then
# ---------------------------------------------------------------------------------------------
# CNI ADD -> ready

# The lab runs the tollgate-cni that install-cni copied into its CNI bin dir; for this part it is
# replaced by a wrapper that times the real plugin (restored right after).
cni_bin=${LAB_CNI_BIN_DIR:-$LAB_STATE/cni/bin}
[[ -x $cni_bin/tollgate-cni ]] || bench_die "no installed tollgate-cni in $cni_bin"
cp "$cni_bin/tollgate-cni" "$BENCH_WORK/tollgate-cni.real"
cni_log=$BENCH_WORK/cni-times.log
: >"$cni_log"
cat >"$BENCH_WORK/tollgate-cni.wrapper" <<EOF
#!/bin/bash
# Times the real plugin alone (stdin/stdout pass through).
t0=\$EPOCHREALTIME
"$BENCH_WORK/tollgate-cni.real"
rc=\$?
t1=\$EPOCHREALTIME
echo "\$CNI_COMMAND \$t0 \$t1 \$rc" >>"$cni_log"
exit \$rc
EOF
chmod +x "$BENCH_WORK/tollgate-cni.wrapper"
restore_cni() {
  cp "$BENCH_WORK/tollgate-cni.real" "$cni_bin/.tollgate-cni.tmp"
  mv -f "$cni_bin/.tollgate-cni.tmp" "$cni_bin/tollgate-cni"
}
cp "$BENCH_WORK/tollgate-cni.wrapper" "$cni_bin/.tollgate-cni.tmp"
mv -f "$cni_bin/.tollgate-cni.tmp" "$cni_bin/tollgate-cni"
bench_note_cmd "tollgate-lab add-pod enr-<i>   # i = 1..$npods, one after another, then del-pod; $cni_bin/tollgate-cni temporarily a wrapper timing the real plugin"

add_times=$BENCH_WORK/add-pod-times.txt
: >"$add_times"
made=()
cpu_before=$(bench_cpu_seconds "$(bench_agent_pid)")
for ((i = 1; i <= npods; i++)); do
  t0=$EPOCHREALTIME
  if ! "$LAB" add-pod "enr-$i" >>"$BENCH_WORK/enroll.log" 2>&1; then
    bench_log "add-pod enr-$i failed (see $BENCH_WORK/enroll.log)"
    echo "fail" >>"$add_times"
    continue
  fi
  made+=("enr-$i")
  awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.3f\n", (b - a) * 1000}' >>"$add_times"
  ((i % 50 == 0)) && bench_log "$i pods created"
done
cpu_after=$(bench_cpu_seconds "$(bench_agent_pid)")
peak_rss=$(mem_of "$(bench_agent_pid)" | awk '{printf "%.2f", $1 / 1024}')
peak_pods=$(enrolled_pods)
for p in "${made[@]}"; do
  "$LAB" del-pod "$p" >>"$BENCH_WORK/enroll.log" 2>&1 ||
    bench_log "del-pod $p failed"
done
restore_cni
python3 - "$cni_log" "$add_times" >"$BENCH_WORK/enroll.md" <<'PY'
import statistics, sys
def pct(v, p):
    s = sorted(v)
    return s[min(len(s) - 1, int(round(p * (len(s) - 1))))]
ops = {}
for line in open(sys.argv[1]):
    cmd, t0, t1, rc = line.split()
    ops.setdefault(cmd, []).append(((float(t1) - float(t0)) * 1000, int(rc)))
adds = [float(x) for x in open(sys.argv[2]) if x.strip() and x.strip() != "fail"]
addfail = sum(1 for x in open(sys.argv[2]) if x.strip() == "fail")
print("| what | n | failed | p50 (ms) | p90 (ms) | p99 (ms) | max (ms) |")
print("|---|---|---|---|---|---|---|")
for cmd in ("ADD", "DEL", "CHECK"):
    if cmd not in ops: continue
    ok = [d for d, rc in ops[cmd] if rc == 0]
    bad = sum(1 for _, rc in ops[cmd] if rc != 0)
    if ok:
        print(f"| tollgate-cni {cmd} (plugin call alone) | {len(ok)} | {bad} | {pct(ok, .5):.2f} | "
              f"{pct(ok, .9):.2f} | {pct(ok, .99):.2f} | {max(ok):.2f} |")
if adds:
    print(f"| whole add-pod (netns, cgroup, bridge, host-local, tollgate-cni, python) | {len(adds)} | "
          f"{addfail} | {pct(adds, .5):.1f} | {pct(adds, .9):.1f} | {pct(adds, .99):.1f} | {max(adds):.1f} |")
ok = [d for d, rc in ops.get("ADD", []) if rc == 0]
if ok:
    p99 = pct(ok, .99)
    print()
    print(f"Goal: enrollment p99 <= 20 ms: tollgate-cni ADD p99 = {p99:.2f} ms "
          f"({'met' if p99 <= 20 else 'missed'}).")
PY
awk '$1 == "ADD" {printf "%.3f\n", ($3 - $2) * 1000}' "$cni_log" >"$BENCH_WORK/add-ms.txt"

fi

# ---------------------------------------------------------------------------------------------
# Report

if part idle; then
bench_table rss_mb "Agent idle RSS (VmRSS)" --unit MB --direct agent --ref agent --lower-better
bench_table anon_mb "Agent idle private anonymous memory (RssAnon)" --unit MB --direct agent --ref agent --lower-better
bench_table pss_mb "Agent idle PSS" --unit MB --direct agent --ref agent --lower-better
bench_table threads "Agent threads when idle" --direct agent --ref agent --lower-better
bench_report "Idle RSS by mapping (last round):"
bench_report ""
bench_report <"$BENCH_WORK/idle-maps.md"
bench_report ""
fi
if part conns; then
bench_table mb_per_1k "RSS growth per 1,000 idle proxied connections" --unit MB --direct agent --ref agent --lower-better
bench_plot mb_per_1k "RSS per 1,000 idle proxied connections (median, min/max)" "MB"
bench_table rss_held_mb "RSS while the connections are held" --unit MB --direct agent --ref agent --lower-better
bench_table rss_after_mb "RSS 2 s after they were closed" --unit MB --direct agent --ref agent --lower-better
bench_table opened "Connections held open" --direct agent --ref agent
fi
if part enroll; then
bench_report "### CNI ADD -> ready ($npods pods, one after another)"
bench_report ""
bench_report <"$BENCH_WORK/enroll.md"
bench_report ""
bench_report "Agent CPU (utime+stime) per ADD while the pods were created: $(awk -v a="$cpu_before" \
  -v b="$cpu_after" -v n="${#made[@]}" 'BEGIN{printf "%.2f", n ? (b - a) * 1000 / n : 0}') ms (includes the" \
  "reconcile passes meanwhile). Agent VmRSS with $peak_pods pods enrolled: $peak_rss MB."
bench_report ""
fi
if part idle; then
idle=$(bench_stat "idle, $(enrolled_pods) pods" agent rss_mb median)
bench_report "Goal: idle RSS <= 12 MB: median VmRSS $idle MB ($(awk -v v="$idle" 'BEGIN{print (v <= 12 ? "met" : "missed")}'))."
fi
bench_report_finish "agent footprint and enrollment latency"
cat "$BENCH_MD"
