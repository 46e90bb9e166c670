#!/usr/bin/env bash
# The start-up race: 100 pods created in a loop, each running curl as its FIRST process the moment
# CNI ADD has returned (no wait, no readiness probe), while the next pods are being created. ADD
# returns only once the rules and listeners are in place, so not one request may reach
# blocked.test and every pod's request to httpbin.test must go through (counted in the servers'
# own logs: each request carries the pod's name in its query string).
source "$(dirname "$0")/lib.sh"
n=${TOLLGATE_LAB_RACE_PODS:-100}
expected "$n pods created in a loop, each running 'curl blocked.test; curl httpbin.test' as its first" \
  "process right after ADD returned: blocked.test log +0 (witness to_blocked +0), every pod refused" \
  "(403 by address; by name 403, or NXDOMAIN with strict DNS); httpbin.test log +$n (one per pod)," \
  "200 in every pod; pods deleted (no time bound: \`bench/run lifecycle\` measures pod creation)"

tmp=$(mktemp -d)
names=()
cleanup() {
  local name
  for name in "${names[@]}"; do lab del-pod "$name" >/dev/null 2>&1 || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
for i in $(seq -f '%03g' 1 "$n"); do lab del-pod "race-$i" >/dev/null 2>&1; done

blocked_addr=$(lab_addr blocked.test)
mark blocked.test
mark httpbin.test
t0=$(now_ms)
add_failed=0 pids=() failures=()
for i in $(seq -f '%03g' 1 "$n"); do
  name=race-$i
  names+=("$name")  # deleted at the end even if add-pod failed half-way
  rc=0
  lab add-pod "$name" --namespace default >/dev/null 2>"$tmp/$name.add.err" || rc=$?
  if ((rc != 0)); then
    add_failed=$((add_failed + 1))
    failures+=("$name rc=$rc: $(tail -c 300 "$tmp/$name.add.err")")
    continue
  fi
  # The pod's first process, started at once and left running while the loop goes on. Its curl
  # timeouts only catch hangs: 100 pods starting at once on 2 cores are slow, not wrong.
  # blocked.test twice: by name (with strict DNS the resolver already refuses it: curl exit 6) and
  # by its address with the name in Host (the proxy's 403 whatever the DNS mode).
  lab_exec "$name" -- sh -c '
    curl -sS --connect-timeout 20 --max-time 40 -o /dev/null -w "blocked=%{http_code}" "http://blocked.test/?pod=$1"
    echo " rc=$?"
    curl -sS --connect-timeout 20 --max-time 40 -o /dev/null -w "blocked_addr=%{http_code}\n" -H "Host: blocked.test" "http://$2/?pod=$1"
    curl -sS --connect-timeout 20 --max-time 40 -o /dev/null -w "httpbin=%{http_code}\n" "http://httpbin.test/headers?pod=$1"
  ' sh "$name" "$blocked_addr" >"$tmp/$name.out" 2>&1 &
  pids+=($!)
done
created_ms=$(($(now_ms) - t0))
wait "${pids[@]}"
observe "created $((n - add_failed))/$n in ${created_ms} ms"
((add_failed == 0)) || fail "$add_failed add-pod failed: ${failures[*]}"

ok403=0 ok200=0
for name in "${names[@]}"; do
  # By name: the proxy's 403, or no address at all (strict DNS: curl exit 6, no HTTP status).
  grep -qxE 'blocked=403 rc=22|blocked=403 rc=0|blocked=000 rc=6' "$tmp/$name.out" 2>/dev/null &&
    grep -qx 'blocked_addr=403' "$tmp/$name.out" && ok403=$((ok403 + 1))
  grep -qx 'httpbin=200' "$tmp/$name.out" 2>/dev/null && ok200=$((ok200 + 1))
done
observe "pods refused by blocked.test (name and address): $ok403, httpbin 200: $ok200"
((ok403 == n)) || fail "only $ok403 of $n pods were refused blocked.test; e.g. $(grep -LE 'blocked_addr=403' "$tmp"/*.out | head -1 | xargs cat 2>/dev/null | head -c 200)"
((ok200 == n)) || fail "only $ok200 of $n pods got 200 from httpbin.test; e.g. $(grep -L 'httpbin=200' "$tmp"/*.out | head -1 | xargs cat 2>/dev/null | head -c 200)"

settle
untouched blocked.test
seen=$(tail -n "+$(($(marked httpbin.test) + 1))" "$LAB_LOGS/httpbin.test.access.log" |
  grep -o 'pod=race-[0-9]*' | sort -u | wc -l)
observe "httpbin.test log: $seen distinct pods"
((seen == n)) || fail "httpbin.test logged requests from $seen of $n pods"

t1=$(now_ms)
# Four at a time: the runtime tears sandboxes down in parallel too.
del_failed=$(printf '%s\n' "${names[@]}" |
  xargs -P 4 -I{} sh -c '"$1" del-pod "$2" >/dev/null 2>&1 || echo x' sh "$LAB" {} | wc -l)
names=()
del_ms=$(($(now_ms) - t1))
total_ms=$(($(now_ms) - t0))
observe "deleted in ${del_ms} ms; total ${total_ms} ms"
((del_failed == 0)) || fail "$del_failed del-pod failed"
left=$(ip netns list | grep -c "^${LAB_POD_NS_PREFIX}race-" || true)
((left == 0)) || fail "$left race-* netns left behind"
finish
