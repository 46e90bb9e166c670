# shellcheck shell=bash disable=SC2034  # variables here are used by the scenarios
# bench/lib.sh: the benchmark harness, sourced by bench/run before each bench/scenarios/<name>.sh.
# A scenario is a bash file run in its own subshell (`set -euo pipefail`); it exits 0 when it
# wrote its results, 77 to skip (e.g. not root), anything else on failure.
#
# Environment (read here, all optional):
#   BENCH_SMOKE=1          1 round, tiny sizes and durations (seconds per scenario): the ctest smoke.
#   BENCH_ROUNDS=N         rounds (default 5; 1 with BENCH_SMOKE).
#   BENCH_OUT=dir          where results go (default <repo>/bench/results).
#   TOLLGATE_LAB_INSTANCE  lab instance in nftables mode (default b: the bench's own lab, beside
#                          the e2e lab); every scenario's baselines and nftables figures run there.
#   BENCH_EBPF_LAB_INSTANCE  lab instance in ebpf mode, up beside the first one for the tollgate
#                          path's ebpf figures (default TOLLGATE_LAB_INSTANCE + "e": be).
#   TOLLGATE_BIN_DIR       tollgate binaries (default TOLLGATE_BUILD_DIR or <repo>/build/release).
#   BENCH_LAB_FRESH=1      bring each lab up anew on first use even if it is up (the ctest smoke).
#   BENCH_KEEP_LAB=1       leave the labs up at the end (bench/run downs one only if it brought it up).
#
# Variables a scenario can use: BENCH_ROOT (repo), BENCH_NAME (scenario), BENCH_DATE (UTC day),
#   BENCH_MD (results file, <BENCH_OUT>/<date>-<scenario>.md), BENCH_WORK (scratch dir, removed at
#   exit), BENCH_ROUNDS, BENCH_SMOKE (0/1), BIN_DIR, LAB (tollgate-lab path), BENCH_MODES (the
#   redirect modes, "nftables ebpf") and after bench_lab_up the current lab's mode BENCH_LAB_MODE
#   and names: LAB_STATE, LAB_CONFIG_DIR, LAB_NS_NODE, LAB_NS_NET, LAB_NS_GW, LAB_POD_NS_PREFIX, ...
#
# Functions:
#   bench_require_root             exit 77 ("needs root") unless root.
#   bench_machine                  machine description as markdown bullets.
#   bench_lab_up [nftables|ebpf]   bring that mode's lab instance up (default nftables; reused if
#                                  already up in that mode), make it the current lab, load its names.
#                                  Both can be up at once: a scenario measures the tollgate path in
#                                  each mode in the same rounds (targets "tollgate nftables",
#                                  "tollgate ebpf"), its baselines on the nftables lab.
#   bench_lab_use <nftables|ebpf>  make that mode's lab (already up) the current one: everything
#                                  below (bench_lab, bench_ns, bench_pod, bench_config, pids) acts on it.
#   bench_target_mode <target>     the mode of a target named "<variant> <mode>", else nftables.
#   bench_lab_down                 take the current lab down (bench/run does this at the end).
#   bench_agent_pid, bench_gateway_pid, bench_pod_ip <pod>   from the lab's state files.
#   bench_lab <args...>            run tollgate-lab with the bench's instance.
#   bench_ns <node|net|gw|pod:NAME> <cmd...>   run a command as root in that netns (no cgroup);
#                                  bench_pod <name> <cmd...> = `tollgate-lab exec <name> -- cmd`
#                                  (uid 1000, the pod's netns and cgroup, like a pod process).
#   bench_add_pod <name> [add-pod args...]   tollgate-lab add-pod unless the pod exists.
#   bench_exclude_namespace <ns>   add <ns> to TollgateConfig.excludedNamespaces of the lab
#                                  instance's config copy (pods created there later are not
#                                  enrolled: the "direct" pod path) and wait for the reload.
#   bench_config <file> <yaml>     write <yaml> to the lab config dir as <file> (e.g. 90-bench.yaml:
#                                  ServiceEntries the bench needs); waits until agent and gateway
#                                  reloaded it.
#   bench_spawn <pidvar> <logfile> <cmd...>  start a background process (killed at scenario exit),
#                                  its pid in <pidvar> (the process itself, also when <cmd> is
#                                  bench_ns/bench_pod: they exec; other shell functions would leave
#                                  a subshell pid). Run servers in the foreground (-db, daemon off)
#                                  so the pid is the server's. bench_stop <pid>: SIGTERM, wait, SIGKILL.
#   bench_alive <pid> <what>       die unless the process still runs (call after bench_wait_tcp).
#   bench_wait_tcp <ns-spec> <addr> <port> [seconds]  wait until a listener accepts (ns as bench_ns).
#   bench_cpu_seconds <pid>        utime+stime of the process (all threads) in seconds, /proc/<pid>/stat.
#   bench_rss_kb <pid>             VmRSS in kB from /proc/<pid>/status.
#   bench_cpu_seconds_tree / bench_rss_kb_tree <pid...>  the same summed over the processes and
#                                  their descendants (nginx master + workers); bench_pids_tree <pid>.
#   bench_haproxy_pair_up <srv addr> <srv port> <node port> <gw port> [http-reuse]  the HAProxy
#                                  pair (node ssl client -> gateway ssl verify required -> server).
#   bench_cmd <cmd...>             record the exact command line (for the report) and run it.
#   bench_note_cmd <text>          record a command line without running it.
#   bench_rounds <fn> <target...>  for round 1..BENCH_ROUNDS: call `fn <target> <round>` for each
#                                  target, order rotated every round (A B C, B C A, ...) so targets
#                                  are interleaved and no target always runs first.
#   bench_sample <case> <target> <metric> <value>  record one measurement (TSV in BENCH_WORK).
#   bench_stat <case> <target> <metric> <median|min|max|q1|q3|n|mean>  one statistic ("" if none).
#   bench_table <metric> <title> [--direct T] [--ref T] [--unit U] [--lower-better]
#                                  markdown table: one row per case x target with median, min-max,
#                                  n, ratio to the direct target and to the reference (HAProxy)
#                                  target of the same case; appended to the report.
#   bench_mode_table <metric> <title> [--base T]... [--unit U] [--lower-better]
#                                  the modes side by side: one row per case x variant (targets
#                                  "<variant> nftables" / "<variant> ebpf"), median (min-max) of
#                                  each, the --base targets' medians, ebpf / nftables and which way
#                                  is better; then how many rows have ebpf at least as good.
#   bench_mode_goal <metric> [--lower-better]  that count as one line (a scenario's Goal line).
#   bench_check <metric> [--positive] <target...>  dies unless every case of <metric> has
#                                  BENCH_ROUNDS numeric samples (> 0 with --positive) for each
#                                  target: what the smoke asserts (each mode measured, numbers out).
#   bench_plot <metric> <title> <ylabel>   PNG (gnuplot, clustered bars of medians with min/max
#                                  error bars, one cluster per case) next to BENCH_MD; linked in it.
#   bench_notes                    append stdin (markdown: what "direct" etc. mean) to the Setup part.
#   bench_report <text...>         append a line (markdown) to the report body; with no argument,
#                                  appends stdin.
#   bench_report_finish <title>    write BENCH_MD: title, machine, notes, commands, body.
#                                  Call once, at the end of the scenario.
# Cases and targets are free strings without tabs (e.g. case "1 stream up", target "tollgate").

set -euo pipefail

BENCH_ROOT=${BENCH_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
BENCH_SMOKE=${BENCH_SMOKE:-0}
[[ $BENCH_SMOKE == 1 ]] || BENCH_SMOKE=0
if [[ $BENCH_SMOKE == 1 ]]; then BENCH_ROUNDS=${BENCH_ROUNDS:-1}; else BENCH_ROUNDS=${BENCH_ROUNDS:-5}; fi
BENCH_OUT=${BENCH_OUT:-$BENCH_ROOT/bench/results}
BENCH_DATE=${BENCH_DATE:-$(date -u +%Y-%m-%d)}
export TOLLGATE_LAB_INSTANCE=${TOLLGATE_LAB_INSTANCE-b}
BENCH_MODES=(nftables ebpf)
declare -gA BENCH_LAB_INSTANCES=(
  [nftables]=$TOLLGATE_LAB_INSTANCE
  [ebpf]=${BENCH_EBPF_LAB_INSTANCE:-${TOLLGATE_LAB_INSTANCE}e}
)
if [[ ${BENCH_LAB_INSTANCES[ebpf]} == "${BENCH_LAB_INSTANCES[nftables]}" ]]; then
  echo "bench: the ebpf lab instance must not be the nftables one ('$TOLLGATE_LAB_INSTANCE')" >&2
  exit 2
fi
if ((${#BENCH_LAB_INSTANCES[ebpf]} > 3)); then  # tollgate-lab takes 1-3 characters
  echo "bench: set BENCH_EBPF_LAB_INSTANCE: '${BENCH_LAB_INSTANCES[ebpf]}' is too long for a lab instance" >&2
  exit 2
fi
BIN_DIR=${TOLLGATE_BIN_DIR:-${TOLLGATE_BUILD_DIR:-$BENCH_ROOT/build/release}}
export TOLLGATE_BIN_DIR=$BIN_DIR
LAB=$BENCH_ROOT/lab/tollgate-lab
mkdir -p "$BENCH_OUT"

# bench_begin <scenario>: called by bench/run before sourcing the scenario.
bench_begin() {
  BENCH_NAME=$1
  BENCH_MD=$BENCH_OUT/$BENCH_DATE-$BENCH_NAME.md
  BENCH_WORK=$(mktemp -d "/tmp/bench-$BENCH_NAME.XXXXXX")
  BENCH_SAMPLES=$BENCH_WORK/samples.tsv
  : >"$BENCH_SAMPLES"
  : >"$BENCH_WORK/cmds.txt"
  : >"$BENCH_WORK/body.md"
  : >"$BENCH_WORK/pids"
  trap _bench_cleanup EXIT
  bench_machine >"$BENCH_WORK/machine.md"  # at the start: date and load average before the run
}

_bench_cleanup() {
  local pid
  if [[ -f ${BENCH_WORK:-/nonexistent}/pids ]]; then
    while read -r pid; do bench_stop "$pid" 2>/dev/null || true; done <"$BENCH_WORK/pids"
  fi
  [[ -n ${BENCH_WORK:-} && ${BENCH_KEEP_WORK:-0} != 1 ]] && rm -rf "$BENCH_WORK"
  return 0
}

bench_log() { echo "bench[$BENCH_NAME]: $*" >&2; }
bench_die() {
  bench_log "error: $*"
  exit 1
}

bench_require_root() {
  if [[ $EUID -ne 0 ]]; then
    bench_log "needs root (skipped)"
    exit 77
  fi
}

bench_machine() {
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "- cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') ($(nproc) cores)"
  echo "- memory: $(free -h | awk '/Mem:/{print $2}')"
  echo "- kernel: $(uname -r); $(. /etc/os-release && echo "$PRETTY_NAME")"
  echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  # bench/results left out: the run's own results (an earlier scenario's) are not a change to what
  # is measured.
  echo "- tollgate: $(git -C "$BENCH_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(
    [[ -n $(git -C "$BENCH_ROOT" status --porcelain -- . ':!bench/results' 2>/dev/null | head -1) ]] &&
      echo ' (+ uncommitted changes)'
  ), binaries from $BIN_DIR"
  local v
  # awk NR==1 rather than head -1: with pipefail, head closing the pipe fails the whole line.
  v=$(iperf3 --version 2>/dev/null | awk 'NR==1{print $1" "$2}') && [[ -n $v ]] && echo "- $v"
  v=$(haproxy -v 2>/dev/null | awk 'NR==1{print "HAProxy "$3}') && [[ -n $v ]] && echo "- $v"
  v=$(nginx -v 2>&1 | sed 's|.*nginx/|nginx |') && [[ -n $v ]] && echo "- $v"
  v=$(h2load --version 2>/dev/null | awk 'NR==1') && [[ -n $v ]] && echo "- $v"
  echo "- rounds: $BENCH_ROUNDS$([[ $BENCH_SMOKE == 1 ]] && echo ' (smoke)')"
}

# ---------------------------------------------------------------------------------------------
# The lab

bench_lab() { "$LAB" "$@"; }

_bench_lab_env() {
  eval "$("$LAB" env)"
  LAB_CONFIG_DIR=$LAB_STATE/config
}

bench_lab_up() {
  local mode=${1:-nftables}
  bench_require_root
  [[ -n ${BENCH_LAB_INSTANCES[$mode]+x} ]] || bench_die "bench_lab_up: unknown mode '$mode'"
  BENCH_LAB_MODE=$mode
  export TOLLGATE_LAB_INSTANCE=${BENCH_LAB_INSTANCES[$mode]}
  _bench_lab_env
  # BENCH_LAB_FRESH: a fresh lab on first use in this run (`up` removes the remains of a previous one).
  local started=${BENCH_RUN_STATE:-/nonexistent}/lab-started.$TOLLGATE_LAB_INSTANCE fresh=0
  [[ ${BENCH_LAB_FRESH:-0} == 1 && ! -f $started ]] && fresh=1
  # The files config source, not up's kubernetes default: the scenarios change the config by
  # writing the lab's config directory (bench_config) and measure the data path, which is the
  # same whichever source fed the snapshot (the e2e suite covers the kubernetes source).
  if ((fresh == 0)) && [[ -f $LAB_STATE/up && $(cat "$LAB_STATE/mode" 2>/dev/null) == "$mode" ]] &&
    [[ $(cat "$LAB_STATE/config-source" 2>/dev/null || echo files) == files ]] &&
    bench_lab status >/dev/null 2>&1; then
    bench_log "reusing lab instance '${TOLLGATE_LAB_INSTANCE}' ($mode)"
  else
    bench_log "lab instance '${TOLLGATE_LAB_INSTANCE}' up in $mode mode (binaries $BIN_DIR)"
    [[ -x $BIN_DIR/agent/tollgate-agent ]] || bench_die "$BIN_DIR/agent/tollgate-agent is not built"
    "$LAB" up --mode "$mode" --config-source files >"$BENCH_WORK/lab-up-$mode.log" 2>&1 || {
      tail -n 30 "$BENCH_WORK/lab-up-$mode.log" >&2
      bench_die "tollgate-lab up --mode $mode --config-source files failed"
    }
    # bench/run downs a lab at the end only if this run brought it up.
    [[ -n ${BENCH_RUN_STATE:-} ]] && touch "$started"
  fi
  _bench_lab_env
  printf '%s\n' "$mode" >>"$BENCH_WORK/modes-used"
}

bench_lab_use() {
  local mode=$1
  [[ ${BENCH_LAB_MODE:-} == "$mode" ]] && return 0
  [[ -n ${BENCH_LAB_INSTANCES[$mode]+x} ]] || bench_die "bench_lab_use: unknown mode '$mode'"
  BENCH_LAB_MODE=$mode
  export TOLLGATE_LAB_INSTANCE=${BENCH_LAB_INSTANCES[$mode]}
  _bench_lab_env
}

bench_target_mode() {
  case $1 in
  *" ebpf") echo ebpf ;;
  *) echo nftables ;;
  esac
}

bench_agent_pid() { tr -dc '0-9' <"$LAB_STATE/agent.pid"; }
bench_gateway_pid() { tr -dc '0-9' <"$LAB_STATE/gateway.pid"; }
bench_pod_ip() { cat "$LAB_STATE/pods/$1/ip"; }

bench_lab_down() { "$LAB" down >/dev/null 2>&1 || true; }

# bench_ns <node|net|gw|pod:NAME> <cmd...>: root in that netns.
bench_ns() {
  local where=$1 ns
  shift
  case $where in
  node) ns=$LAB_NS_NODE ;;
  net) ns=$LAB_NS_NET ;;
  gw | gateway) ns=$LAB_NS_GW ;;
  pod:*) ns=$LAB_POD_NS_PREFIX${where#pod:} ;;
  *) bench_die "bench_ns: unknown place '$where'" ;;
  esac
  ${BENCH_EXEC:-} ip netns exec "$ns" "$@"
}

bench_pod() {
  local pod=$1
  shift
  ${BENCH_EXEC:-} "$LAB" exec "$pod" -- "$@"
}

bench_add_pod() {
  local name=$1
  shift
  ip netns list | grep -qw "$LAB_POD_NS_PREFIX$name" && return 0
  "$LAB" add-pod "$name" "$@" >"$BENCH_WORK/add-pod-$name.log" 2>&1 || {
    cat "$BENCH_WORK/add-pod-$name.log" >&2
    bench_die "add-pod $name failed"
  }
}

_bench_metric_sum() {  # <ns-spec> <port> <metric name>
  bench_ns "$1" curl -s --max-time 2 "http://127.0.0.1:$2/metrics" 2>/dev/null |
    awk -v m="$3" '$1 == m || index($1, m "{") == 1 {s += $2} END {print s + 0}'
}

# _bench_reloaded <before-agent> <before-gateway>: waits until both reloaded (60 s: a hang bound).
_bench_wait_reload() {
  local a0=$1 g0=$2 i
  for ((i = 0; i < 1200; i++)); do
    if (($(_bench_metric_sum node 15020 tollgate_config_reloads_ok_total) > a0)) &&
      { ! bench_lab gateway status >/dev/null 2>&1 ||
        (($(_bench_metric_sum gw 15020 tollgate_gateway_config_reloads_ok_total) > g0)); }; then
      return 0
    fi
    sleep 0.05
  done
  bench_die "the agent/gateway did not reload the config within 60 s (see $LAB_STATE/logs)"
}

bench_config() {
  local file=$1 yaml=$2 a0 g0
  if [[ -f $LAB_CONFIG_DIR/$file ]] && [[ $(cat "$LAB_CONFIG_DIR/$file") == "$yaml" ]]; then
    return 0
  fi
  a0=$(_bench_metric_sum node 15020 tollgate_config_reloads_ok_total)
  g0=$(_bench_metric_sum gw 15020 tollgate_gateway_config_reloads_ok_total)
  printf '%s\n' "$yaml" >"$LAB_CONFIG_DIR/$file.tmp"
  mv "$LAB_CONFIG_DIR/$file.tmp" "$LAB_CONFIG_DIR/$file"
  _bench_wait_reload "$a0" "$g0"
}

bench_exclude_namespace() {
  local ns=$1 f=$LAB_CONFIG_DIR/00-tollgate-config.yaml a0 g0
  [[ -f $f ]] || bench_die "no $f"
  grep -q "^  excludedNamespaces:.*\b$ns\b" "$f" && return 0
  a0=$(_bench_metric_sum node 15020 tollgate_config_reloads_ok_total)
  g0=$(_bench_metric_sum gw 15020 tollgate_gateway_config_reloads_ok_total)
  python3 - "$f" "$ns" <<'PY'
import re, sys
path, ns = sys.argv[1], sys.argv[2]
text = open(path).read()
m = re.search(r"^  excludedNamespaces: \[(.*)\]$", text, re.M)
if m:
    items = [s.strip() for s in m.group(1).split(",") if s.strip()] + [ns]
    text = text[:m.start()] + "  excludedNamespaces: [" + ", ".join(items) + "]" + text[m.end():]
else:
    text = re.sub(r"^spec:\n", "spec:\n  excludedNamespaces: [" + ns + "]\n", text, count=1, flags=re.M)
open(path + ".tmp", "w").write(text)
PY
  mv "$f.tmp" "$f"
  _bench_wait_reload "$a0" "$g0"
}

# ---------------------------------------------------------------------------------------------
# Processes

bench_spawn() {
  local __var=$1 log=$2
  shift 2
  # BENCH_EXEC=exec makes bench_ns/bench_pod exec the command, so $! is the process itself (not
  # a subshell whose child would outlive bench_stop).
  (
    # shellcheck disable=SC2209  # the word "exec", not its output
    BENCH_EXEC=exec
    "$@"
  ) </dev/null >>"$log" 2>&1 &
  local pid=$!
  echo "$pid" >>"$BENCH_WORK/pids"
  printf -v "$__var" '%s' "$pid"
}

bench_stop() {
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 40; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.05
  done
  kill -KILL "$pid" 2>/dev/null || true
}

# bench_alive <pid> <what>: dies unless the process still runs (e.g. a server that failed to bind
# while a leftover listener answers bench_wait_tcp).
bench_alive() {
  sleep 0.2  # a server that cannot bind exits within milliseconds
  kill -0 "$1" 2>/dev/null || bench_die "$2 (pid $1) is not running; see its log in $BENCH_WORK"
}

bench_wait_tcp() {
  local where=$1 addr=$2 port=$3 secs=${4:-10} i
  for ((i = 0; i < secs * 20; i++)); do
    bench_ns "$where" bash -c "exec 3<>/dev/tcp/$addr/$port" 2>/dev/null && return 0
    sleep 0.05
  done
  bench_die "nothing listens on $addr:$port in $where after ${secs}s"
}

bench_cpu_seconds() {
  # Fields 14 and 15 (utime, stime) after the ")" that ends the command name.
  local stat
  stat=$(cat "/proc/$1/stat") || return 1
  stat=${stat##*) }
  awk -v t="$(getconf CLK_TCK)" '{printf "%.3f\n", ($12 + $13) / t}' <<<"$stat"
}

bench_rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }

# bench_pids_tree <pid>: the pid and its descendants (nginx master + workers, etc.).
bench_pids_tree() {
  local p
  echo "$1"
  for p in $(pgrep -P "$1" 2>/dev/null); do bench_pids_tree "$p"; done
}

# bench_cpu_seconds_tree <pid...>: CPU seconds of those processes and their descendants.
bench_cpu_seconds_tree() {
  local p total=0 c
  for p in $(for q in "$@"; do bench_pids_tree "$q"; done); do
    c=$(bench_cpu_seconds "$p" 2>/dev/null) || continue
    total=$(awk -v a="$total" -v b="$c" 'BEGIN{printf "%.3f", a + b}')
  done
  echo "$total"
}

# bench_rss_kb_tree <pid...>: summed VmRSS (kB) of those processes and their descendants.
bench_rss_kb_tree() {
  local p total=0 r
  for p in $(for q in "$@"; do bench_pids_tree "$q"; done); do
    r=$(bench_rss_kb "$p" 2>/dev/null) || continue
    total=$((total + ${r:-0}))
  done
  echo "$total"
}

# bench_haproxy_pair_up <srv addr> <srv port> <node port> <gw port> [http-reuse mode]: the HAProxy
# pair of issue 6 (the same configuration as reqresp.sh): HAProxy `mode http` on 127.0.0.1:<node
# port> in the node netns, `server ... ssl crt <client cert from the mesh CA> ca-file <mesh root>
# verify required` to HAProxy on <gateway>:<gw port> in the gateway netns (`bind ... ssl ... verify
# required`), which forwards to <srv addr>:<srv port>. Default `http-reuse` is HAProxy's (safe: the
# first request of a client connection gets its own server connection). Sets BENCH_HAP_NODE_PID,
# BENCH_HAP_GW_PID. Used by reqresp.sh and churn.sh.
bench_haproxy_pair_up() {
  local srv_addr=$1 srv_port=$2 node_port=$3 gw_port=$4 reuse=${5:-} ca=$LAB_STATE/ca
  local pki=$BENCH_WORK/pki-hap gw_addr
  gw_addr=$(bench_lab addr gateway)
  if [[ ! -f $pki/client.pem ]]; then
    mkdir -p "$pki"
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/client-key.pem" 2>/dev/null
    openssl req -new -key "$pki/client-key.pem" -subj "/O=tollgate bench" -out "$pki/client.csr" 2>/dev/null
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\nsubjectAltName=critical,URI:spiffe://cluster.local/ns/default/sa/bench\n' \
      >"$pki/client.ext"
    openssl x509 -req -in "$pki/client.csr" -CA "$ca/ca-cert.pem" -CAkey "$ca/ca-key.pem" \
      -set_serial "0x$(openssl rand -hex 16)" -days 1 -sha256 -extfile "$pki/client.ext" \
      -out "$pki/client-leaf.pem" 2>/dev/null
    cat "$pki/client-leaf.pem" "$ca/cert-chain.pem" "$pki/client-key.pem" >"$pki/client.pem"
    cat "$ca/gateway.pem" "$ca/gateway-key.pem" >"$pki/gateway.pem"
  fi
  local tag=$node_port
  cat >"$BENCH_WORK/haproxy-node-$tag.cfg" <<CFG
global
  maxconn 4096
  noreuseport
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
${reuse:+  http-reuse $reuse}
listen egress
  bind 127.0.0.1:$node_port
  server gw $gw_addr:$gw_port ssl crt $pki/client.pem ca-file $ca/root-cert.pem verify required
CFG
  cat >"$BENCH_WORK/haproxy-gw-$tag.cfg" <<CFG
global
  maxconn 4096
  noreuseport
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
${reuse:+  http-reuse $reuse}
listen ingress
  bind $gw_addr:$gw_port ssl crt $pki/gateway.pem ca-file $ca/root-cert.pem verify required
  server srv $srv_addr:$srv_port
CFG
  # `ip netns exec` execs haproxy, so the recorded pids are haproxy's own and bench_stop ends
  # them (a bench_ns function would run in a subshell that bench_stop kills, leaving haproxy).
  bench_spawn BENCH_HAP_GW_PID "$BENCH_WORK/haproxy-gw-$tag.log" \
    ip netns exec "$LAB_NS_GW" haproxy -db -f "$BENCH_WORK/haproxy-gw-$tag.cfg"
  bench_spawn BENCH_HAP_NODE_PID "$BENCH_WORK/haproxy-node-$tag.log" \
    ip netns exec "$LAB_NS_NODE" haproxy -db -f "$BENCH_WORK/haproxy-node-$tag.cfg"
  bench_note_cmd "ip netns exec $LAB_NS_GW haproxy -db -f haproxy-gw.cfg  # mode http;${reuse:+ http-reuse $reuse;} bind $gw_addr:$gw_port ssl crt <gateway SVID> ca-file <mesh root> verify required; server $srv_addr:$srv_port"
  bench_note_cmd "ip netns exec $LAB_NS_NODE haproxy -db -f haproxy-node.cfg  # mode http;${reuse:+ http-reuse $reuse;} bind 127.0.0.1:$node_port; server $gw_addr:$gw_port ssl crt <client SVID> ca-file <mesh root> verify required"
  bench_wait_tcp gw "$gw_addr" "$gw_port"
  bench_wait_tcp node 127.0.0.1 "$node_port"
}

# ---------------------------------------------------------------------------------------------
# Measurements and statistics

bench_note_cmd() { printf '%s\n' "$*" >>"$BENCH_WORK/cmds.txt"; }

bench_cmd() {
  local q
  q=$(printf '%q ' "$@")
  bench_note_cmd "${q% }"
  "$@"
}

bench_rounds() {
  local fn=$1 r i n
  shift
  local targets=("$@")
  n=${#targets[@]}
  for ((r = 1; r <= BENCH_ROUNDS; r++)); do
    for ((i = 0; i < n; i++)); do
      local t=${targets[$(((i + r - 1) % n))]}
      bench_log "round $r/$BENCH_ROUNDS: $t"
      "$fn" "$t" "$r"
    done
  done
}

bench_sample() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$BENCH_SAMPLES"; }

_bench_py_stats='
import statistics, sys
def load(path):
    rows, cases, targets = {}, [], []
    for line in open(path):
        parts = line.rstrip("\n").split("\t")
        if len(parts) != 4: continue
        c, t, m, v = parts
        try: v = float(v)
        except ValueError: continue
        rows.setdefault((c, t, m), []).append(v)
        if c not in cases: cases.append(c)
        if t not in targets: targets.append(t)
    return rows, cases, targets
def q(vals, p):
    s = sorted(vals)
    if len(s) == 1: return s[0]
    k = (len(s) - 1) * p
    lo = int(k); hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)
def stat(vals, name):
    return {"median": lambda: statistics.median(vals), "min": lambda: min(vals),
            "max": lambda: max(vals), "q1": lambda: q(vals, 0.25), "q3": lambda: q(vals, 0.75),
            "n": lambda: len(vals), "mean": lambda: statistics.fmean(vals)}[name]()
def fmt(v):
    if v == 0: return "0"
    a = abs(v)
    if a >= 100: return f"{v:,.0f}"
    if a >= 10: return f"{v:.1f}"
    if a >= 1: return f"{v:.2f}"
    return f"{v:.3g}"
'

bench_stat() {
  python3 -c "$_bench_py_stats"'
rows, _, _ = load(sys.argv[1])
vals = rows.get((sys.argv[2], sys.argv[3], sys.argv[4]))
print(repr(stat(vals, sys.argv[5])) if vals else "")
' "$BENCH_SAMPLES" "$@"
}

bench_table() {
  local metric=$1 title=$2
  shift 2
  local direct=direct ref=haproxy unit="" better=higher
  while (($#)); do
    case $1 in
    --direct) direct=$2; shift 2 ;;
    --ref) ref=$2; shift 2 ;;
    --unit) unit=$2; shift 2 ;;
    --lower-better) better=lower; shift ;;
    *) bench_die "bench_table: unknown option $1" ;;
    esac
  done
  python3 -c "$_bench_py_stats"'
metric, title, direct, ref, unit, better = sys.argv[2:8]
rows, cases, targets = load(sys.argv[1])
u = f" ({unit})" if unit else ""
print(f"### {title}")
print()
print(f"Median of n rounds, min-max in brackets; ratios are medians over the same case\x27s "
      f"`{direct}` and `{ref}` medians ({better} is better).")
print()
print(f"| case | target | median{u} | min-max | n | vs {direct} | vs {ref} |")
print("|---|---|---|---|---|---|---|")
for c in cases:
    d = rows.get((c, direct, metric)); r = rows.get((c, ref, metric))
    dm = statistics.median(d) if d else None
    rm = statistics.median(r) if r else None
    for t in targets:
        v = rows.get((c, t, metric))
        if not v: continue
        m = statistics.median(v)
        rd = f"{m / dm:.2f}x" if dm else "-"
        rr = f"{m / rm:.2f}x" if rm else "-"
        print(f"| {c} | {t} | {fmt(m)} | {fmt(min(v))}-{fmt(max(v))} | {len(v)} | {rd} | {rr} |")
print()
' "$BENCH_SAMPLES" "$metric" "$title" "$direct" "$ref" "$unit" "$better" >>"$BENCH_WORK/body.md"
}

# The modes' rows: (case, variant, nftables values, ebpf values) for targets "<variant> nftables"
# and "<variant> ebpf" that both have samples of the metric in the case.
_bench_py_modes='
def mode_rows(rows, cases, targets, metric):
    variants = [t[:-len(" nftables")] for t in targets if t.endswith(" nftables")]
    out = []
    for c in cases:
        for v in variants:
            n = rows.get((c, v + " nftables", metric)); e = rows.get((c, v + " ebpf", metric))
            if n and e: out.append((c, v, n, e))
    return out
def mode_summary(mrows, lower):
    if not mrows: return "no row has both modes"
    rs = [(statistics.median(e) / statistics.median(n) if statistics.median(n) else float("inf"), c, v)
          for c, v, n, e in mrows]
    good = [r for r in rs if (r[0] <= 1 if lower else r[0] >= 1)]
    worst = max(rs) if lower else min(rs)
    pos = [r[0] for r in rs if 0 < r[0] < float("inf")]
    gm = f", geometric mean {statistics.geometric_mean(pos):.2f}x" if pos else ""
    way = "lower" if lower else "higher"
    many = len({r[2] for r in rs}) > 1
    where = f"{worst[1]}, {worst[2]}" if many else worst[1]
    return (f"ebpf at least as good as nftables in {len(good)} of {len(rs)} rows "
            f"(ebpf / nftables {min(r[0] for r in rs):.2f}x-{max(r[0] for r in rs):.2f}x{gm}; "
            f"{way} is better; worst: {where}, {worst[0]:.2f}x)")
'

bench_mode_table() {
  local metric=$1 title=$2
  shift 2
  local unit="" better=higher bases=()
  while (($#)); do
    case $1 in
    --base) bases+=("$2"); shift 2 ;;
    --unit) unit=$2; shift 2 ;;
    --lower-better) better=lower; shift ;;
    *) bench_die "bench_mode_table: unknown option $1" ;;
    esac
  done
  python3 -c "$_bench_py_stats$_bench_py_modes"'
metric, title, unit, better = sys.argv[2:6]
bases = sys.argv[6:]
rows, cases, targets = load(sys.argv[1])
u = f" ({unit})" if unit else ""
mrows = mode_rows(rows, cases, targets, metric)
cell = lambda v: f"{fmt(statistics.median(v))} ({fmt(min(v))}-{fmt(max(v))})" if v else "-"
med = lambda c, t: fmt(statistics.median(rows[(c, t, metric)])) if (c, t, metric) in rows else "-"
cmp = "<=" if better == "lower" else ">="
print(f"### {title}: ebpf vs nftables")
print()
print(f"The tollgate path with the lab in each redirect mode, measured in the same rounds; median of "
      f"n rounds, min-max in brackets{u}. ebpf / nftables is the ratio of the medians: "
      f"{better} is better, so ebpf is at least as good where it is {cmp} 1.00x.")
print()
# The variant column only when there is more than one (churn: tollgate, tollgate-nopool).
many = len({v for _, v, _, _ in mrows}) > 1
print("| case | " + ("tollgate | " if many else "") + "".join(f"{b} | " for b in bases) +
      "nftables | ebpf | n | ebpf / nftables |")
print("|---|" + ("---|" if many else "") + "---|" * len(bases) + "---|---|---|---|")
for c, v, n, e in mrows:
    bcells = "".join(f"{med(c, b)} | " for b in bases)
    r = statistics.median(e) / statistics.median(n) if statistics.median(n) else float("inf")
    print(f"| {c} | " + (f"{v} | " if many else "") +
          f"{bcells}{cell(n)} | {cell(e)} | {len(n)}/{len(e)} | {r:.2f}x |")
print()
print(mode_summary(mrows, better == "lower") + ".")
print()
' "$BENCH_SAMPLES" "$metric" "$title" "$unit" "$better" "${bases[@]}" >>"$BENCH_WORK/body.md"
}

bench_mode_goal() {
  python3 -c "$_bench_py_stats$_bench_py_modes"'
rows, cases, targets = load(sys.argv[1])
print(mode_summary(mode_rows(rows, cases, targets, sys.argv[2]), sys.argv[3] == "lower"))
' "$BENCH_SAMPLES" "$1" "$([[ ${2:-} == --lower-better ]] && echo lower || echo higher)"
}

bench_check() {
  local metric=$1 positive=0
  shift
  [[ ${1:-} == --positive ]] && { positive=1; shift; }
  python3 -c "$_bench_py_stats"'
metric, rounds, positive = sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
rows, cases, _ = load(sys.argv[1])
cases = [c for c in cases if any(k[0] == c and k[2] == metric for k in rows)]
bad = []
if not cases: bad.append(f"no samples of {metric}")
for c in cases:
    for t in sys.argv[5:]:
        v = rows.get((c, t, metric), [])
        if len(v) != rounds or (positive and min(v) <= 0):
            bad.append(f"{c} / {t}: {len(v)} of {rounds} samples" + (f", min {min(v)}" if v else ""))
if bad:
    print("; ".join(bad))
    sys.exit(1)
' "$BENCH_SAMPLES" "$metric" "$BENCH_ROUNDS" "$positive" "$@" >"$BENCH_WORK/check.out" ||
    bench_die "measurements of $metric missing: $(cat "$BENCH_WORK/check.out")"
}

bench_plot() {
  local metric=$1 title=$2 ylabel=$3 png dat ntargets
  png=$BENCH_OUT/$BENCH_DATE-$BENCH_NAME-${metric//[^A-Za-z0-9_-]/_}.png
  dat=$BENCH_WORK/plot-$metric.dat
  python3 -c "$_bench_py_stats"'
metric = sys.argv[2]
rows, cases, targets = load(sys.argv[1])
targets = [t for t in targets if any((c, t, metric) in rows for c in cases)]
with open(sys.argv[3], "w") as f:
    f.write("case\t" + "\t".join(f"\"{t}\"\tmin\tmax" for t in targets) + "\n")
    for c in cases:
        cols = []
        for t in targets:
            v = rows.get((c, t, metric))
            cols += [str(statistics.median(v)), str(min(v)), str(max(v))] if v else ["0", "0", "0"]
        f.write(f"\"{c}\"\t" + "\t".join(cols) + "\n")
print(len(targets))
' "$BENCH_SAMPLES" "$metric" "$dat" >"$BENCH_WORK/plot-n"
  ntargets=$(cat "$BENCH_WORK/plot-n")
  ((ntargets > 0)) || return 0
  gnuplot <<EOF || { bench_log "gnuplot failed for $metric"; return 0; }
set terminal pngcairo size 900,480 noenhanced font ",10"
set output "$png"
set title "$title"
set ylabel "$ylabel"
set style data histogram
set style histogram errorbars gap 2 lw 1
set style fill solid 0.8 border -1
set key outside right top
set yrange [0:*]
set xtics rotate by -20
set datafile separator "\t"
plot for [i=0:$((ntargets - 1))] "$dat" using (column(2+3*i)):(column(3+3*i)):(column(4+3*i)):xtic(1) title columnheader(2+3*i)
EOF
  bench_report "![$title]($(basename "$png"))"
  bench_report ""
}

bench_report() {
  if (($#)); then printf '%s\n' "$*" >>"$BENCH_WORK/body.md"; else cat >>"$BENCH_WORK/body.md"; fi
}

# bench_notes: setup description (markdown) shown before the commands; stdin.
bench_notes() { cat >>"$BENCH_WORK/notes.md"; }

bench_report_finish() {
  local title=$1
  {
    echo "# $BENCH_NAME: $title"
    echo
    cat "$BENCH_WORK/machine.md"
    echo "- load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    if [[ -s $BENCH_WORK/notes.md ]]; then
      echo "## Setup"
      echo
      cat "$BENCH_WORK/notes.md"
      echo
    fi
    echo "## Commands"
    echo
    echo '```'
    echo "BENCH_ROUNDS=$BENCH_ROUNDS BENCH_SMOKE=$BENCH_SMOKE TOLLGATE_LAB_INSTANCE=${BENCH_LAB_INSTANCES[nftables]}$(
      grep -qx ebpf "$BENCH_WORK/modes-used" 2>/dev/null &&
        echo " BENCH_EBPF_LAB_INSTANCE=${BENCH_LAB_INSTANCES[ebpf]}") bench/run $BENCH_NAME"
    awk '!seen[$0]++' "$BENCH_WORK/cmds.txt"
    echo '```'
    echo
    echo "## Results"
    echo
    cat "$BENCH_WORK/body.md"
  } >"$BENCH_MD"
  bench_log "wrote $BENCH_MD"
}
