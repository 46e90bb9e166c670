#!/usr/bin/env bash
# Agent killed hard (SIGKILL) while a pod keeps retrying connections: during the outage the rules
# stay, every attempt is refused and nothing leaves the pod unproxied; after `agent start` (a
# fresh start: the killed agent's handoff.sock answers nobody) the existing pod works again,
# without being re-created (how soon is measured by `bench/run lifecycle`).
source "$(dirname "$0")/lib.sh"
require_protected client
expected "client retries http://httpbin.test/headers every 100 ms; agent SIGKILLed for 3 s: no" \
  "200 and tg-net witness from_pods_nondns +0 / httpbin log +0 during the outage; after" \
  "agent start: a 200 again, the pod re-adopted"

lab agent status >/dev/null 2>&1 || fail "precondition: agent not running"
tmp=$(mktemp -d /tmp/tg-sigkill.XXXXXX)
loop_pid=""
cleanup() {
  [[ -n $loop_pid ]] && kill "$loop_pid" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

# One line per attempt: "<end ms> <status> <start ms>" (000: refused / failed). `timeout` and the
# curl timeouts only bound hangs.
timeout 300 "$LAB" exec client -- bash -c '
  while :; do
    t0=$(($(date +%s%N) / 1000000))
    code=$(curl -s -o /dev/null --connect-timeout 2 --max-time 10 -w "%{http_code}" \
      http://httpbin.test/headers)
    echo "$(($(date +%s%N) / 1000000)) $code $t0"
    sleep 0.1
  done' >"$tmp/attempts.txt" 2>&1 &
loop_pid=$!

# Until the loop has seen the agent serve.
served() { grep -q ' 200 ' "$tmp/attempts.txt"; }
wait_until served || fail "no 200 before the kill: $(tail -n 2 "$tmp/attempts.txt")"

lab agent kill >/dev/null 2>&1
t_kill=$(now_ms)
lab agent status >/dev/null 2>&1 && fail "agent still running after kill"
mark httpbin.test
w_pods=$(witness from_pods_nondns)
sleep 3
settle
during_lines=$(($(server_log_lines httpbin.test) - $(marked httpbin.test)))
during_w=$(($(witness from_pods_nondns) - w_pods))
t_start=$(now_ms)
lab agent start >/dev/null 2>&1 || fail "agent start failed"
t_ready=$(now_ms)
# Attempts started and ended while the agent was down (a 200 that started before the kill came
# from a connection accepted before it).
outage_200=$(awk -v a="$t_kill" -v b="$t_start" '$3 > a && $1 < b && $2 == 200' \
  "$tmp/attempts.txt" | wc -l)
outage_n=$(awk -v a="$t_kill" -v b="$t_start" '$3 > a && $1 < b' "$tmp/attempts.txt" | wc -l)
observe "outage: $outage_n attempts, $outage_200 answered, httpbin log +$during_lines, witness from_pods_nondns +$during_w"
((outage_n >= 1)) || fail "no attempt started and ended during the 3 s outage"
((outage_200 == 0)) || fail "$outage_200 requests answered with the agent down"
((during_lines == 0)) || fail "httpbin logged $during_lines requests with the agent down"
((during_w == 0)) || fail "$during_w packets from pods reached tg-net with the agent down"

first_ok=""
served_again() {
  first_ok=$(awk -v a="$t_start" '$3 > a && $2 == 200 { print $1; exit }' "$tmp/attempts.txt")
  [[ -n $first_ok ]]
}
if wait_until served_again; then
  observe "agent start took $((t_ready - t_start)) ms; first 200 $((first_ok - t_start)) ms after the start command"
else
  observe "no 200 within ${HANG_S} s of the restart"
  fail "pod did not work again after the restart"
fi
grep -q "re-adopted pod default_client" <(tail -n 50 "$LAB_LOGS/agent.log") ||
  fail "the restarted agent did not re-adopt default/client"
require_protected client
finish
