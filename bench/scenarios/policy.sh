# policy: decision cost against registry size (Google Benchmark, no lab needed).
# shellcheck shell=bash
bin=$BIN_DIR/bench/policy/policy_bench
[[ -x $bin ]] || bench_die "$bin is not built (make build)"
reps=${BENCH_REPETITIONS:-$BENCH_ROUNDS}
json=$BENCH_WORK/policy.json
extra=()
[[ $BENCH_SMOKE == 1 ]] && extra=(--benchmark_min_time=0.01)
bench_log "policy ($reps repetitions)..."
bench_cmd "$bin" --benchmark_repetitions="$reps" --benchmark_report_aggregates_only=true \
  "${extra[@]}" --benchmark_format=json --benchmark_out="$json" --benchmark_out_format=json >/dev/null
python3 - "$json" <<'PY' | bench_report
import json, sys
data = json.load(open(sys.argv[1]))
rows = {}
for b in data["benchmarks"]:
    agg = b.get("aggregate_name")
    if agg is None and b.get("run_type") == "iteration":
        agg = "median"  # one repetition: no aggregates
    if agg not in ("median", "stddev"):
        continue
    name = b["run_name"].split("/repeats:")[0]
    rows.setdefault(name, {})[agg] = b["cpu_time"]
base = rows.get("BM_DecideRegistry/10", {}).get("median")
print("| benchmark | median ns/decision | stddev ns | ratio to 10 hosts |")
print("|---|---|---|---|")
for name, r in rows.items():
    ratio = f"{r['median'] / base:.2f}x" if base else "-"
    print(f"| {name} | {r['median']:.0f} | {r.get('stddev', 0):.0f} | {ratio} |")
big = rows.get("BM_DecideRegistry/100000", {}).get("median")
if base and big:
    print()
    print(f"Goal: median < 1000 ns at 100,000 hosts: {big:.0f} ns "
          f"({'met' if big < 1000 else 'missed'}); within 2x of 10 hosts: {big / base:.2f}x "
          f"({'met' if big / base <= 2 else 'missed'}).")
PY
bench_report_finish "decision cost against registry size"
cat "$BENCH_MD"
