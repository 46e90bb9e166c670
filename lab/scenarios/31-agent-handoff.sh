#!/usr/bin/env bash
# Agent upgrade by listener handoff (`tollgate-lab agent upgrade`) under load: both pods run a
# 40 s loop of short connections (each curl is a new connection: one in-cluster, to an HTTP server
# in the other pod, one external, httpbin.test through the gateway) while a second agent process
# takes the listening sockets over and the first drains. A long-lived connection opened before the
# handoff (client -> TCP echo server in pod other, one line a second for 20 s) keeps working
# through it. Nothing may fail and nothing may leave unproxied.
source "$(dirname "$0")/lib.sh"
require_protected client
require_protected other
expected "agent upgraded by handoff 8 s into a 40 s loop of short connections from client and" \
  "other: 0 failed, every request in the agent's access log (in_cluster / registry via the" \
  "gateway), httpbin log only from the gateway, tg-net witness from_pods_nondns +0; a connection" \
  "opened before the handoff echoes 20/20 lines, then the old agent exits (0 connections cut)"

lab agent status >/dev/null 2>&1 || fail "precondition: agent not running"
old=$(lab agent status 2>/dev/null | sed -n 's/^up (pid \([0-9]*\))$/\1/p')
declare -A ip=([client]=$(lab_addr client) [other]=$(lab_addr other)) peer=([client]=other [other]=client)
tmp=$(mktemp -d /tmp/tg-handoff.XXXXXX)
jobs_pids=()
cleanup() {
  local p
  for p in "${jobs_pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

# In-cluster servers inside the pods (uid 1000, like any pod process): HTTP on 8000 in both pods,
# a TCP echo server on 9000 in other. `timeout` bounds them if the scenario dies.
for pod in client other; do
  timeout 120 "$LAB" exec "$pod" -- python3 -m http.server 8000 --bind 0.0.0.0 --directory /tmp \
    >"$tmp/http-$pod.log" 2>&1 &
  jobs_pids+=($!)
done
timeout 120 "$LAB" exec other -- python3 -c '
import socket, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 9000))
s.listen(16)
def serve(c):
    while True:
        d = c.recv(4096)
        if not d:
            break
        c.sendall(d)
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
' >"$tmp/echo.log" 2>&1 &
jobs_pids+=($!)
wait_up() { ip netns exec "$LAB_POD_NS_PREFIX$1" bash -c "exec 3<>/dev/tcp/127.0.0.1/$2" 2>/dev/null; }
servers_up() { wait_up client 8000 && wait_up other 8000 && wait_up other 9000; }
wait_until servers_up || fail "the pods' echo servers did not come up"

mark httpbin.test
access_log_mark
w_pods=$(witness from_pods_nondns)

# The loops: one curl process (a new connection) per request, in-cluster then external.
loop() {  # loop <pod> <peer-ip>
  "$LAB" exec "$1" -- bash -c '
    end=$((SECONDS + 40))
    while ((SECONDS < end)); do
      for url in "http://$0:8000/" http://httpbin.test/headers; do
        t0=$(date +%s%N)
        code=$(curl -sS -o /dev/null --connect-timeout 30 --max-time 60 -w "%{http_code}" "$url" 2>&1)
        echo "$url $code $((($(date +%s%N) - t0) / 1000000)) $((t0 / 1000000))"
      done
    done' "$2"
}
loop client "${ip[other]}" >"$tmp/loop-client.txt" 2>&1 &
jobs_pids+=($!)
loop_client=$!
loop other "${ip[client]}" >"$tmp/loop-other.txt" 2>&1 &
jobs_pids+=($!)
loop_other=$!

# The long-lived connection, opened 3 s into the loop, 5 s before the handoff: it ends 15 s after
# the handoff, the old agent with it, and the loop goes on for some 16 s after that.
sleep 3
"$LAB" exec client -- python3 -c '
import socket, sys, time
ok, err = 0, ""
try:
    s = socket.create_connection((sys.argv[1], 9000), timeout=60)  # a hang bound
    for i in range(20):
        msg = ("tick %d\n" % i).encode()
        s.sendall(msg)
        got = b""
        while len(got) < len(msg):
            d = s.recv(4096)
            if not d:
                raise RuntimeError("closed by peer after %d lines" % ok)
            got += d
        ok += got == msg
        time.sleep(1)
    s.close()
except Exception as e:
    err = str(e)
print("ok=%d err=%s" % (ok, err))
' "${ip[other]}" >"$tmp/long.txt" 2>&1 &
long=$!
jobs_pids+=($long)

sleep 5
t0=$(now_ms)
if lab agent upgrade >"$tmp/upgrade.txt" 2>&1; then
  t_upgraded=$(now_ms)
  observe "upgrade took $((t_upgraded - t0)) ms"
else
  fail "agent upgrade failed: $(tail -c 400 "$tmp/upgrade.txt")"
fi
new=$(lab agent status 2>/dev/null | sed -n 's/^up (pid \([0-9]*\))$/\1/p')
[[ -n $new && $new != "$old" ]] || fail "pid file does not follow the new agent (old $old, now ${new:-none})"
# The old agent drains: while the long-lived connection is open it stays (on a slow machine the
# upgrade may outlast the connection; then there is nothing to check here).
if kill -0 "$long" 2>/dev/null; then
  kill -0 "$old" 2>/dev/null || fail "the old agent $old exited before its long-lived connection ended"
fi

wait "$long"
t_long=$(now_ms)
read -r long_result <"$tmp/long.txt"
observe "long-lived connection: $long_result"
[[ $long_result == "ok=20 err=" ]] || fail "long-lived connection across the handoff: $long_result"
# With its last connection closed, the old agent has nothing left to drain.
old_gone() { ! kill -0 "$old" 2>/dev/null; }
if wait_until old_gone; then
  observe "old agent exited $(($(now_ms) - t_long)) ms after the long connection ended"
else
  fail "old agent $old still running ${HANG_S} s after its last connection ended"
fi
drain_line=$(grep -a "handoff: drained" "$LAB_LOGS/agent.log" | tail -1)
grep -q "; 0 still open are closed" <<<"$drain_line" || fail "old agent cut connections: $drain_line"

wait "$loop_client" "$loop_other"
total=0 failed=0 incluster=0 external=0 slowest=0
for pod in client other; do
  f=$tmp/loop-$pod.txt
  n=$(grep -c '^http' "$f")
  bad=$(awk '$1 ~ /^http/ && $2 != 200' "$f" | wc -l)
  ic=$(grep -c ':8000/ 200 ' "$f")
  ex=$(grep -c '^http://httpbin.test/headers 200 ' "$f")
  s=$(awk '$1 ~ /^http/ && $3 > m { m = $3 } END { print m + 0 }' "$f")
  ((s > slowest)) && slowest=$s
  total=$((total + n)) failed=$((failed + bad)) incluster=$((incluster + ic)) external=$((external + ex))
  ((bad == 0)) || fail "$pod: $bad failed requests: $(awk '$2 != 200' "$f" | head -3 | tr '\n' ' ')"
  # The loop spans the handoff: requests started before the upgrade and after it was done.
  before=$(awk -v t="$t0" '$1 ~ /^http/ && $4 < t' "$f" | wc -l)
  after=$(awk -v t="${t_upgraded:-0}" '$1 ~ /^http/ && $4 > t' "$f" | wc -l)
  ((before > 0 && after > 0)) ||
    fail "$pod: the loop did not span the handoff ($before requests before it, $after after)"
  # Every request is in the agent's access log, as the agent decided it.
  logged_ic=$(access_log_new | python3 -c '
import json, sys
pod, peer = sys.argv[1], sys.argv[2]
n = 0
for line in sys.stdin:
    try:
        r = json.loads(line)
    except ValueError:
        continue
    n += (r["pod_name"] == pod and r["original_dst"] == peer + ":8000" and
          r["reason"] == "in_cluster" and r["decision"] == "allow")
print(n)' "$pod" "${ip[${peer[$pod]}]}")
  logged_ex=$(access_log_new | python3 -c '
import json, sys
n = 0
for line in sys.stdin:
    try:
        r = json.loads(line)
    except ValueError:
        continue
    n += (r["pod_name"] == sys.argv[1] and r["name"] == "httpbin.test" and
          r["decision"] == "allow" and r["route"].startswith("gateway"))
print(n)' "$pod")
  ((logged_ic == ic)) || fail "$pod: $ic in-cluster requests, $logged_ic in_cluster access log lines"
  ((logged_ex == ex)) || fail "$pod: $ex external requests, $logged_ex gateway access log lines"
  # The in-cluster server in the other pod saw each request once.
  seen=$(grep -c "^${ip[$pod]} .*\"GET / HTTP" "$tmp/http-${peer[$pod]}.log")
  ((seen == ic)) || fail "$pod: $ic in-cluster 200s, the server in ${peer[$pod]} logged $seen"
done
observe "$total requests ($incluster in-cluster, $external external), $failed failed, slowest ${slowest} ms"
expect_access_log "long-lived connection" pod=default/client dst="${ip[other]}:9000" reason=in_cluster \
  'duration_ms >= 19000' 'bytes_up > 0'
settle
lines=$(($(server_log_lines httpbin.test) - $(marked httpbin.test)))
direct=$(tail -n "+$(($(marked httpbin.test) + 1))" "$LAB_LOGS/httpbin.test.access.log" | grep -vc "^$LAB_GW:" || true)
observe "httpbin log +$lines ($direct not from the gateway)"
((lines == external)) || fail "httpbin logged $lines requests, the pods got $external 200s"
((direct == 0)) || fail "$direct httpbin requests did not come through the gateway"
w=$(($(witness from_pods_nondns) - w_pods))
observe "witness from_pods_nondns +$w"
((w == 0)) || fail "$w packets from pods reached tg-net directly"
require_protected client
require_protected other
finish
