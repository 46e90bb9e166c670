# shellcheck shell=bash
# Helpers of the DNS / QUIC scenarios (33-39); sourced after lib.sh.

# The lab resolver's query log (dnsmasq --log-queries in tg-net): every query that reached it.
LAB_DNS_LOG=$LAB_LOGS/dns.log
LAB_AGENT_LOG=$LAB_LOGS/agent.log
LAB_MESH_CONFIG=$LAB_CONFIG/00-tollgate-config.yaml

dns_log_lines() {
  if [[ -f $LAB_DNS_LOG ]]; then wc -l <"$LAB_DNS_LOG" | tr -d ' '; else echo 0; fi
}
# dns_log_count <since-line> <regex>: lines of the resolver's log after since-line matching regex.
dns_log_count() {
  [[ -f $LAB_DNS_LOG ]] || {
    echo 0
    return
  }
  tail -n "+$(($1 + 1))" "$LAB_DNS_LOG" | grep -cE -- "$2"
  return 0
}

# pod_dig <pod> <dig args...>: dig in the pod (2 s, one try); sets DIG_STATUS (NOERROR, NXDOMAIN,
# ... or "none" when nothing answered), DIG_ADDRS (the A/AAAA answers, space-separated) and DIG_OUT.
pod_dig() {
  local pod=$1
  shift
  DIG_OUT=$(lab_exec "$pod" -- dig +time=2 +tries=1 "$@" 2>&1)
  DIG_STATUS=$(sed -n 's/.*status: \([A-Z]*\),.*/\1/p' <<<"$DIG_OUT" | head -1)
  DIG_STATUS=${DIG_STATUS:-none}
  DIG_ADDRS=$(awk '/^;; ANSWER SECTION:/ { a = 1; next } /^$/ { a = 0 } a && ($4 == "A" || $4 == "AAAA") { printf "%s%s", s, $5; s = " " }' <<<"$DIG_OUT")
}

# set_dns_mode <strict|passthrough>: rewrites dns.mode in the lab's mesh config and waits for the
# agent to load it (up to the hang bound).
set_dns_mode() {
  local want=$1 before now deadline
  grep -qE "^    mode: (strict|passthrough)$" "$LAB_MESH_CONFIG" || {
    fail "no dns.mode line in $LAB_MESH_CONFIG"
    return 1
  }
  grep -q "^    mode: $want$" "$LAB_MESH_CONFIG" && return 0
  before=$(metric tollgate_config_reloads_ok_total)
  sed -i -E "s/^    mode: (strict|passthrough)$/    mode: $want/" "$LAB_MESH_CONFIG"
  lab_config_apply "$LAB_MESH_CONFIG"
  deadline=$(($(now_ms) + HANG_S * 1000))
  while :; do
    now=$(metric tollgate_config_reloads_ok_total)
    [[ $now =~ ^[0-9]+$ && $before =~ ^[0-9]+$ ]] && ((now > before)) && return 0
    (($(now_ms) < deadline)) || break
    sleep 0.05
  done
  fail "the agent did not reload after dns.mode was set to $want"
  return 1
}

# agent_log_lines / agent_log_since <line> <regex>: the agent's own log (events such as QUIC).
agent_log_lines() {
  if [[ -f $LAB_AGENT_LOG ]]; then wc -l <"$LAB_AGENT_LOG" | tr -d ' '; else echo 0; fi
}
agent_log_since() { tail -n "+$(($1 + 1))" "$LAB_AGENT_LOG" | grep -E -- "$2"; }
