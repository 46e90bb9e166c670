# churn: new connections per second, one small HTTP request each (connect, GET, read, close),
# 1 and 32 clients, from a lab pod to an external allowed name. tollgate with tunnel pooling (the
# default) and without (agent --tunnel-connections 0), each on the lab in nftables mode and on a
# second lab in ebpf mode, against the HAProxy pair, and tollgate (nftables) with 10, 1,000 and
# 100,000 ServiceEntries loaded. Load generator: bench/tools/connload (epoll).
# shellcheck shell=bash
bench_require_root
# shellcheck source=bench/tools/churn_lib.sh
source "$BENCH_ROOT/bench/tools/churn_lib.sh"

secs=${BENCH_CHURN_SECONDS:-5}
warm=1
[[ $BENCH_SMOKE == 1 ]] && secs=1
clients_cases=(1 32)
se_counts=(10 1000 100000)
[[ $BENCH_SMOKE == 1 ]] && se_counts=(10 1000)

# In each mode's lab: the churn server and its ServiceEntry, pod bench-churn, the kernel knobs.
for mode in ebpf nftables; do
  bench_lab_up "$mode"
  churn_server_up
  bench_add_pod bench-churn
  churn_tune_netns
  churn_wait_path bench-churn
done

bench_notes <<EOF
- Server: nginx $(nginx -v 2>&1 | sed 's|.*nginx/||') in ${LAB_NS_NET} on $CHURN_ADDR:80 (\`return 200\`,
  3-byte body, 1 worker), named \`$CHURN_HOST\` by a ServiceEntry (HTTP/80, resolution STATIC,
  endpoint $CHURN_ADDR) so the gateway needs no DNS.
- Client: \`connload churn\` (bench/tools/connload.cc, single-threaded epoll): N clients, each in a
  loop connect / \`GET / HTTP/1.1\` with \`Connection: close\` / read the response / wait for the
  server's close / close. Counted: completed 2xx exchanges per second over ${secs} s after ${warm} s
  of warm-up; failures (connect, reset, timeout, non-2xx, early EOF) are counted separately.
- **tollgate nftables**: client in pod bench-churn (namespace default, enrolled, uid 1000) on the
  lab in nftables mode (instance \`${BENCH_LAB_INSTANCES[nftables]}\`) to $CHURN_ADDR:80: nft
  redirect to the agent's listener, HTTP Host sniffed, decision \`registry\`, an HTTP/2 CONNECT
  stream in a pooled mTLS tunnel to tollgate-gateway in ${LAB_NS_GW}, which connects to nginx.
  Default agent flags (2 pooled TLS connections per identity and gateway).
- **tollgate-nopool nftables**: the same with the agent restarted with \`--tunnel-connections 0\`:
  every flow opens its own TLS 1.3 mTLS connection to the gateway, closed after the flow.
- **tollgate ebpf**, **tollgate-nopool ebpf**: the same two on a second lab up beside it in ebpf
  mode (instance \`${BENCH_LAB_INSTANCES[ebpf]}\`: its own agent, gateway, nginx and bench-churn,
  the same addresses inside its namespaces): the cgroup connect4 hook points each connect at the
  listener before a packet exists (no NAT, no conntrack entry for the redirect). Both labs stay
  up; one is measured at a time.
- **haproxy**: the HAProxy pair of issue 6 (bench_haproxy_pair_up in bench/lib.sh, the same
  configuration as the reqresp scenario): connload in the node netns to HAProxy \`mode http\` on
  127.0.0.1:$CHURN_HAP_PORT, \`server ... ssl crt <client cert from the mesh CA> verify required\` to
  HAProxy in ${LAB_NS_GW} (\`bind ... ssl ... verify required\`), which forwards to nginx. HAProxy's
  default \`http-reuse safe\` sends the first request of every client connection over a new server
  connection, so each client connection costs a TLS connection node -> gateway (HAProxy resumes TLS
  sessions, tollgate does not).
- **haproxy-reuse**: the same pair with \`http-reuse always\` on both sides (port
  $CHURN_HAP_REUSE_PORT): server connections are pooled, the equivalent of tollgate's pooling.
- **direct**: connload in the node netns straight to nginx (no proxy; pods cannot reach outside
  without tollgate because of the host fence). It is the ceiling of the load generator + server on
  this machine: if a proxied figure came near it, the tool would be the bottleneck.
- Entries: tollgate nftables (pooling on) with 10, 1,000 and 100,000 ServiceEntries in the config
  dir (the lab's, \`$CHURN_HOST\` and generated \`svc-<i>.scale.bench\` HTTP/80 entries), loaded by
  both the agent and the gateway; each switch waits until both report a successful reload
  (\`tollgate_config_reloads_ok_total\`, \`tollgate_gateway_config_reloads_ok_total\`). The
  registry is looked up after the redirect, the same code in both modes: measured on nftables only.
- Kernel knobs in each lab's own netns (pod, node, gw, net): \`net.ipv4.tcp_tw_reuse=1\`,
  \`ip_local_port_range 1024 65000\`, so TIME_WAIT sockets do not run the client out of ports.
- All processes share the machine's $(nproc) cores (load generator, agent, gateway, nginx, HAProxy).
EOF

# ---------------------------------------------------------------------------------------------
# Phase A: pooling on / off, HAProxy pair, direct.

churn_haproxy_up

run_target() {  # <target> <clients>: prints connload's JSON
  local target=$1 n=$2
  local args=(churn --connect "$CHURN_ADDR:80" --host "$CHURN_HOST" --clients "$n" --duration "$secs"
    --warmup "$warm")
  case $target in
  direct)
    bench_note_cmd "ip netns exec $LAB_NS_NODE $CONNLOAD ${args[*]}"
    bench_ns node "$CONNLOAD" "${args[@]}"
    ;;
  tollgate* | *entries)
    bench_note_cmd "tollgate-lab exec bench-churn -- $CONNLOAD ${args[*]}   # $target"
    bench_pod bench-churn "$CONNLOAD" "${args[@]}"
    ;;
  haproxy | haproxy-reuse)
    local port=$CHURN_HAP_PORT
    [[ $target == haproxy-reuse ]] && port=$CHURN_HAP_REUSE_PORT
    args=(churn --connect "127.0.0.1:$port" --host "$CHURN_HOST" --clients "$n"
      --duration "$secs" --warmup "$warm")
    bench_note_cmd "ip netns exec $LAB_NS_NODE $CONNLOAD ${args[*]}   # $target"
    bench_ns node "$CONNLOAD" "${args[@]}"
    ;;
  esac
}

measure() {  # <target> <round>
  local target=$1 n out cps failed
  bench_lab_use "$(bench_target_mode "$target")"
  case $target in
  "tollgate "*) churn_agent_mode pool ;;
  "tollgate-nopool "*) churn_agent_mode nopool ;;
  esac
  for n in "${clients_cases[@]}"; do
    out=$(run_target "$target" "$n") || bench_log "connload $target/$n exited nonzero: $out"
    read -r cps failed <<<"$(churn_json "$out" cps failed)"
    local c
    c="$n client$([[ $n == 1 ]] || echo s)"
    bench_sample "$c" "$target" cps "$cps"
    bench_sample "$c" "$target" failed "$failed"
    bench_sample "$c" "$target" p99_ms "$(churn_json "$out" p99_ms)"
    echo "$target $c: $out" >>"$BENCH_WORK/connload.log"
  done
}

tollgates=()
for mode in "${BENCH_MODES[@]}"; do tollgates+=("tollgate $mode" "tollgate-nopool $mode"); done
targets=(direct "${tollgates[@]}" haproxy haproxy-reuse)
bench_rounds measure "${targets[@]}"
for mode in "${BENCH_MODES[@]}"; do
  bench_lab_use "$mode"
  churn_agent_mode pool
done
bench_lab_use nftables
bench_check cps --positive "${targets[@]}"
bench_check p99_ms --positive "${targets[@]}"

bench_mode_table cps "Connections per second (one request each)" --base direct --base haproxy \
  --base haproxy-reuse --unit conn/s
bench_table cps "Connections per second (one request each)" --unit conn/s --ref haproxy
bench_plot cps "Connection churn: new connections per second (median, min/max)" "connections/s"
bench_mode_table p99_ms "Connection latency p99 (connect to server close)" --base direct \
  --base haproxy --unit ms --lower-better
bench_table p99_ms "Connection latency p99 (connect to server close)" --unit ms --ref haproxy \
  --lower-better
bench_table failed "Failed exchanges per run" --ref haproxy --lower-better

# ---------------------------------------------------------------------------------------------
# Phase B: registry size.

measure_se() {  # <target> <round>
  local target=$1 n out cps
  bench_lab_use nftables
  local total=${target%% entries}
  churn_set_entries "${total//,/}"
  for n in "${clients_cases[@]}"; do
    out=$(run_target "$target" "$n") || bench_log "connload $target/$n exited nonzero: $out"
    local c
    c="$n client$([[ $n == 1 ]] || echo s)"
    bench_sample "$c" "$target" cps_se "$(churn_json "$out" cps)"
    bench_sample "$c" "$target" failed_se "$(churn_json "$out" failed)"
    echo "$target $c: $out" >>"$BENCH_WORK/connload.log"
  done
}

se_label() { python3 -c 'import sys; print(f"{int(sys.argv[1]):,} entries")' "$1"; }
se_targets=()
for n in "${se_counts[@]}"; do se_targets+=("$(se_label "$n")"); done
bench_rounds measure_se "${se_targets[@]}"
churn_set_entries 10
bench_check cps_se --positive "${se_targets[@]}"
bench_table cps_se "Connections per second against registry size (pooling on)" --unit conn/s \
  --direct "10 entries" --ref "10 entries"
bench_plot cps_se "Connection churn against ServiceEntries loaded (median, min/max)" "connections/s"
bench_table failed_se "Failed exchanges per run (registry size)" --direct "10 entries" \
  --ref "10 entries" --lower-better
bench_report "Reload times (agent and gateway both reloaded, seconds, as the scenario waited): $(
  tr '\n' ' ' <"$BENCH_WORK/reloads.txt")"
bench_report ""

# ---------------------------------------------------------------------------------------------
# Goals

ratio() {  # <metric> <case> <target A> <target B>: median(A)/median(B)
  python3 -c "$_bench_py_stats"'
rows, _, _ = load(sys.argv[1])
a = rows.get((sys.argv[3], sys.argv[4], sys.argv[2])); b = rows.get((sys.argv[3], sys.argv[5], sys.argv[2]))
print(f"{statistics.median(a) / statistics.median(b):.2f}" if a and b and statistics.median(b) > 0 else "-")
' "$BENCH_SAMPLES" "$@"
}
goal() {  # <value> <threshold>
  awk -v v="$1" -v t="$2" 'BEGIN { if (v == "-") print "n/a"; else print (v + 0 >= t ? "met" : "missed") }'
}
big=$(se_label "${se_counts[-1]}")
bench_report "### Goals"
bench_report ""
for c in "1 client" "32 clients"; do
  s=$(ratio cps_se "$c" "$big" "10 entries")
  line="- $c:"
  for mode in "${BENCH_MODES[@]}"; do
    p=$(ratio cps "$c" "tollgate $mode" "tollgate-nopool $mode")
    h=$(ratio cps "$c" "tollgate $mode" haproxy)
    hr=$(ratio cps "$c" "tollgate $mode" haproxy-reuse)
    line+=" $mode: pooling on / off = ${p}x (goal >= 10x: $(goal "$p" 10)), tollgate / HAProxy pair"
    line+=" = ${h}x (goal >= 1.0x: $(goal "$h" 1)), tollgate / HAProxy pair with http-reuse always"
    line+=" = ${hr}x;"
  done
  e=$(ratio cps "$c" "tollgate ebpf" "tollgate nftables")
  en=$(ratio cps "$c" "tollgate-nopool ebpf" "tollgate-nopool nftables")
  line+=" ebpf / nftables = ${e}x pooled, ${en}x without pooling (goal >= 1.0x: $(goal "$e" 1),"
  line+=" $(goal "$en" 1)); $big / 10 entries (nftables) = ${s}x (goal >= 0.9x: $(goal "$s" 0.9))."
  bench_report "$line"
done
bench_report ""
bench_report "ebpf >= nftables over all rows: connections per second: $(bench_mode_goal cps);" \
  "p99: $(bench_mode_goal p99_ms --lower-better)."
bench_report ""
bench_report_finish "connection churn (new connection per request)"
cat "$BENCH_MD"
