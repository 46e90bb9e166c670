#!/usr/bin/env bash
# A privileged pod removes tollgate's redirect (nftables: deletes the table in its own netns;
# ebpf: detaches the programs from its cgroup): the host fence in the node still keeps every
# packet from reaching tg-net directly.
source "$(dirname "$0")/lib.sh"
expected "root in pod 'fence' removes the redirect; then http/https/udp/ping to blocked.test all fail;" \
  "no packet from the pod reaches tg-net; the fence's fence_drop counts them"

pod=fence
scratch_pod "$pod" --namespace default
ip=$(lab_addr "$pod")
blocked=$(lab_addr blocked.test)
mark blocked.test
before=$(witness from_pods)
metric_mark tollgate_fence_packets_total counter=fence_drop
expect_ok "remove the redirect" remove_redirect "$pod"
# --resolve: with its table gone the pod's DNS is dropped by the fence too; the TCP itself must be.
expect_fail "http as root" lab_exec "$pod" --root -- "${CURL[@]}" -f --resolve "blocked.test:80:$blocked" \
  http://blocked.test/
expect_fail "https as root" lab_exec "$pod" --root -- "${CURL[@]}" --cacert "$LAB_CA" \
  --resolve "blocked.test:443:$blocked" https://blocked.test/
expect_fail "ping as root" lab_exec "$pod" --root -- ping -n -c 1 -W 1 "$blocked"
udp_send "$pod" --root -- "$blocked" 443 >/dev/null
sleep 0.3
untouched blocked.test
settle
from_pod=$(grep -c "^$ip:" "$LAB_LOGS"/*.access.log | awk -F: '{s += $2} END {print s + 0}')
((from_pod == 0)) || fail "servers logged $from_pod requests from the pod's address $ip"
observe "from_pods packets +$(($(witness from_pods) - before)) (any pod)"
# At least one packet each for http, https, ping and the 5 datagrams.
# At least one: the agent's drift repair (every 5 s) may reinstall the table while curl still
# retries, after which the proxy answers instead of the fence.
expect_metric_increase 1 tollgate_fence_packets_total counter=fence_drop
finish
