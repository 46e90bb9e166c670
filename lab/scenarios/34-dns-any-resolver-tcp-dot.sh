#!/usr/bin/env bash
# The app cannot pick its resolver: a query sent to 198.18.0.99 (nothing listens there) is answered
# by the agent's DNS proxy and never arrives at that address (tg-net's witness counts it). DNS over
# TCP works (to the resolver and to 198.18.0.99); DNS over TLS (853) is dropped in the pod.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_dns.sh"
require_protected client
httpbin=$(lab_addr httpbin.test)
resolver=$(lab_addr resolver)
decoy=198.18.0.99  # tollgate-lab DECOY_RESOLVER_ADDR: witness counter to_decoy
expected "dig @$decoy httpbin.test (udp and +tcp) -> $httpbin; witness to_decoy +0; dig +tcp @$resolver ok;" \
  "resolver log: queries only from the node ($(lab_addr node)), none from pods; dig +tls @$resolver" \
  "fails, drop_dot +1 or more, witness any_dot +0"

decoy_before=$(witness to_decoy)
dot_before=$(witness any_dot)
since=$(dns_log_lines)
metric_mark tollgate_pod_nft_packets_total pod=default/client counter=drop_dot
for args in "@$decoy" "+tcp @$decoy" "+tcp @$resolver"; do
  # shellcheck disable=SC2086  # two words on purpose
  pod_dig client $args httpbin.test A
  observe "$args: $DIG_STATUS $DIG_ADDRS"
  [[ $DIG_STATUS == NOERROR && $DIG_ADDRS == "$httpbin" ]] ||
    fail "dig $args httpbin.test: $DIG_STATUS '$DIG_ADDRS', want NOERROR $httpbin: $(tail -c 300 <<<"$DIG_OUT")"
done
grep -q "SERVER: $decoy#53" <<<"$(lab_exec client -- dig +time=2 +tries=1 "@$decoy" httpbin.test A)" ||
  fail "dig did not report $decoy as the server that answered"

expect_fail "DoT @$resolver:853" lab_exec client -- dig +tls +time=2 +tries=1 "@$resolver" httpbin.test A
settle
decoy_seen=$(($(witness to_decoy) - decoy_before))
dot_seen=$(($(witness any_dot) - dot_before))
observe "to_decoy +$decoy_seen any_dot +$dot_seen"
((decoy_seen == 0)) || fail "$decoy_seen packets reached $decoy"
((dot_seen == 0)) || fail "$dot_seen DoT packets reached tg-net"
from_node=$(dns_log_count "$since" "from $(lab_addr node)\$")
from_pods=$(dns_log_count "$since" 'from 10\.244\.')
observe "resolver log: from node $from_node, from pods $from_pods"
((from_node >= 1)) || fail "the resolver saw no forwarded query from the node"
((from_pods == 0)) || fail "the resolver saw $from_pods queries straight from pods"
expect_metric_increase 1 tollgate_pod_nft_packets_total pod=default/client counter=drop_dot
finish
