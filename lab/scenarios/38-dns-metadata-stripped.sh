#!/usr/bin/env bash
# An allowed name (metadata.test, in a ServiceEntry) whose lab DNS answer is 169.254.169.254: the
# lab resolver really answers it so, but the agent's DNS proxy removes the link-local answer, so the
# pod gets no address for it; the removal is counted.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_dns.sh"
require_protected client
resolver=$(lab_addr resolver)
meta=169.254.169.254
expected "node: dig @$resolver metadata.test -> $meta; client: dig metadata.test NOERROR without $meta," \
  "getent fails; resolver log shows the forwarded query; dns_stripped{client} +1 or more"

got=$(lab_exec node -- dig +short +time=2 +tries=1 "@$resolver" metadata.test A)
observe "lab resolver: $got"
[[ $got == "$meta" ]] || fail "precondition: the lab resolver answers metadata.test with '$got', not $meta"

since=$(dns_log_lines)
metric_mark tollgate_dns_stripped_total pod=default/client
pod_dig client metadata.test A
observe "client: $DIG_STATUS '${DIG_ADDRS}'"
[[ $DIG_STATUS == NOERROR ]] || fail "dig metadata.test: $DIG_STATUS, want NOERROR (an allowed name)"
[[ $DIG_ADDRS == *"$meta"* ]] && fail "the pod got $meta"
[[ -z $DIG_ADDRS ]] || fail "unexpected answers: $DIG_ADDRS"
expect_fail "getent metadata.test" lab_exec client -- getent hosts metadata.test
n=$(dns_log_count "$since" "config metadata\\.test is $meta")
observe "resolver answered $meta $n times"
((n >= 1)) || fail "the lab resolver's log shows no answer $meta (the query was not forwarded)"
expect_metric_increase 1 tollgate_dns_stripped_total pod=default/client
finish
