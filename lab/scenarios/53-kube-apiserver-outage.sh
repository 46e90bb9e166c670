#!/usr/bin/env bash
# --config-source kubernetes: the API server is down for 30 s (SIGKILL, then a restart with the
# same etcd) while the client sends requests in a loop. The agent keeps its last snapshot: httpbin
# stays allowed, blocked.test stays denied and untouched, every allowed request is in the access
# log (proxied); tollgate_config_source_connected drops to 0 and errors grow; once the API is
# back, a ServiceEntry applied right away is honoured after the agent resyncs. The gateway reads
# the same API (from tg-gw): it keeps its snapshot through the outage too (httpbin's 200s pass
# through it), and the new ServiceEntry needs its resync as well.
source "$(dirname "$0")/lib.sh"
kube_only
mode_independent "the kubernetes source keeps its snapshot through an outage whatever the redirect"
require_protected client
expected "during a 30 s API outage: httpbin always 200 and logged, blocked.test always 403 and untouched," \
  "connected 0 and source errors > 0; the gateway connected 0, /healthz/ready and live 200; after: connected 1," \
  "a new ServiceEntry for blocked.test -> 200"

se=$LAB_CONFIG/90-serviceentry-blocked-53.yaml
cp_script=$(dirname "$SCENARIO_DIR")/k8s/control-plane
tmp=$(mktemp -d)
loop=
cleanup() {
  [[ -n $loop ]] && kill "$loop" 2>/dev/null
  # Whatever happened, the API server runs again for the next scenario.
  "$cp_script" start "$LAB_K8S_DIR" --netns "$LAB_NS_NODE" --bin-dir "$(dirname "$LAB_KUBECTL")" \
    >/dev/null 2>&1
  lab_config_delete "$se"
  rm -rf "$tmp"
}
trap cleanup EXIT
blocked=$(lab_addr blocked.test)
httpbin=$(lab_addr httpbin.test)

# Only written now (nothing reads files with this source); applied after the outage.
cat >"$se" <<YAML
# written by scenario 53
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: blocked-53
  namespace: default
spec:
  hosts: ["blocked.test"]
  location: MESH_EXTERNAL
  resolution: DNS
  ports:
  - {number: 80, name: http, protocol: HTTP}
YAML

mark blocked.test
access_log_mark
metric_mark tollgate_config_source_errors_total
(
  while [[ ! -f $tmp/stop ]]; do
    pod_curl client -- --max-time 5 --resolve "httpbin.test:80:$httpbin" http://httpbin.test/
    echo "httpbin $CURL_CODE" >>"$tmp/codes"
    pod_curl client -- --max-time 5 --resolve "blocked.test:80:$blocked" http://blocked.test/
    echo "blocked $CURL_CODE" >>"$tmp/codes"
    sleep 0.2
  done
) &
loop=$!

connected_is() { [[ $(metric tollgate_config_source_connected) == "$1" ]]; }
"$cp_script" stop-apiserver "$LAB_K8S_DIR" 2>/dev/null || fail "control-plane stop-apiserver failed"
if wait_until connected_is 0; then observe "API server killed: connected 0 after ${WAITED_MS} ms"; else
  fail "tollgate_config_source_connected never went to 0 with the API server down"
fi
sleep 30
errors=$(metric_delta tollgate_config_source_errors_total)
observe "source errors during the outage +$errors"
[[ $errors =~ ^[0-9]+$ ]] && ((errors > 0)) || fail "tollgate_config_source_errors_total did not grow during the outage ($errors)"
ready=$(metric tollgate_config_source_ready)
[[ $ready == 1 ]] || fail "tollgate_config_source_ready is $ready during the outage (the last snapshot is kept)"
# The gateway reads the same API: it lost it too, and stays ready (last snapshot) and live.
gw_connected=$(gw_metric tollgate_config_source_connected)
[[ $gw_connected == 0 ]] || fail "the gateway's tollgate_config_source_connected is '$gw_connected' during the outage (want 0)"
for probe in ready live; do
  gw_code=$(ip netns exec "$LAB_NS_GW" curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
    "http://127.0.0.1:15021/healthz/$probe")
  [[ $gw_code == 200 ]] || fail "the gateway's /healthz/$probe answered $gw_code during the outage (want 200)"
done
observe "gateway during the outage: connected $gw_connected, /healthz/ready and /healthz/live 200"
"$cp_script" start "$LAB_K8S_DIR" --netns "$LAB_NS_NODE" --bin-dir "$(dirname "$LAB_KUBECTL")" \
  >"$tmp/start.log" 2>&1 || fail "control-plane start failed: $(tail -5 "$tmp/start.log")"
touch "$tmp/stop"
wait "$loop"
loop=
if wait_until connected_is 1; then observe "API back: connected 1 after ${WAITED_MS} ms"; else
  fail "tollgate_config_source_connected not 1 again after the API server restarted"
fi

ok=$(grep -c '^httpbin 200$' "$tmp/codes")
bad_h=$(grep -c '^httpbin ' "$tmp/codes" | awk -v ok="$ok" '{print $1 - ok}')
denied=$(grep -c '^blocked 403$' "$tmp/codes")
bad_b=$(grep -c '^blocked ' "$tmp/codes" | awk -v d="$denied" '{print $1 - d}')
observe "loop: httpbin 200 x$ok (other $bad_h), blocked.test 403 x$denied (other $bad_b)"
((ok > 0 && bad_h == 0)) || fail "httpbin not always allowed during the outage: $(grep '^httpbin' "$tmp/codes" | sort | uniq -c | tr '\n' ' ')"
((denied > 0 && bad_b == 0)) || fail "blocked.test not always denied during the outage: $(grep '^blocked' "$tmp/codes" | sort | uniq -c | tr '\n' ' ')"
logged=$(access_log_new | grep '"pod_name":"client"' | grep '"name":"httpbin.test"' | grep -c '"decision":"allow"')
observe "access log: $logged httpbin allows"
((logged >= ok)) || fail "only $logged of $ok allowed httpbin requests are in the agent's access log (unproxied?)"
untouched blocked.test

# Right after the API returned: a new ServiceEntry is honoured once the agent resynced.
lab_config_apply "$se"
allowed_now() {
  pod_curl client -- --max-time 5 --resolve "blocked.test:80:$blocked" http://blocked.test/
  [[ $CURL_CODE == 200 ]]
}
if wait_until allowed_now; then observe "ServiceEntry applied after the outage -> 200 after ${WAITED_MS} ms"; else
  fail "a ServiceEntry applied after the outage was not honoured (status $CURL_CODE)"
fi
finish
