#!/usr/bin/env bash
# dns.mode strict (the default with REGISTRY_ONLY, the lab's setting): a pod's dig/getent resolves
# registry names, and names outside the registry get NXDOMAIN from the agent's DNS proxy without
# ever reaching the lab resolver. passthrough forwards them. The scenario restores strict.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_dns.sh"
require_protected client
httpbin=$(lab_addr httpbin.test)
blocked=$(lab_addr blocked.test)
expected "strict: dig + getent httpbin.test -> $httpbin; dig blocked.test NXDOMAIN, getent fails, resolver" \
  "log +0 for blocked.test; passthrough: blocked.test -> $blocked, resolver log +1; strict again:" \
  "NXDOMAIN; dns_blocked{client} +3 or more"
trap 'set_dns_mode strict >/dev/null' EXIT

set_dns_mode strict
metric_mark tollgate_dns_blocked_total pod=default/client
since=$(dns_log_lines)
pod_dig client httpbin.test A
observe "strict: httpbin $DIG_STATUS $DIG_ADDRS"
[[ $DIG_STATUS == NOERROR && $DIG_ADDRS == "$httpbin" ]] ||
  fail "strict: dig httpbin.test: $DIG_STATUS '$DIG_ADDRS', want NOERROR $httpbin"
expect_ok "getent httpbin.test" lab_exec client -- getent hosts httpbin.test
grep -q "^$httpbin " <<<"$LAST_OUT" || fail "getent httpbin.test gave '$LAST_OUT'"
pod_dig client blocked.test A
observe "blocked $DIG_STATUS"
[[ $DIG_STATUS == NXDOMAIN && -z $DIG_ADDRS ]] || fail "strict: dig blocked.test: $DIG_STATUS '$DIG_ADDRS'"
expect_fail "getent blocked.test" lab_exec client -- getent hosts blocked.test
n=$(dns_log_count "$since" 'query\[[A-Z]+\] blocked\.test ')
observe "resolver saw blocked.test $n times"
((n == 0)) || fail "strict mode: the lab resolver received $n queries for blocked.test"
((n == 0)) && (($(dns_log_count "$since" 'query\[A\] httpbin\.test from') > 0)) ||
  fail "the resolver's log shows no forwarded query for httpbin.test (is it logging?)"

set_dns_mode passthrough
since=$(dns_log_lines)
pod_dig client blocked.test A
observe "passthrough: blocked $DIG_STATUS $DIG_ADDRS"
[[ $DIG_STATUS == NOERROR && $DIG_ADDRS == "$blocked" ]] ||
  fail "passthrough: dig blocked.test: $DIG_STATUS '$DIG_ADDRS', want NOERROR $blocked"
expect_ok "getent blocked.test" lab_exec client -- getent hosts blocked.test
n=$(dns_log_count "$since" 'query\[A\] blocked\.test from')
observe "resolver saw it $n times"
((n >= 1)) || fail "passthrough: the lab resolver did not see blocked.test"

set_dns_mode strict
pod_dig client blocked.test A
observe "strict again: blocked $DIG_STATUS"
[[ $DIG_STATUS == NXDOMAIN ]] || fail "strict again: dig blocked.test: $DIG_STATUS"
expect_metric_increase 3 tollgate_dns_blocked_total pod=default/client
finish
