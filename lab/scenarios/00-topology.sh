#!/usr/bin/env bash
# The lab itself, without tollgate: servers answer from the node netns, DNS answers the .test
# names, certificates verify, mtls.test wants a client cert, pods have addresses and routes.
source "$(dirname "$0")/lib.sh"

expected "from tg-node: DNS answers, httpbin HTTP/HTTPS 200, edition 200, mtls 200 with client cert" \
  "and refused without, blocked 200; pods client+other have 10.244.1.x IPs"

pki=$LAB_STATE/pki
resolver=$(lab_addr resolver)
for name in httpbin.test edition.test mtls.test blocked.test; do
  want=$(lab_addr "$name")
  got=$(lab_exec node -- dig +short +time=2 +tries=1 "@$resolver" "$name" A)
  [[ $got == "$want" ]] || fail "DNS $name: want $want, got '$got'"
done
got=$(lab_exec node -- dig +short +time=2 +tries=1 "@$resolver" nonexistent.example A)
[[ -z $got ]] || fail "resolver answered a name outside the lab: $got"
observe "dns ok"

before=$(server_log_lines httpbin.test)
expect_ok "httpbin http" lab_exec node -- "${CURL[@]}" -f http://httpbin.test/headers
grep -q '"X-Forwarded-For"' <<<"$LAST_OUT" || fail "echo server did not return X-Forwarded-For: $LAST_OUT"
expect_ok "httpbin https" lab_exec node -- "${CURL[@]}" -f --cacert "$LAB_CA" https://httpbin.test/headers
code=$(lab_exec node -- "${CURL[@]}" -o /dev/null -w '%{http_code}' http://httpbin.test/status/418)
[[ $code == 418 ]] || fail "httpbin /status/418 returned $code"
observe "httpbin /status/418: $code"
settle
after=$(server_log_lines httpbin.test)
((after - before == 3)) || fail "httpbin access log grew by $((after - before)), want 3"
server_saw httpbin.test "^$(lab_addr node):[0-9]+ .*host=\"httpbin.test\"" "$before" ||
  fail "httpbin log has no line with the node's address and Host"

expect_ok "edition https" lab_exec node -- "${CURL[@]}" -f --cacert "$LAB_CA" https://edition.test/
expect_fail "edition http" lab_exec node -- "${CURL[@]}" http://edition.test/
expect_ok "mtls with cert" lab_exec node -- "${CURL[@]}" -f --cacert "$LAB_CA" \
  --cert "$pki/lab-client.crt" --key "$pki/lab-client.key" https://mtls.test/
code=$(lab_exec node -- "${CURL[@]}" -o /dev/null -w '%{http_code}' --cacert "$LAB_CA" https://mtls.test/)
[[ $code == 400 ]] || fail "mtls.test without a client cert returned $code, want 400"
observe "mtls without cert: $code"
before=$(server_log_lines blocked.test)
w_before=$(witness to_blocked)
expect_ok "blocked http" lab_exec node -- "${CURL[@]}" -f http://blocked.test/
expect_ok "blocked https" lab_exec node -- "${CURL[@]}" -f --cacert "$LAB_CA" https://blocked.test/
settle
(($(server_log_lines blocked.test) - before == 2)) || fail "blocked.test log did not record 2 requests"
(($(witness to_blocked) > w_before)) || fail "witness counter to_blocked did not move"

for pod in client other; do
  ip=$(lab_addr "$pod") || fail "no address for pod $pod"
  [[ $ip =~ ^10\.244\.1\.[0-9]+$ ]] || fail "pod $pod address '$ip' not in 10.244.1.0/24"
  route=$(lab_exec "$pod" -- ip -4 route show default)
  [[ $route == "default via 10.244.1.1 dev eth0"* ]] || fail "pod $pod default route: '$route'"
  who=$(lab_exec "$pod" -- id -u)
  [[ $who == 1000 ]] || fail "exec in $pod runs as uid '$who', want 1000"
  caps=$(lab_exec "$pod" -- grep CapBnd /proc/self/status)
  [[ $caps == *0000000000000000 ]] || fail "exec in $pod keeps bounding caps: $caps"
  grep -q "^nameserver $resolver" <(lab_exec "$pod" -- cat /etc/resolv.conf) ||
    fail "pod $pod does not use the lab resolver"
  cg=$(lab_exec "$pod" -- cat /proc/self/cgroup | sed -n 's/^0:://p')
  [[ $cg == "/$LAB_CGROUP/$pod" ]] || fail "pod $pod process in cgroup '$cg'"
done
observe "pods ok: client=$(lab_addr client) other=$(lab_addr other)"
finish
