#!/usr/bin/env bash
# Policy revocation: a long-lived keep-alive connection to httpbin.test is open when a reload
# removes httpbin's ServiceEntry. The agent cuts it (revocation: cut, the default), logs and
# counts it; a new connection is denied. The ServiceEntry is restored in any case.
source "$(dirname "$0")/lib.sh"
require_protected client
expected "keep-alive connection to httpbin.test: request 1 200; ServiceEntry removed -> the open" \
  "connection is cut by the agent; connections_revoked{default/client} +1; a new request 403;" \
  "restored -> 200"

se=$LAB_CONFIG/20-serviceentry-httpbin.yaml
parked=$LAB_STATE/parked-serviceentry-httpbin-46.yaml
tmp=$(mktemp -d)
restore() { lab_config_unpark "$parked" "$se"; }
trap 'restore; kill $client 2>/dev/null; rm -rf "$tmp"' EXIT
httpbin=$(lab_addr httpbin.test)
metric_mark tollgate_connections_revoked_total pod=default/client

# The client: one request, then it keeps the connection open and reports how it ended.
lab_exec client -- python3 -c '
import socket, sys, time
s = socket.create_connection((sys.argv[1], 80), timeout=120)  # a hang bound
s.sendall(b"GET /headers HTTP/1.1\r\nHost: httpbin.test\r\n\r\n")
got = b""
while b"\r\n\r\n" not in got:
    got += s.recv(4096)
print("first", got.split(b" ")[1].decode(), flush=True)
try:
    while True:
        d = s.recv(4096)
        if not d:
            print("end eof", flush=True); break
except ConnectionResetError:
    print("end reset", flush=True)
except socket.timeout:
    print("end still-open", flush=True)
' "$httpbin" >"$tmp/client.txt" 2>&1 &
client=$!
first_seen() { grep -q '^first ' "$tmp/client.txt"; }
wait_until first_seen || fail "the long-lived connection got no first answer: $(cat "$tmp/client.txt")"
observe "$(grep '^first' "$tmp/client.txt")"

lab_config_park "$se" "$parked"
ended() { grep -q '^end ' "$tmp/client.txt"; }
if wait_until ended; then observe "open connection: $(grep '^end' "$tmp/client.txt") after ${WAITED_MS} ms"; else
  fail "the open connection was not cut ${HANG_S} s after the ServiceEntry was removed"
fi
grep -q '^end \(eof\|reset\)' "$tmp/client.txt" || fail "connection not cut by the agent: $(cat "$tmp/client.txt")"
expect_metric_increase 1 tollgate_connections_revoked_total pod=default/client
pod_curl client -- --resolve "httpbin.test:80:$httpbin" http://httpbin.test/headers
observe "new request status=$CURL_CODE"
[[ $CURL_CODE == 403 ]] || fail "a new connection after the removal: want 403, got $CURL_CODE"

restore
ok_again() {
  pod_curl client -- --max-time 5 --resolve "httpbin.test:80:$httpbin" http://httpbin.test/headers
  [[ $CURL_CODE == 200 ]]
}
wait_until ok_again || fail "httpbin not allowed again after restoring its ServiceEntry"
observe "restored: status=$CURL_CODE"
finish
