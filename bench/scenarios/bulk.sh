# bulk: L4 throughput pod -> pod (in-cluster), iperf3 1 and 4 streams, both directions, through
# tollgate's per-pod listener (the lab in nftables mode and a second lab in ebpf mode) vs the same
# hop without tollgate, HAProxy and nginx.
# shellcheck shell=bash disable=SC2154  # set by bench/lib.sh and bench_spawn (printf -v)
bench_require_root

secs=${BENCH_BULK_SECONDS:-5}
[[ $BENCH_SMOKE == 1 ]] && secs=1
port=5201
hap_port=15101
ngx_port=15102
direct_ns=bench-direct

# Pods, in each mode's lab: bench-srv (iperf3 server) and, on the nftables lab, bench-raw (the
# direct client, also the netns where HAProxy and nginx listen) live in a namespace excluded from
# enrollment, so they have no redirect; bench-cli is an ordinary enrolled pod whose connections go
# through tollgate.
declare -A srv_of agent_of iperf_of
tollgate_path_up() {  # <mode>
  local mode=$1 spawned
  bench_lab_up "$mode"
  bench_exclude_namespace "$direct_ns"
  bench_add_pod bench-srv --namespace "$direct_ns"
  [[ $mode == nftables ]] && bench_add_pod bench-raw --namespace "$direct_ns"
  bench_add_pod bench-cli
  srv_of[$mode]=$(bench_pod_ip bench-srv)
  compgen -G "$LAB_AGENT_RUN_DIR/netns/${direct_ns}_*" >/dev/null &&
    bench_die "pods of $direct_ns were enrolled: the direct path would go through tollgate"
  bench_spawn spawned "$BENCH_WORK/iperf3-server-$mode.log" \
    bench_ns pod:bench-srv iperf3 -s -p "$port"
  iperf_of[$mode]=$spawned
  bench_note_cmd "ip netns exec ${LAB_POD_NS_PREFIX}bench-srv iperf3 -s -p $port   # $mode lab"
  bench_wait_tcp pod:bench-srv "${srv_of[$mode]}" "$port"
  agent_of[$mode]=$(bench_agent_pid)
}
tollgate_path_up ebpf
tollgate_path_up nftables
srv=${srv_of[nftables]}

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
bench_alive "${iperf_of[nftables]}" "iperf3 -s (nftables lab)"
bench_alive "${iperf_of[ebpf]}" "iperf3 -s (ebpf lab)"
bench_alive "$hap_pid" haproxy
bench_alive "$ngx_pid" nginx

bench_notes <<EOF
- Server: \`iperf3 -s\` in pod bench-srv ($srv, namespace $direct_ns, excluded from enrollment).
- **direct**: iperf3 client in pod bench-raw (namespace $direct_ns, not enrolled: no redirect, no
  tollgate) straight to $srv:$port: pod veth -> bridge -> pod veth.
- **tollgate nftables**: iperf3 client in pod bench-cli (namespace default, enrolled) on the lab
  in nftables mode (instance \`${BENCH_LAB_INSTANCES[nftables]}\`): nft redirect to the agent's
  listener 127.0.0.1:15001 in the pod netns, decision \`allow in_cluster\`, upstream socket in the
  pod netns (SO_MARK) to $srv:$port, relayed with splice.
- **tollgate ebpf**: the same on a second lab up beside it in ebpf mode (instance
  \`${BENCH_LAB_INSTANCES[ebpf]}\`, its own bench-srv at ${srv_of[ebpf]}:$port, its own agent): the
  cgroup connect4 hook points the client's connect at 127.0.0.1:15001 before a packet exists (no
  NAT, no conntrack entry for the redirect), the rest is the same path. Both labs stay up during
  the run; only one is measured at a time.
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
  tollgate*) pod=bench-cli host=${srv_of[$(bench_target_mode "$target")]} ;;
  haproxy) host=127.0.0.1 p=$hap_port ;;
  nginx) host=127.0.0.1 p=$ngx_port ;;
  esac
  [[ $case == 4* ]] && args+=(-P 4)
  [[ $case == *-R ]] && args+=(-R)
  local cmd=(iperf3 -c "$host" -p "$p" -t "$secs" -O 1 -J "${args[@]}")
  bench_note_cmd "tollgate-lab exec $pod -- ${cmd[*]}   # $target, $case"
  bench_lab_use "$(bench_target_mode "$target")"
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
  tollgate*) echo "${agent_of[$(bench_target_mode "$1")]}" ;;
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

# One untimed warm-up through tollgate in each mode proves the path (and that the decision is
# in_cluster).
for mode in "${BENCH_MODES[@]}"; do
  run_iperf "tollgate $mode" "1 stream" >/dev/null ||
    bench_die "iperf3 through tollgate ($mode lab) does not work"
  grep -q '"reason":"in_cluster"' "$LAB_STATE/logs/access.log" ||
    bench_log "warning: no in_cluster line in the $mode agent's access log yet"
done

tollgates=()
for mode in "${BENCH_MODES[@]}"; do tollgates+=("tollgate $mode"); done
bench_rounds measure direct "${tollgates[@]}" haproxy nginx
bench_check gbps --positive direct "${tollgates[@]}" haproxy nginx
bench_check cpu_s_per_gb "${tollgates[@]}" haproxy nginx

bench_mode_table gbps "Throughput" --base direct --base haproxy --unit Gbit/s
bench_table gbps "Throughput" --unit Gbit/s --ref haproxy
bench_plot gbps "L4 bulk throughput (iperf3, median, min/max)" "Gbit/s"
bench_mode_table cpu_s_per_gb "Proxy CPU per GB moved" --base haproxy --unit "CPU s/GB" --lower-better
bench_table cpu_s_per_gb "Proxy CPU per GB moved" --unit "CPU s/GB" --ref haproxy --lower-better
vs_haproxy() {  # <target>: its throughput / haproxy's over the cases
  python3 -c "$_bench_py_stats"'
rows, cases, _ = load(sys.argv[1])
t = sys.argv[2]
rs = [statistics.median(rows[(c, t, "gbps")]) / statistics.median(rows[(c, "haproxy", "gbps")])
      for c in cases if (c, t, "gbps") in rows and (c, "haproxy", "gbps") in rows]
print(f"{min(rs):.2f}x-{max(rs):.2f}x (geometric mean {statistics.geometric_mean(rs):.2f}x)" if rs else "-")
' "$BENCH_SAMPLES" "$1"
}
bench_report "Goal: L4 bulk >= 1.0x HAProxy splice-auto. Throughput / haproxy over the cases:" \
  "nftables $(vs_haproxy "tollgate nftables"), ebpf $(vs_haproxy "tollgate ebpf")."
bench_report ""
bench_report "Goal: ebpf >= nftables. Throughput: $(bench_mode_goal gbps); CPU per GB:" \
  "$(bench_mode_goal cpu_s_per_gb --lower-better)."
bench_report_finish "L4 bulk throughput pod -> pod"
cat "$BENCH_MD"
