# reqresp: 1 KB HTTP responses at a fixed rate (h2load --h1 --rps, 1,000 rps in total over 4, 16
# and 64 connections), pod -> external name through the node proxy and the gateway (HTTP/2 CONNECT
# mTLS tunnel), against direct and against an HAProxy pair (ssl client on the node -> ssl verify
# required on the gateway). Latency added over direct, proxy CPU per 1,000 requests, proxy RSS.
# The tollgate path twice: the lab in nftables mode and a second lab in ebpf mode.
# shellcheck shell=bash disable=SC2154  # set by bench/lib.sh and bench_spawn (printf -v)
bench_require_root
bench_lab_up

secs=${BENCH_REQRESP_SECONDS:-10}
conns_list=(4 16 64)
rate=${BENCH_REQRESP_RPS:-1000}
if [[ $BENCH_SMOKE == 1 ]]; then
  secs=2
  conns_list=(4)
fi
name=bench.httpbin.test   # the lab resolver answers every name under httpbin.test with its address
srv_addr=$(bench_lab addr httpbin.test)
srv_port=8081
gw_addr=$(bench_lab addr gateway)
hap_node_port=15201
hap_gw_port=15208

# The server, in each mode's lab: a separate nginx in tg-net on httpbin.test's address, port 8081,
# answering every request with a 1,024-byte body (the lab's own nginx proxies to a python echo
# server); the registry entry that allows the pod -> $name:$srv_port (agent and gateway share the
# config); the client pod bench-cli.
body=$(printf 'x%.0s' $(seq 1 1024))
declare -A srv_pid_of agent_of gateway_of
tollgate_path_up() {  # <mode>
  local mode=$1 dir=$BENCH_WORK/nginx-srv-$1 spawned
  bench_lab_up "$mode"
  mkdir -p "$dir"
  cat >"$dir/nginx.conf" <<CFG
daemon off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  server {
    listen $srv_addr:$srv_port;
    default_type text/plain;
    location / { return 200 "$body"; }
  }
}
CFG
  bench_spawn spawned "$BENCH_WORK/nginx-srv-$mode.log" \
    bench_ns net nginx -p "$dir" -c "$dir/nginx.conf"
  srv_pid_of[$mode]=$spawned
  bench_note_cmd "ip netns exec $LAB_NS_NET nginx -c nginx.conf  # listen $srv_addr:$srv_port; return 200 <1,024 bytes>; worker_processes 1 ($mode lab)"
  bench_wait_tcp net "$srv_addr" "$srv_port"
  bench_config 90-bench-reqresp.yaml "# written by bench/scenarios/reqresp.sh
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: bench-reqresp
  namespace: default
spec:
  hosts: [\"$name\"]
  location: MESH_EXTERNAL
  resolution: DNS
  ports:
  - number: $srv_port
    name: http
    protocol: HTTP"
  bench_add_pod bench-cli
  agent_of[$mode]=$(bench_agent_pid)
  gateway_of[$mode]=$(bench_gateway_pid)
}
tollgate_path_up ebpf
tollgate_path_up nftables

# The HAProxy pair (bench/lib.sh): certificates from the lab's mesh CA, the same CA as
# tollgate's SVIDs; HAProxy's default http-reuse.
bench_haproxy_pair_up "$srv_addr" "$srv_port" "$hap_node_port" "$hap_gw_port"
hap_gw_pid=$BENCH_HAP_GW_PID
hap_node_pid=$BENCH_HAP_NODE_PID
bench_alive "${srv_pid_of[nftables]}" "nginx (server, nftables lab)"
bench_alive "${srv_pid_of[ebpf]}" "nginx (server, ebpf lab)"
bench_alive "$hap_gw_pid" "haproxy (gateway)"
bench_alive "$hap_node_pid" "haproxy (node)"

bench_notes <<EOF
- Server: nginx (1 worker, access log off) in tg-net on $srv_addr:$srv_port (httpbin.test's
  address), every response a 1,024-byte body; \`$name\` resolves to it through the lab resolver.
  ServiceEntry \`$name:$srv_port\` (HTTP) in lab config \`90-bench-reqresp.yaml\`.
- **direct**: h2load in the node netns ($LAB_NS_NODE, no tollgate on this path) to
  http://$name:$srv_port/ (node -> tg-net).
- **tollgate nftables**: h2load in pod bench-cli (enrolled) on the lab in nftables mode
  (instance \`${BENCH_LAB_INSTANCES[nftables]}\`): nft redirect to the agent's listener in the pod
  netns, HTTP sniff + decision (allow registry), HTTP/2 CONNECT stream over the pooled TLS 1.3
  mTLS tunnel (pod SVID) to tollgate-gateway on $gw_addr:15008, which re-decides and connects to
  nginx. Proxy processes: tollgate-agent + tollgate-gateway.
- **tollgate ebpf**: the same on a second lab up beside it in ebpf mode (instance
  \`${BENCH_LAB_INSTANCES[ebpf]}\`: its own agent, gateway and nginx server, the same addresses
  inside its namespaces): the cgroup connect4 hook points the connect at the listener (no NAT, no
  conntrack entry for the redirect). Both labs stay up; one is measured at a time.
- **haproxy**: h2load in the node netns to HAProxy \`mode http\` on 127.0.0.1:$hap_node_port
  (node), \`server ... ssl crt <client cert from the mesh CA> ca-file <mesh root> verify required\`
  to HAProxy \`mode http\` on $gw_addr:$hap_gw_port in the gateway netns (\`bind ... ssl crt
  <gateway SVID> ca-file <mesh root> verify required\`), which forwards to nginx. Same hops as
  tollgate (loopback, node -> gateway link, gateway -> node -> tg-net). Default \`http-reuse safe\`
  (server-side connection reuse, like tollgate's pooled tunnels); HAProxy verifies the chain, not the
  gateway's IP SAN.
- h2load \`--h1 -c C --rps $rate/C -D $secs --warm-up-time 1\` ($rate requests/s in total),
  latency per request from \`--log-file\` (start to end of response); percentiles over all
  requests of a run; tables give the median over rounds.
- CPU: utime+stime of the proxy processes over the run (/proc/<pid>/stat) per 1,000 completed
  requests; RSS: VmRSS summed over the proxy processes after the run.
EOF

run_h2load() {  # <target> <conns>: prints "p50 p90 p99 completed failed" (latencies in ms)
  local target=$1 c=$2 where url
  local per
  per=$(awk -v r="$rate" -v c="$c" 'BEGIN{printf "%g", r / c}')
  case $target in
  direct) where=node url=http://$name:$srv_port/ ;;
  tollgate*) where=pod url=http://$name:$srv_port/ ;;
  haproxy) where=node url=http://127.0.0.1:$hap_node_port/ ;;
  esac
  bench_lab_use "$(bench_target_mode "$target")"
  local log=$BENCH_WORK/h2load-${target// /-}-$c.log
  rm -f "$log"
  local cmd=(h2load --h1 -c "$c" --rps "$per" -D "$secs" --warm-up-time 1 --log-file "$log" "$url")
  local out
  if [[ $where == pod ]]; then
    bench_note_cmd "tollgate-lab exec bench-cli -- ${cmd[*]}   # $target"
    # uid 1000 cannot write into BENCH_WORK (mode 700): the log goes through a world-writable dir.
    local plog
    plog=$(mktemp -d /tmp/bench-h2load.XXXXXX)
    chmod 777 "$plog"
    cmd=(h2load --h1 -c "$c" --rps "$per" -D "$secs" --warm-up-time 1 --log-file "$plog/log" "$url")
    out=$(bench_pod bench-cli "${cmd[@]}" 2>&1) || true
    mv "$plog/log" "$log" 2>/dev/null || true
    rm -rf "$plog"
  else
    bench_note_cmd "ip netns exec $LAB_NS_NODE ${cmd[*]}   # $target"
    out=$(bench_ns node "${cmd[@]}" 2>&1) || true
  fi
  [[ -s $log ]] || {
    bench_log "h2load $target c=$c wrote no log: $(tail -c 400 <<<"$out")"
    return 1
  }
  python3 - "$log" <<'PY'
import sys
lat, failed = [], 0
for line in open(sys.argv[1]):
    parts = line.split()
    if len(parts) < 3: continue
    if parts[1] != "200":
        failed += 1
        continue
    lat.append(int(parts[2]) / 1000.0)
lat.sort()
def pct(p):
    return lat[min(len(lat) - 1, int(round(p * (len(lat) - 1))))] if lat else float("nan")
print(f"{pct(0.5):.4f} {pct(0.9):.4f} {pct(0.99):.4f} {len(lat)} {failed}")
PY
}

proxy_pids() {
  local mode
  mode=$(bench_target_mode "$1")
  case $1 in
  tollgate*) echo "${agent_of[$mode]} ${gateway_of[$mode]}" ;;
  haproxy) echo "$hap_node_pid $hap_gw_pid" ;;
  esac
}

measure() {  # <target> <round>
  local target=$1 c res p50 p90 p99 done_ failed cpu0 cpu1 pids
  for c in "${conns_list[@]}"; do
    local case="$c conns"
    pids=$(proxy_pids "$target")
    # shellcheck disable=SC2086
    [[ -n $pids ]] && cpu0=$(bench_cpu_seconds_tree $pids)
    res=$(run_h2load "$target" "$c") || bench_die "h2load $target c=$c failed"
    read -r p50 p90 p99 done_ failed <<<"$res"
    ((failed == 0)) || bench_log "warning: $target c=$c: $failed failed requests"
    ((done_ > 0)) || bench_die "h2load $target c=$c: no successful request"
    bench_sample "$case" "$target" p50_ms "$p50"
    bench_sample "$case" "$target" p90_ms "$p90"
    bench_sample "$case" "$target" p99_ms "$p99"
    bench_sample "$case" "$target" failed "$failed"
    bench_sample "$case" "$target" rps "$(awk -v n="$done_" -v s="$secs" 'BEGIN{printf "%.1f", n / s}')"
    if [[ -n $pids ]]; then
      # shellcheck disable=SC2086
      cpu1=$(bench_cpu_seconds_tree $pids)
      bench_sample "$case" "$target" cpu_s_per_1k \
        "$(awk -v a="$cpu0" -v b="$cpu1" -v n="$done_" 'BEGIN{printf "%.5f", (b - a) / (n / 1000)}')"
      # shellcheck disable=SC2086
      bench_sample "$case" "$target" rss_mb \
        "$(awk -v k="$(bench_rss_kb_tree $pids)" 'BEGIN{printf "%.2f", k / 1024}')"
    fi
  done
}

# One untimed request through each path proves it works before measuring.
for mode in "${BENCH_MODES[@]}"; do
  bench_lab_use "$mode"
  bench_pod bench-cli curl -sf -o /dev/null --max-time 5 "http://$name:$srv_port/" ||
    bench_die "GET http://$name:$srv_port/ through tollgate ($mode lab) failed (see $LAB_STATE/logs)"
done
bench_lab_use nftables
bench_ns node curl -sf -o /dev/null --max-time 5 "http://127.0.0.1:$hap_node_port/" ||
  bench_die "GET through the HAProxy pair failed (see $BENCH_WORK/haproxy-*.log)"

tollgates=()
for mode in "${BENCH_MODES[@]}"; do tollgates+=("tollgate $mode"); done
bench_rounds measure direct "${tollgates[@]}" haproxy
bench_check p99_ms --positive direct "${tollgates[@]}" haproxy
bench_check rps --positive direct "${tollgates[@]}" haproxy
bench_check cpu_s_per_1k "${tollgates[@]}" haproxy

{
  echo "### Latency added over direct"
  echo
  echo "Median over rounds of each run's percentile, minus direct's median (ms); in brackets the"
  echo "ratio to the HAProxy pair's added latency."
  echo
  python3 -c "$_bench_py_stats"'
rows, cases, targets = load(sys.argv[1])
med = lambda c, t, m: statistics.median(rows[(c, t, m)]) if (c, t, m) in rows else None
print("| case | direct p50 / p90 / p99 (ms) | target | added p50 | added p90 | added p99 |")
print("|---|---|---|---|---|---|")
for c in cases:
    d = [med(c, "direct", m) for m in ("p50_ms", "p90_ms", "p99_ms")]
    if None in d: continue
    for t in targets:
        if t == "direct" or med(c, t, "p50_ms") is None: continue
        cells = []
        for i, m in enumerate(("p50_ms", "p90_ms", "p99_ms")):
            a = med(c, t, m) - d[i]
            h = med(c, "haproxy", m)
            ha = h - d[i] if h is not None else None
            r = f" ({a / ha:.2f}x)" if ha and ha > 0 and t != "haproxy" else ""
            cells.append(f"{a:+.3f}{r}")
        print(f"| {c} | {d[0]:.3f} / {d[1]:.3f} / {d[2]:.3f} | {t} | " + " | ".join(cells) + " |")
' "$BENCH_SAMPLES"
  echo
} | bench_report
bench_mode_table p99_ms "p99 latency" --base direct --base haproxy --unit ms --lower-better
bench_table p99_ms "p99 latency" --unit ms --ref haproxy --lower-better
bench_plot p99_ms "1 KB responses at $rate rps: p99 latency (median, min/max over rounds)" "ms"
bench_mode_table p50_ms "p50 latency" --base direct --base haproxy --unit ms --lower-better
bench_table p50_ms "p50 latency" --unit ms --ref haproxy --lower-better
bench_mode_table cpu_s_per_1k "Proxy CPU per 1,000 requests (agent + gateway)" --base haproxy \
  --unit "CPU s" --lower-better
bench_table cpu_s_per_1k "Proxy CPU per 1,000 requests (tollgate: agent + gateway; haproxy: both)" \
  --unit "CPU s" --ref haproxy --lower-better
bench_plot cpu_s_per_1k "Proxy CPU seconds per 1,000 requests" "CPU s / 1,000 requests"
bench_mode_table rss_mb "Proxy RSS after the run (agent + gateway)" --base haproxy --unit MB --lower-better
bench_table rss_mb "Proxy RSS after the run (summed over the proxy processes)" --unit MB --ref haproxy --lower-better
bench_table rps "Completed requests per second" --unit req/s --ref haproxy
added_p99() {  # <target A> <target B> <label>: each case's added p99 (over direct) of A against B
  python3 -c "$_bench_py_stats"'
rows, cases, _ = load(sys.argv[1])
a, b, label = sys.argv[2:5]
med = lambda c, t: statistics.median(rows[(c, t, "p99_ms")])
out = []
for c in cases:
    try:
        d, x, y = med(c, "direct"), med(c, a), med(c, b)
    except KeyError:
        continue
    ok = "met" if x - d <= y - d else "missed"
    out.append(f"{c}: {x - d:+.3f} ms vs {y - d:+.3f} ms ({ok})")
print(label + ": " + ("; ".join(out) or "-"))
' "$BENCH_SAMPLES" "$@"
}
bench_report "Goal: added p99 <= the HAProxy pair's. $(added_p99 "tollgate nftables" haproxy nftables)." \
  "$(added_p99 "tollgate ebpf" haproxy ebpf)."
bench_report ""
bench_report "Goal: ebpf >= nftables. $(added_p99 "tollgate ebpf" "tollgate nftables" \
  "Added p99, ebpf vs nftables"). p99: $(bench_mode_goal p99_ms --lower-better). CPU per 1,000" \
  "requests: $(bench_mode_goal cpu_s_per_1k --lower-better)."
bench_report_finish "1 KB request/response through the node proxy and gateway"
cat "$BENCH_MD"
