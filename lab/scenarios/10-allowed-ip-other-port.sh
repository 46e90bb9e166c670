#!/usr/bin/env bash
# httpbin.test is allowed on port 80 only; its port 443 really serves, but must not be reachable.
source "$(dirname "$0")/lib.sh"
require_protected client
expected "client https://httpbin.test/ (port 443, not in the registry) -> refused/reset; httpbin log unchanged"

mark httpbin.test
pod_curl client -- --cacert "$LAB_CA" https://httpbin.test/headers
observe "curl rc=$CURL_RC status=$CURL_CODE"
[[ $CURL_RC != 0 && $CURL_CODE == 000 ]] || fail "port 443 answered: rc=$CURL_RC status=$CURL_CODE"
untouched httpbin.test
finish
