#!/usr/bin/env bash
# Connecting straight to the proxy's own listener (127.0.0.1:15001) must not be a way out: a flow
# whose original destination is a proxy port is refused (no loops, no confused deputy).
source "$(dirname "$0")/lib.sh"
require_protected client
expected "client -> 127.0.0.1:15001 with Host httpbin.test / SNI edition.test: no 200; upstreams untouched"

mark httpbin.test
mark edition.test
pod_curl client -- -H 'Host: httpbin.test' http://127.0.0.1:15001/headers
observe "http rc=$CURL_RC status=$CURL_CODE"
[[ $CURL_CODE == 200 ]] && fail "plain HTTP to 127.0.0.1:15001 was answered 200"
pod_curl client -- --cacert "$LAB_CA" --connect-to edition.test:443:127.0.0.1:15001 https://edition.test/
observe "tls rc=$CURL_RC status=$CURL_CODE"
[[ $CURL_CODE == 200 ]] && fail "TLS to 127.0.0.1:15001 was answered 200"
untouched httpbin.test
untouched edition.test
finish
