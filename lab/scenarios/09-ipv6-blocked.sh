#!/usr/bin/env bash
# IPv6 to an external address (blocked.test's v6 address in tg-net) does not get out.
source "$(dirname "$0")/lib.sh"
require_protected client
expected "curl -6 http://[$BLOCKED6]/ and UDP to it fail; no IPv6 packet arrives in tg-net"

before=$(witness any_ipv6)
mark blocked.test
expect_fail "curl -6" lab_exec client -- "${CURL[@]}" -6 "http://[$BLOCKED6]/"
expect_fail "curl -6 as root" lab_exec client --root -- "${CURL[@]}" -6 "http://[$BLOCKED6]/"
lab_exec client -- python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
try:
    s.sendto(b"q" * 64, (sys.argv[1], 443))
except OSError:
    pass
' "$BLOCKED6"
sleep 0.3
arrived=$(($(witness any_ipv6) - before))
observe "ipv6 packets arrived: $arrived"
((arrived == 0)) || fail "$arrived IPv6 packets reached tg-net"
untouched blocked.test
finish
