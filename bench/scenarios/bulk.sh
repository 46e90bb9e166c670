# bulk: L4 throughput pod -> pod (in-cluster), iperf3 1 and 4 streams, both directions, through
# tollgate's per-pod listener vs the same hop without tollgate, HAProxy and nginx.
# shellcheck shell=bash disable=SC2154  # set by bench/lib.sh and bench_spawn (printf -v)
bench_require_root
bench_lab_up

secs=${BENCH_BULK_SECONDS:-5}
[[ $BENCH_SMOKE == 1 ]] && secs=1
port=5201
hap_port=15101
ngx_port=15102
direct_ns=bench-direct

# Pods: bench-srv (iperf3 server) and bench-raw (the direct client, also the netns where HAProxy
# and nginx listen) live in a namespace excluded from enrollment, so they have no redirect;
# bench-cli is an ordinary enrolled pod whose connections go through tollgate.
bench_exclude_namespace "$direct_ns"
bench_add_pod bench-srv --namespace "$direct_ns"
bench_add_pod bench-raw --namespace "$direct_ns"
bench_add_pod bench-cli
srv=$(bench_pod_ip bench-srv)
compgen -G "$LAB_AGENT_RUN_DIR/netns/${direct_ns}_*" >/dev/null &&
  bench_die "pods of $direct_ns were enrolled: the direct path would go through tollgate"

bench_spawn iperf_pid "$BENCH_WORK/iperf3-server.log" \
  bench_ns pod:bench-srv iperf3 -s -p "$port"
bench_note_cmd "ip netns exec ${LAB_POD_NS_PREFIX}bench-srv iperf3 -s -p $port"
bench_wait_tcp pod:bench-srv "$srv" "$port"

cat >"$BENCH_WORK/haproxy.cfg" <<CFG
global
  maxconn 4096
  noreuseport
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option splice-auto
listen bulk
  bind 127.0.0.1:$hap_port
  server srv $srv:$port
CFG
bench_spawn hap_pid "$BENCH_WORK/haproxy.log" \
  bench_ns pod:bench-raw haproxy -db -f "$BENCH_WORK/haproxy.cfg"
bench_note_cmd "ip netns exec ${LAB_POD_NS_PREFIX}bench-raw haproxy -db -f haproxy.cfg  # mode tcp, option splice-auto, bind 127.0.0.1:$hap_port, server $srv:$port; nbthread default ($(nproc))"

cat >"$BENCH_WORK/nginx.conf" <<CFG
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
daemon off;
worker_processes auto;
pid $BENCH_WORK/nginx.pid;
error_log $BENCH_WORK/nginx.error.log warn;
events { worker_connections 4096; }
stream {
  server {
    listen 127.0.0.1:$ngx_port;
    proxy_pass $srv:$port;
    tcp_nodelay on;
  }
}
CFG
bench_spawn ngx_pid "$BENCH_WORK/nginx.log" \
  bench_ns pod:bench-raw nginx -p "$BENCH_WORK" -c "$BENCH_WORK/nginx.conf"
bench_note_cmd "ip netns exec ${LAB_POD_NS_PREFIX}bench-raw nginx -c nginx.conf  # stream { listen 127.0.0.1:$ngx_port; proxy_pass $srv:$port; }, worker_processes auto"
bench_wait_tcp pod:bench-raw 127.0.0.1 "$hap_port"
bench_wait_tcp pod:bench-raw 127.0.0.1 "$ngx_port"
bench_alive "$iperf_pid" "iperf3 -s"
bench_alive "$hap_pid" haproxy
bench_alive "$ngx_pid" nginx
agent_pid=$(bench_agent_pid)

bench_notes <<EOF
- Server: \`iperf3 -s\` in pod bench-srv ($srv, namespace $direct_ns, excluded from enrollment).
- **direct**: iperf3 client in pod bench-raw (namespace $direct_ns, not enrolled: no redirect, no
  tollgate) straight to $srv:$port: pod veth -> bridge -> pod veth.
- **tollgate**: iperf3 client in pod bench-cli (namespace default, enrolled): nft redirect to the
  agent's listener 127.0.0.1:15001 in the pod netns, decision \`allow in_cluster\`, upstream socket
  in the pod netns (SO_MARK) to $srv:$port, relayed with splice.
- **haproxy**: HAProxy $(haproxy -v | head -1 | awk '{print $3}') \`mode tcp\` + \`option splice-auto\`
  listening on 127.0.0.1:$hap_port in bench-raw's netns, forwarding to $srv:$port.
- **nginx**: nginx \`stream\` listening on 127.0.0.1:$ngx_port in bench-raw's netns, same upstream.
- Each proxy sits in the same hop (loopback in the client's netns, then the pod's veth). iperf3
  \`-t $secs -O 1\` (first second omitted), receiver-side throughput; "-R" = server sends.
- proxy CPU: utime+stime of the proxy process(es) (agent, haproxy, nginx master+workers) over the
  test, from /proc/<pid>/stat, divided by the bytes moved.
EOF

cases=("1 stream" "1 stream -R" "4 streams" "4 streams -R")

run_iperf() {  # <target> <case>: prints "bits_per_second bytes"
  local target=$1 case=$2 pod=bench-raw host=$srv p=$port args=()
  case $target in
  tollgate) pod=bench-cli ;;
  haproxy) host=127.0.0.1 p=$hap_port ;;
  nginx) host=127.0.0.1 p=$ngx_port ;;
  esac
  [[ $case == 4* ]] && args+=(-P 4)
  [[ $case == *-R ]] && args+=(-R)
  local cmd=(iperf3 -c "$host" -p "$p" -t "$secs" -O 1 -J "${args[@]}")
  bench_note_cmd "tollgate-lab exec $pod -- ${cmd[*]}   # $target, $case"
  local try out
  for try in 1 2 3; do
    if out=$(bench_pod "$pod" "${cmd[@]}" 2>&1); then
      python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
s = d["end"]["sum_received"]
print(s["bits_per_second"], s["bytes"])' <<<"$out" && return 0
    fi
    bench_log "iperf3 $target/$case failed (try $try): $(tail -c 200 <<<"$out")"
    sleep 1
  done
  return 1
}

proxy_pids() {
  case $1 in
  tollgate) echo "$agent_pid" ;;
  haproxy) echo "$hap_pid" ;;
  nginx) echo "$ngx_pid" ;;
  esac
}

measure() {  # <target> <round>
  local target=$1 c res bps bytes cpu0 cpu1 pids
  for c in "${cases[@]}"; do
    pids=$(proxy_pids "$target")
    [[ -n $pids ]] && cpu0=$(bench_cpu_seconds_tree $pids)
    res=$(run_iperf "$target" "$c") || bench_die "iperf3 $target/$c failed 3 times"
    read -r bps bytes <<<"$res"
    bench_sample "$c" "$target" gbps "$(awk -v b="$bps" 'BEGIN{printf "%.4f", b / 1e9}')"
    if [[ -n $pids ]]; then
      cpu1=$(bench_cpu_seconds_tree $pids)
      bench_sample "$c" "$target" cpu_s_per_gb \
        "$(awk -v a="$cpu0" -v b="$cpu1" -v n="$bytes" 'BEGIN{printf "%.4f", (b - a) / (n / 1e9)}')"
    fi
  done
}

# One untimed warm-up through tollgate proves the path (and that the decision is in_cluster).
run_iperf tollgate "1 stream" >/dev/null || bench_die "iperf3 through tollgate does not work"
grep -q '"reason":"in_cluster"' "$LAB_STATE/logs/access.log" ||
  bench_log "warning: no in_cluster line in the agent's access log yet"

bench_rounds measure direct tollgate haproxy nginx

bench_table gbps "Throughput" --unit Gbit/s --ref haproxy
bench_plot gbps "L4 bulk throughput (iperf3, median, min/max)" "Gbit/s"
bench_table cpu_s_per_gb "Proxy CPU per GB moved" --unit "CPU s/GB" --ref haproxy --lower-better
r=$(python3 -c "$_bench_py_stats"'
rows, cases, _ = load(sys.argv[1])
rs = [statistics.median(rows[(c, "tollgate", "gbps")]) / statistics.median(rows[(c, "haproxy", "gbps")])
      for c in cases if (c, "tollgate", "gbps") in rows and (c, "haproxy", "gbps") in rows]
print(f"{min(rs):.2f}x-{max(rs):.2f}x (geometric mean {statistics.geometric_mean(rs):.2f}x)" if rs else "-")
' "$BENCH_SAMPLES")
bench_report "Goal: L4 bulk >= 1.0x HAProxy splice-auto. tollgate / haproxy throughput over the cases: $r."
bench_report_finish "L4 bulk throughput pod -> pod"
cat "$BENCH_MD"
