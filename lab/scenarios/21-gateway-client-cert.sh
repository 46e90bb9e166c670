#!/usr/bin/env bash
# The gateway's listener is mTLS only: an HTTP/1.1 CONNECT from tg-node through
# curl --proxy https://<gateway>:15008 works with an SVID issued by the lab's mesh CA, and is
# refused without a client certificate or with one from another CA (same SPIFFE ID).
# curl verifies the gateway too (--proxy-cacert: the lab mesh CA; the gateway's SVID carries an IP
# SAN beside its SPIFFE ID).
source "$(dirname "$0")/lib.sh"
id=spiffe://cluster.local/ns/default/sa/lab-probe
expected "CONNECT httpbin.test:80 via https://$LAB_GW:$LAB_GW_PORT: lab-CA SVID ($id) -> 200," \
  "gateway log identity $id; no client cert -> refused; other-CA SVID -> refused; httpbin log +1 only"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
issue_svid "$LAB_MESH_CA" "$tmp/good" "$id" || fail "could not issue an SVID from $LAB_MESH_CA"
"$(dirname "$SCENARIO_DIR")/../scripts/gen-ca" "$tmp/other-ca" >/dev/null 2>&1 ||
  fail "scripts/gen-ca failed"
issue_svid "$tmp/other-ca" "$tmp/rogue" "$id" || fail "could not issue an SVID from the other CA"

via=(ip netns exec "$LAB_NS_NODE" "${CURL[@]}" -i --proxy "https://$LAB_GW:$LAB_GW_PORT"
  --proxy-cacert "$LAB_MESH_CA/root-cert.pem" -p)
mark httpbin.test
gw_log_mark
expect_ok "lab-CA SVID" "${via[@]}" --proxy-cert "$tmp/good.pem" --proxy-key "$tmp/good-key.pem" \
  http://httpbin.test/headers
grep -q '"Host": "httpbin.test"' <<<"$LAST_OUT" || fail "lab-CA SVID: no echo response: $LAST_OUT"
expect_gw_log "gateway log" identity="$id" name=httpbin.test:80 decision=allow protocol=http/1.1
expect_fail "no client cert" "${via[@]}" http://httpbin.test/headers
expect_fail "other-CA SVID" "${via[@]}" --proxy-cert "$tmp/rogue.pem" --proxy-key "$tmp/rogue-key.pem" \
  http://httpbin.test/headers
settle
lines=$(($(server_log_lines httpbin.test) - $(marked httpbin.test)))
observe "httpbin log +$lines"
((lines == 1)) || fail "httpbin log grew by $lines, want 1 (only the lab-CA SVID's request)"
finish
