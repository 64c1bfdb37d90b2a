#!/usr/bin/env bash
# Paired A/B runs of echo servers: ROUNDS rounds, each running every server once, in
# turn, each run a fresh server pinned to CPU 0 and one load generator pinned to CPU 1;
# then medians, and for each pair of servers the median of the ratios of their runs in
# the same round. On a host whose speed changes from one server start to the next
# (bench/RESULTS.md, "The fixed cost of a read"), many short alternating runs resolve
# a few percent where a five-round sitting of bench/compare/run.sh cannot. Not part of
# `make test`.
#
#   bash bench/compare/ab.sh LABEL=PROGRAM [LABEL=PROGRAM ...]
#
# Each PROGRAM takes a port (0 is passed) and prints "listening on 127.0.0.1:PORT", as
# every example and peer does; give a script to set its environment, for example
# one that runs build/echo_server with LD_LIBRARY_PATH set to another build's library.
# A server labelled raw-tcp (bench/target/release/raw-tcp-echo) is driven in the load
# generator's raw mode, as bench/compare/run.sh drives it.
#
# Environment: WINDOW [1] messages in flight per connection; ROUNDS [10]; SECS [3];
# WARMUP [1]; CONNS [100]; SIZE [32].
#
# Prints one line per run (label, msg/s, server CPU per echo in us, others' CPU in
# cores), then the summary.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
WINDOW=${WINDOW:-1}
ROUNDS=${ROUNDS:-10}
SECS=${SECS:-3}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-100}
SIZE=${SIZE:-32}
if [ $# -lt 1 ]; then
    echo "usage: bash bench/compare/ab.sh LABEL=PROGRAM [LABEL=PROGRAM ...]" >&2
    exit 2
fi
[ "$(nproc)" -ge 2 ] || { echo "ab.sh: needs two CPUs (server and load generator pinned apart)" >&2; exit 2; }

LOADGEN=$ROOT/bench/target/release/wsq-loadgen
echo "== building the load generator" >&2
(cd bench/loadgen && CARGO_TARGET_DIR=$ROOT/bench/target cargo build --release -q)

SERVER_CPU=(taskset -c 0)
. bench/lib.sh
runs=$work/runs.txt

for round in $(seq "$ROUNDS"); do
    for spec in "$@"; do
        label=${spec%%=*}
        program=${spec#*=}
        raw_mode_for "$label"
        start_server "$program" 0
        if ! result=$(taskset -c 1 "$LOADGEN" "127.0.0.1:$PORT" --conns "$CONNS" --size "$SIZE" \
            --window "$WINDOW" --secs "$SECS" --warmup "$WARMUP" --server-pid "$server_pid" \
            "${raw_mode[@]}" | tail -1); then
            echo "ab.sh: the load generator failed against $label (round $round): $result" >&2
            exit 1
        fi
        stop_server "$label"
        printf '%s\n' "$result" | python3 -c '
import json, sys
label, rnd = sys.argv[1], sys.argv[2]
d = json.load(sys.stdin)
if not d["ok"] or d["msgs_per_sec"] <= 0:
    sys.exit(f"{label}: the run failed: {d}")
cpu = d["server_cpu"] * 1e6 / d["msgs_per_sec"]
others = d["others_cpu"]
print(label, rnd, round(d["msgs_per_sec"]), f"{cpu:.4f}", f"{others:.2f}")
' "$label" "$round" | tee -a "$runs"
    done
done

python3 - "$runs" <<'EOF'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    label, rnd, rate, cpu, _others = line.split()
    runs.setdefault(label, {})[int(rnd)] = (float(rate), float(cpu))
print()
print("| server | runs | msg/s (median) | server us per echo (median) |")
print("|---|---|---|---|")
for label, by_round in runs.items():
    rates = [r for r, _ in by_round.values()]
    cpus = [c for _, c in by_round.values()]
    print(f"| {label} | {len(rates)} | {statistics.median(rates):,.0f} | {statistics.median(cpus):.3f} |")
print()
print("| pair | rate ratio (median of paired runs) | first faster in | CPU per echo ratio (median) |")
print("|---|---|---|---|")
labels = list(runs)
for i, a in enumerate(labels):
    for b in labels[i + 1:]:
        rounds = sorted(set(runs[a]) & set(runs[b]))
        rate = [runs[a][r][0] / runs[b][r][0] for r in rounds]
        cpu = [runs[a][r][1] / runs[b][r][1] for r in rounds]
        wins = sum(x > 1 for x in rate)
        print(f"| {a} / {b} | {statistics.median(rate):.3f}x | {wins} of {len(rounds)} | {statistics.median(cpu):.3f}x |")
EOF
