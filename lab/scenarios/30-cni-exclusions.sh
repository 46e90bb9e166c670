#!/usr/bin/env bash
# Who is not enrolled, and who cannot opt out. Not enrolled: pods of a namespace listed in
# TollgateConfig excludedNamespaces, and hostNetwork pods (their netns is the node's own; tollgate-cni
# passes prevResult through). Still enrolled: a pod whose labels and annotations ask to be left out,
# and a pod whose Pod object claims hostNetwork while it has a netns of its own.
source "$(dirname "$0")/lib.sh"
expected "pod in excluded namespace lab-excluded: ADD ok, no 'inet tollgate', enroll_excluded +1," \
  "logged; hostNetwork pod (CNI_NETNS = the node's netns): ADD prints prevResult unchanged, no table in" \
  "the node, logged; a pod claiming hostNetwork in its own netns: enrolled; a pod labelled and" \
  "annotated to opt out: enrolled, blocked.test 403 and untouched"

cfg=$LAB_CONFIG/00-tollgate-config.yaml
saved=$LAB_STATE/30-tollgate-config.yaml.saved
tmp=$(mktemp -d)
cleanup() {
  lab_config_unpark "$saved" "$cfg"
  lab del-pod excl >/dev/null 2>&1
  lab del-pod optout >/dev/null 2>&1
  ip netns del "${LAB_POD_NS_PREFIX}claim" 2>/dev/null
  lab_config_delete "$LAB_CONFIG/pods/hostnet.yaml"
  lab_config_delete "$LAB_CONFIG/pods/claim.yaml"
  rm -rf "$tmp"
}
trap cleanup EXIT
for p in excl optout; do lab del-pod "$p" >/dev/null 2>&1; done
agent_log_lines=$(wc -l <"$LAB_LOGS/agent.log")
agent_log_has() { tail -n "+$((agent_log_lines + 1))" "$LAB_LOGS/agent.log" | grep -q -- "$1"; }
# wait_reload: the agent swapped in a snapshot after the last change (reloads_ok grew).
wait_reload() {
  local deadline=$(($(now_ms) + HANG_S * 1000)) d
  while (($(now_ms) < deadline)); do
    d=$(metric_delta tollgate_config_reloads_ok_total)
    [[ $d =~ ^[0-9]+$ ]] && ((d > 0)) && return 0
    sleep 0.05
  done
  return 1
}

# 1. Excluded namespace.
cp -p "$cfg" "$saved"
metric_mark tollgate_config_reloads_ok_total
python3 - "$cfg" <<'PY'
import os, sys, yaml
path = sys.argv[1]
doc = yaml.safe_load(open(path))
doc["spec"]["excludedNamespaces"] = doc["spec"].get("excludedNamespaces", []) + ["lab-excluded"]
with open(path + ".tmp", "w") as f:
    yaml.safe_dump(doc, f, sort_keys=False)
os.replace(path + ".tmp", path)
PY
lab_config_apply "$cfg"
wait_reload || fail "the agent did not reload the config with excludedNamespaces"
metric_mark tollgate_enroll_excluded_total
expect_ok "add-pod excl (namespace lab-excluded)" lab add-pod excl --namespace lab-excluded
if redirect_installed excl; then
  fail "pod excl in an excluded namespace got tollgate's redirect"
  observe "excl: enrolled"
else
  observe "excl: not enrolled"
fi
expect_metric_increase 1 tollgate_enroll_excluded_total
agent_log_has "lab-excluded/excl: namespace is excluded" || fail "no 'namespace is excluded' line for lab-excluded/excl"
# Not enrolled is not a way out: the host fence still drops what it sends outside.
mark blocked.test
expect_fail "excl http to blocked.test's address" lab_exec excl -- "${CURL[@]}" --connect-timeout 2 \
  -H 'Host: blocked.test' "http://$(lab_addr blocked.test)/"
untouched blocked.test
lab del-pod excl >/dev/null 2>&1
lab_config_unpark "$saved" "$cfg"

# 2. hostNetwork pods, driven as a runtime would drive tollgate-cni (CNI_* environment, the
# installed conflist's tollgate-cni object with name, cniVersion and a prevResult on stdin).
cni_add_direct() {  # <pod name> <netns path>: prints "rc=<rc>" and the plugin's stdout
  # The pod's cgroup, as a runtime creates it and passes it (cgroupPath capability).
  mkdir -p "$(lab_pod_cgroup "$1")"
  # K8S_POD_UID as a runtime passes it: the API's uid of the Pod object (the agent refuses
  # another one); with files there is no API, so any.
  local uid=""
  lab_is_kube && uid=$(lab_kubectl get pod "$1" -n default -o 'jsonpath={.metadata.uid}')
  ip netns exec "$LAB_NS_NODE" python3 - "$LAB_CNI_CONFLIST" "$LAB_CNI_BIN_DIR" "$1" "$2" "/$LAB_CGROUP/$1" "$uid" <<'PY'
import json, os, subprocess, sys, uuid
conflist, bindir, name, netns, cgroup, uid = sys.argv[1:7]
cl = json.load(open(conflist))
conf = dict(cl["plugins"][-1])
assert conf["type"] == "tollgate-cni", conf
conf.update(name=cl["name"], cniVersion=cl["cniVersion"])
if conf.get("capabilities", {}).get("cgroupPath"):
    conf["runtimeConfig"] = {"cgroupPath": cgroup}
conf["prevResult"] = {"cniVersion": cl["cniVersion"],
                      "interfaces": [{"name": "eth0", "mac": "0a:58:0a:f4:01:fa", "sandbox": netns}],
                      "ips": [{"address": "10.244.1.250/24", "gateway": "10.244.1.1", "interface": 0}],
                      "routes": [{"dst": "0.0.0.0/0"}], "dns": {}}
env = dict(os.environ, CNI_COMMAND="ADD", CNI_CONTAINERID=uuid.uuid4().hex, CNI_NETNS=netns,
           CNI_IFNAME="eth0", CNI_PATH=bindir,
           CNI_ARGS=f"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={name};K8S_POD_UID={uid or uuid.uuid4()}")
p = subprocess.run([os.path.join(bindir, conf["type"])], input=json.dumps(conf).encode(), env=env,
                   capture_output=True, timeout=30)
same = False
try:
    same = json.loads(p.stdout) == conf["prevResult"]
except ValueError:
    pass
print(f"rc={p.returncode} prevResult_unchanged={same} stdout={p.stdout.decode()[:200]!r}")
PY
}
pod_object() {  # <name> <hostNetwork>: a file, and with --config-source kubernetes an API Pod
  printf '%s\napiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  namespace: default\nspec:\n  hostNetwork: %s\n  nodeName: %s\n  serviceAccountName: default\n  containers:\n  - name: main\n    image: tollgate-lab/shell\n' \
    "# written by tollgate-lab scenario 30" "$1" "$2" "$LAB_NS_NODE" >"$LAB_CONFIG/pods/$1.yaml"
  lab_config_apply "$LAB_CONFIG/pods/$1.yaml"
}
metric_mark tollgate_config_reloads_ok_total
pod_object hostnet true
pod_object claim true
wait_reload || fail "the agent did not reload the Pod objects"
node_had_table=0
ip netns exec "$LAB_NS_NODE" nft list table inet tollgate >/dev/null 2>&1 && node_had_table=1
metric_mark tollgate_enroll_excluded_total
out=$(cni_add_direct hostnet "/var/run/netns/$LAB_NS_NODE")
observe "hostNetwork ADD: ${out%% stdout=*}"
[[ $out == "rc=0 prevResult_unchanged=True"* ]] || fail "hostNetwork pod ADD: $out"
if ((node_had_table == 0)) && ip netns exec "$LAB_NS_NODE" nft list table inet tollgate >/dev/null 2>&1; then
  fail "the hostNetwork pod's ADD put table inet tollgate into the node's netns"
  ip netns exec "$LAB_NS_NODE" nft delete table inet tollgate
fi
agent_log_has "default/hostnet: netns is the node's own (hostNetwork pod)" ||
  fail "no 'netns is the node's own' line for default/hostnet"
expect_metric_increase 1 tollgate_enroll_excluded_total

ip netns add "${LAB_POD_NS_PREFIX}claim"
out=$(cni_add_direct claim "/var/run/netns/${LAB_POD_NS_PREFIX}claim")
if [[ $out == "rc=0 prevResult_unchanged=True"* ]] && redirect_installed claim; then
  observe "Pod claiming hostNetwork in its own netns: enrolled"
else
  observe "Pod claiming hostNetwork in its own netns: NOT enrolled"
  fail "a pod claiming hostNetwork with a netns of its own was not enrolled: $out"
fi
# DEL as the runtime would (the pod is gone afterwards).
ip netns exec "$LAB_NS_NODE" env CNI_COMMAND=DEL CNI_CONTAINERID=x CNI_IFNAME=eth0 \
  CNI_NETNS="/var/run/netns/${LAB_POD_NS_PREFIX}claim" \
  CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=claim" \
  "$LAB_CNI_BIN_DIR/tollgate-cni" <<<"{\"cniVersion\":\"1.0.0\",\"name\":\"x\",\"type\":\"tollgate-cni\",\"socket\":\"$LAB_AGENT_RUN_DIR/cni.sock\"}" \
  >/dev/null || fail "DEL of pod claim failed"
ip netns del "${LAB_POD_NS_PREFIX}claim"
rmdir "$(lab_pod_cgroup claim)" "$(lab_pod_cgroup hostnet)" 2>/dev/null

# 3. Labels and annotations are the pod's own: they cannot opt it out.
expect_ok "add-pod optout" lab add-pod optout --namespace default --label tollgate.io/exclude=true \
  --label sidecar.istio.io/inject=false --annotation tollgate.io/exclude=true \
  --annotation traffic.sidecar.istio.io/excludeOutboundIPRanges=0.0.0.0/0
require_protected optout
mark blocked.test
access_log_mark
# By address with the name in Host: the proxy's 403 whatever the DNS mode.
pod_curl optout -- -H 'Host: blocked.test' "http://$(lab_addr blocked.test)/"
observe "optout: blocked status=$CURL_CODE"
[[ $CURL_CODE == 403 ]] && denied_header || fail "optout pod: want 403 from blocked.test, got $CURL_CODE"
expect_access_log "optout" pod=default/optout decision=deny name=blocked.test
untouched blocked.test
finish
