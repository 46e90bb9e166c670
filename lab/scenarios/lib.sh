# shellcheck shell=bash disable=SC2034  # variables here are used by the scenarios
# Sourced by every lab scenario (lab/scenarios/NN-name.sh). A scenario prints one "expected: ..."
# line and one "observed: ..." line, and exits 0 for PASS, 77 to skip (not root), anything else
# for FAIL. It assumes `tollgate-lab up` has run (ctest fixture e2e.lab-up, or tollgate-lab demo).
set -uo pipefail

SCENARIO_DIR=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
LAB=${TOLLGATE_LAB:-$(dirname "$SCENARIO_DIR")/tollgate-lab}
LAB_STATE=/run/tollgate-lab
LAB_LOGS=$LAB_STATE/logs
LAB_CA=$LAB_STATE/pki/ca.crt
LAB_CONFIG=$LAB_STATE/config
BLOCKED6=fd00:198:18::13   # blocked.test's IPv6 address in tg-net

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
lab_addr() { "$LAB" addr "$1"; }
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

# witness <counter>: packets tg-net's witness counters saw (from_pods, to_blocked, to_blocked_udp,
# any_icmp, any_ipv6); compare before/after to prove that nothing arrived, even what nginx never logs.
witness() {
  ip netns exec tg-net nft list counter inet tglab_witness "$1" |
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

# udp_send <pod> [exec opts] -- <addr> <port>: sends a few datagrams; prints python's error if any.
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
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(5):
    s.sendto(b"\x0d" + b"q" * 1199, (sys.argv[1], int(sys.argv[2])))  # QUIC-sized datagrams
' "$@" 2>&1
}

# require_protected <pod>: records a failure unless tollgate's redirect is installed in the pod
# (nftables mode: table inet tollgate in its netns). Without it, an "allowed" result proves nothing.
require_protected() {
  local mode
  mode=$(cat "$LAB_STATE/mode" 2>/dev/null)
  if [[ $mode == nftables ]] && ! ip netns exec "tg-pod-$1" nft list table inet tollgate >/dev/null 2>&1; then
    fail "pod $1 is not enrolled (no table inet tollgate in its netns)"
    observe "pod $1 NOT enrolled"
  fi
  return 0
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

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
