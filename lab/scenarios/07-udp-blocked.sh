#!/usr/bin/env bash
# UDP (QUIC-like datagrams to blocked.test:443) never leaves the pod, as a pod or as root.
source "$(dirname "$0")/lib.sh"
require_protected client
blocked=$(lab_addr blocked.test)
expected "5 datagrams to $blocked:443 as uid 1000 and 5 as root: 0 arrive in tg-net; drop_udp +10"

before=$(witness to_blocked_udp)
mark blocked.test
metric_mark tollgate_pod_nft_packets_total pod=default/client counter=drop_udp
udp_send client -- "$blocked" 443 >/dev/null
udp_send client --root -- "$blocked" 443 >/dev/null
sleep 0.3
arrived=$(($(witness to_blocked_udp) - before))
observe "udp datagrams arrived: $arrived"
((arrived == 0)) || fail "$arrived UDP datagrams reached blocked.test"
untouched blocked.test
expect_metric_increase 10 tollgate_pod_nft_packets_total pod=default/client counter=drop_udp
finish
