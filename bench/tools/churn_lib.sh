# shellcheck shell=bash disable=SC2034
# Set-up shared by bench/scenarios/churn.sh and footprint.sh (sourced after bench/lib.sh and
# bench_lab_up): the churn server in tg-net, its ServiceEntry, agent restarts with/without tunnel
# pooling, registry-size switching, and connload (bench/tools/connload.cc). Each function acts on
# the current lab (bench_lab_use); churn_server_up and churn_agent_mode keep their state per lab.

CONNLOAD=${CONNLOAD:-$BIN_DIR/bench/tools/connload}
[[ -x $CONNLOAD ]] || bench_die "$CONNLOAD is not built (cmake --build <dir> --target connload)"
CHURN_ADDR=198.18.0.230   # tg-net .200-.254 are free for test tooling
CHURN_HOST=churn.bench
CHURN_SE_FILE=90-churn.yaml
CHURN_SCALE_FILE=95-churn-scale.yaml
: >"$BENCH_WORK/reloads.txt"

churn_json() {  # <json> <key>...: the values, space-separated (p99_ms/p50_ms from *_us)
  python3 -c '
import json, sys
try:
    d = json.loads(sys.argv[1].strip().splitlines()[-1])
except Exception:
    d = {}
out = []
for k in sys.argv[2:]:
    if k.endswith("_ms"):
        v = d.get(k[:-3] + "_us"); out.append(f"{v / 1000:.3f}" if v is not None else "")
    else:
        out.append(str(d.get(k, "")))
print(" ".join(out))' "$1" "${@:2}"
}

# The pod through which churn_set_entries/churn_agent_mode check that the path works again.
CHURN_PROBE_POD=${CHURN_PROBE_POD:-bench-churn}

churn_server_up() {
  local dir=$BENCH_WORK/churn-nginx-$TOLLGATE_LAB_INSTANCE
  bench_ns net ip addr replace "$CHURN_ADDR/32" dev lo
  mkdir -p "$dir"
  cat >"$dir/nginx.conf" <<CFG
daemon off;
worker_processes 1;
worker_rlimit_nofile 65536;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 32768; }
http {
  access_log off;
  keepalive_timeout 900s;
  keepalive_requests 100000;
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  server {
    listen $CHURN_ADDR:80 reuseport backlog=4096;
    location / { return 200 "ok\n"; }
  }
}
CFG
  # `ip netns exec` execs nginx, so the pid bench_spawn records is nginx's master (a bench_ns
  # function would be a subshell, and stopping it would leave nginx running).
  bench_spawn CHURN_NGINX_PID "$dir/out.log" \
    ip netns exec "$LAB_NS_NET" nginx -p "$dir" -c "$dir/nginx.conf"
  bench_note_cmd "ip netns exec $LAB_NS_NET nginx -c nginx.conf  # worker_processes 1; listen $CHURN_ADDR:80; return 200 \"ok\\n\""
  bench_wait_tcp net "$CHURN_ADDR" 80
  bench_config "$CHURN_SE_FILE" "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: churn-bench
  namespace: default
spec:
  hosts: [\"$CHURN_HOST\"]
  location: MESH_EXTERNAL
  resolution: STATIC
  endpoints:
  - address: $CHURN_ADDR
  ports:
  - number: 80
    name: http
    protocol: HTTP"
}

# TIME_WAIT reuse and a wide port range in the lab's own namespaces (never the host's).
churn_tune_netns() {
  local ns
  for ns in "$LAB_NS_NODE" "$LAB_NS_GW" "$LAB_NS_NET" $(ip netns list | awk '{print $1}' |
    grep "^$LAB_POD_NS_PREFIX" || true); do
    ip netns exec "$ns" sysctl -qw net.ipv4.tcp_tw_reuse=1 \
      "net.ipv4.ip_local_port_range=1024 65000" 2>/dev/null || true
  done
}

# churn_wait_path <pod>: until an HTTP request to the churn server through tollgate returns 200.
churn_wait_path() {
  local pod=$1 i code
  for ((i = 0; i < 100; i++)); do
    code=$(bench_pod "$pod" curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
      -H "Host: $CHURN_HOST" "http://$CHURN_ADDR/" 2>/dev/null || true)
    [[ $code == 200 ]] && return 0
    sleep 0.2
  done
  bench_die "no 200 from $CHURN_HOST through tollgate from pod $pod (last: ${code:-none})"
}

# churn_agent_mode pool|nopool: restarts the current lab's agent with/without tunnel pooling if
# needed (each lab's agent starts pooled).
declare -gA CHURN_AGENT_MODES=()
churn_agent_mode() {
  local want=$1
  [[ $want == "${CHURN_AGENT_MODES[$TOLLGATE_LAB_INSTANCE]:-pool}" ]] && return 0
  local extra=""
  [[ $want == nopool ]] && extra="--tunnel-connections 0"
  bench_log "agent restart (${want}, ${BENCH_LAB_MODE:-nftables} lab)"
  TOLLGATE_AGENT_EXTRA_ARGS=$extra "$LAB" agent restart >>"$BENCH_WORK/agent-restarts.log" 2>&1 ||
    bench_die "agent restart ($want) failed (see $LAB_STATE/logs/agent.log)"
  bench_note_cmd "TOLLGATE_AGENT_EXTRA_ARGS='$extra' tollgate-lab agent restart   # $want, ${BENCH_LAB_MODE:-nftables} lab"
  CHURN_AGENT_MODES[$TOLLGATE_LAB_INSTANCE]=$want
  churn_wait_path "$CHURN_PROBE_POD"
}

# churn_wait_reloads <agent ok before> <gateway ok before> <secs>: both reloaded, or die (also on a
# rejected reload, which would leave the old registry in place).
churn_wait_reloads() {
  local a0=$1 g0=$2 secs=$3 start=$SECONDS af g
  af=$(_bench_metric_sum node 15020 tollgate_config_reloads_failed_total)
  while ((SECONDS - start < secs)); do
    if (($(_bench_metric_sum node 15020 tollgate_config_reloads_ok_total) > a0)) &&
      (($(_bench_metric_sum gw 15020 tollgate_gateway_config_reloads_ok_total) > g0)); then
      return 0
    fi
    sleep 0.2
  done
  bench_die "agent/gateway did not reload within ${secs}s (see $LAB_STATE/logs)"
}

# churn_scale_yaml <n> <file>: n HTTP/80 ServiceEntries svc-<i>.scale.bench (multi-document).
churn_scale_yaml() {
  python3 - "$1" "$2" <<'PY'
import sys
n, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w") as f:
    for i in range(n):
        f.write(f"---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n"
                f"  name: scale-{i}\n  namespace: default\nspec:\n"
                f"  hosts: [\"svc-{i}.scale.bench\"]\n  location: MESH_EXTERNAL\n"
                f"  resolution: DNS\n  ports:\n  - number: 80\n    name: http\n"
                f"    protocol: HTTP\n")
PY
}

# churn_set_entries <total>: makes the config dir hold <total> ServiceEntries (the lab's, the churn
# server's and generated ones) and waits until agent and gateway have both loaded it.
CHURN_SE_TOTAL=""
churn_set_entries() {
  local total=$1
  [[ $total == "$CHURN_SE_TOTAL" ]] && return 0
  local base fill f a0 g0 t0
  base=$(cat "$LAB_CONFIG_DIR"/*.y*ml 2>/dev/null | grep -c '^kind: ServiceEntry' || true)
  if [[ -f $LAB_CONFIG_DIR/$CHURN_SCALE_FILE ]]; then
    base=$((base - $(grep -c '^kind: ServiceEntry' "$LAB_CONFIG_DIR/$CHURN_SCALE_FILE" || true)))
  fi
  fill=$((total - base))
  ((fill >= 0)) || bench_die "the lab already has $base ServiceEntries (> $total)"
  f=$BENCH_WORK/scale-$fill.yaml
  [[ -f $f ]] || churn_scale_yaml "$fill" "$f"
  a0=$(_bench_metric_sum node 15020 tollgate_config_reloads_ok_total)
  g0=$(_bench_metric_sum gw 15020 tollgate_gateway_config_reloads_ok_total)
  t0=$EPOCHREALTIME
  cp "$f" "$LAB_CONFIG_DIR/.$CHURN_SCALE_FILE.tmp"
  mv "$LAB_CONFIG_DIR/.$CHURN_SCALE_FILE.tmp" "$LAB_CONFIG_DIR/$CHURN_SCALE_FILE"
  churn_wait_reloads "$a0" "$g0" 600
  local took
  took=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b - a}')
  echo "$total:${took}s" >>"$BENCH_WORK/reloads.txt"
  bench_log "$total ServiceEntries loaded (${took}s)"
  bench_note_cmd "# $total ServiceEntries: $((fill)) generated in $CHURN_SCALE_FILE (svc-<i>.scale.bench, HTTP/80)"
  CHURN_SE_TOTAL=$total
  churn_wait_path "$CHURN_PROBE_POD"
}

# The HAProxy pair (bench_haproxy_pair_up in bench/lib.sh) in front of the churn server, twice:
# "haproxy" with HAProxy's default http-reuse (safe: every new client connection gets a new TLS
# connection to the gateway side) and "haproxy-reuse" with `http-reuse always` (pooled, like
# tollgate's tunnels). Clients reach them on 127.0.0.1 in the node netns.
CHURN_HAP_PORT=15211
CHURN_HAP_REUSE_PORT=15221
churn_haproxy_up() {
  bench_haproxy_pair_up "$CHURN_ADDR" 80 "$CHURN_HAP_PORT" 15218 || return 1
  CHURN_HAP_PIDS="$BENCH_HAP_NODE_PID $BENCH_HAP_GW_PID"
  bench_haproxy_pair_up "$CHURN_ADDR" 80 "$CHURN_HAP_REUSE_PORT" 15228 always || return 1
  CHURN_HAP_REUSE_PIDS="$BENCH_HAP_NODE_PID $BENCH_HAP_GW_PID"
  local p
  for p in "$CHURN_HAP_PORT" "$CHURN_HAP_REUSE_PORT"; do
    bench_ns node curl -sf -o /dev/null --max-time 5 -H "Host: $CHURN_HOST" "http://127.0.0.1:$p/" ||
      bench_die "GET through the HAProxy pair on :$p failed (see $BENCH_WORK/haproxy-*.log)"
  done
}
