#!/usr/bin/env bash
# QUIC stays closed and is reported: real QUIC v1 Initials (lab/quic_initial.py: TLS ClientHello
# with an SNI, RFC 9001 Initial protection) sent from the pod to httpbin.test:443 over UDP, from
# an unconnected socket (sendto) and from a connect()ed one (as most QUIC clients send), never
# reach tg-net; the agent counts them per pod and logs "pod X tried QUIC to Y sni=Z" with where
# they were going: from conntrack in nftables mode, from what the BPF programs filed in ebpf mode
# (docs/modes.md). The event is rate-limited per pod, destination and SNI (one a minute), so each
# run uses fresh SNI labels.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_dns.sh"
require_protected client
httpbin=$(lab_addr httpbin.test)
label=run$(date +%s%N | tail -c 7)
sni=$label.httpbin.test              # sendto
connected_sni=$label-c.httpbin.test  # connect, then send
# drop_udp counts datagrams in nftables mode; in ebpf mode the redirect counts where it runs, at
# each sendto and at the connect (a connected socket's send()s meet no hook): 3 + 1.
drops=6
[[ $(lab_mode) == ebpf ]] && drops=4
expected "3 QUIC Initials from an unconnected socket (sni $sni) and 3 from a connected one (sni" \
  "$connected_sni, 60 ms apart) to $httpbin:443: witness any_udp443 +0; quic_attempts{client} +6;" \
  "quic_events{client} +2; drop_udp +$drops; agent log 'pod default/client tried QUIC to" \
  "$httpbin:443 sni=...' for both"

udp_before=$(witness any_udp443)
metric_mark tollgate_quic_attempts_total pod=default/client
metric_mark tollgate_quic_events_total pod=default/client
metric_mark tollgate_pod_nft_packets_total pod=default/client counter=drop_udp
since=$(agent_log_lines)
quic() {  # quic <sni> [quic_initial.py options]: from the client pod to httpbin.test:443
  lab_exec client -- python3 "$(dirname "$SCENARIO_DIR")/quic_initial.py" "$httpbin" 443 "$@" 2>&1
}
out=$(quic "$sni" --count 3)
# 60 ms apart: the telemetry looks a destination up at most every 50 ms per pod.
out_connected=$(quic "$connected_sni" --count 3 --connect --interval 0.06)
for o in "$out" "$out_connected"; do
  n=$(grep -c '^sent 1200 bytes' <<<"$o")
  observe "$n Initials sent"
  ((n == 3)) || fail "the script did not send 3 Initials: $o"
done
expect_metric_increase 6 tollgate_quic_attempts_total pod=default/client
expect_metric_increase 2 tollgate_quic_events_total pod=default/client
expect_metric_increase "$drops" tollgate_pod_nft_packets_total pod=default/client counter=drop_udp
for s in "$sni" "$connected_sni"; do
  event=$(agent_log_since "$since" "tried QUIC to .* sni=$s\$")
  observe "event: ${event#* warn }"
  grep -qF "pod default/client tried QUIC to $httpbin:443 sni=$s" <<<"$event" ||
    fail "no QUIC event to $httpbin:443 with sni $s in the agent log; new QUIC lines: $(agent_log_since "$since" quic | tail -c 400)"
done
arrived=$(($(witness any_udp443) - udp_before))
observe "udp/443 in tg-net +$arrived"
((arrived == 0)) || fail "$arrived udp/443 packets reached tg-net"
finish
