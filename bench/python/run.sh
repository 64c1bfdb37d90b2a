#!/usr/bin/env bash
# Python echo servers side by side: the project's load generator (bench/loadgen)
# against the binding's asyncio echo (examples/python/echo.py), its sync echo
# (wsqueue_sync_echo.py), websockets' asyncio echo (bench/peers/python-echo), picows
# and socketify, in interleaved rounds; then the idle memory of each at N connections
# (bench/idle/hold.py). Prints one JSON line per run, then medians and the ratios
# wsqueue-asyncio / peer. Writes no file in the tree. Not part of `make test`.
#
#   bash bench/python/run.sh [SECS=5]
#
# Environment (defaults in brackets):
#   SERVERS  [wsqueue-asyncio wsqueue-sync websockets picows socketify]
#   WINDOWS  [1 16]  messages in flight per connection
#   CONNS [100]  SIZE [32]  WARMUP [1]  REPEAT [3] rounds (medians over them)
#   IDLE_CONNS [10000]  IDLE_SECS [5]  (IDLE_CONNS=0 skips the idle measurement)
#   PIN [1]  server on CPU 0, load generator on CPU 1 (taskset); 0: unpinned
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
SECS=${1:-5}
SERVERS=${SERVERS:-wsqueue-asyncio wsqueue-sync websockets picows socketify}
WINDOWS=${WINDOWS:-1 16}
CONNS=${CONNS:-100}
SIZE=${SIZE:-32}
WARMUP=${WARMUP:-1}
REPEAT=${REPEAT:-3}
IDLE_CONNS=${IDLE_CONNS:-10000}
IDLE_SECS=${IDLE_SECS:-5}
PIN=${PIN:-1}
if [ "$PIN" = 1 ]; then
    SERVER_CPU=(taskset -c 0)
    LOADGEN_CPU=(taskset -c 1)
else
    SERVER_CPU=()
    LOADGEN_CPU=()
fi
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/bench/target}
LOADGEN=$CARGO_TARGET_DIR/release/wsq-loadgen
VENV=$ROOT/.venv
PY=$VENV/bin/python3
ulimit -n 20000

echo "== setup: .venv with the binding and the peers; the load generator" >&2
[ -x "$PY" ] || python3 -m venv "$VENV"
"$PY" -m pip install --quiet --disable-pip-version-check -r bench/python/requirements.txt
"$PY" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps ./bindings/python
(cd bench/loadgen && cargo build --release -q)

. bench/lib.sh

command_for() {
    case $1 in
        wsqueue-asyncio) echo "$PY examples/python/echo.py 0" ;;
        wsqueue-sync)    echo "$PY bench/python/wsqueue_sync_echo.py 0" ;;
        websockets)      echo "$PY bench/peers/python-echo/echo.py 0" ;;
        picows)          echo "$PY bench/python/picows_echo.py 0" ;;
        socketify)       echo "$PY bench/python/socketify_echo.py 0" ;;
        *) echo "unknown server $1" >&2; exit 2 ;;
    esac
}

echo "== load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
failed=0
for round in $(seq "$REPEAT"); do
    for server in $SERVERS; do
        # shellcheck disable=SC2046
        start_server $(command_for "$server")
        for window in $WINDOWS; do
            echo "== round $round: $server, window $window" >&2
            line=$("${LOADGEN_CPU[@]}" "$LOADGEN" "127.0.0.1:$PORT" --conns "$CONNS" --size "$SIZE" \
                --window "$window" --secs "$SECS" --warmup "$WARMUP" --threads 1 \
                --label "$server" --server-pid "$server_pid") || failed=1
            line=${line/\{/\{\"round\":$round,\"kind\":\"echo\",}
            echo "$line"
            echo "$line" >> "$work/results.jsonl"
        done
        stop_server
        if [ "$IDLE_CONNS" -gt 0 ]; then
            # shellcheck disable=SC2046
            start_server $(command_for "$server")
            echo "== round $round: $server, $IDLE_CONNS idle connections" >&2
            line=$(python3 bench/idle/hold.py "$PORT" "$server_pid" --conns "$IDLE_CONNS" \
                --secs "$IDLE_SECS" --label "$server") || failed=1
            line=${line/\{/\{\"round\":$round,\"kind\":\"idle\",}
            echo "$line"
            echo "$line" >> "$work/results.jsonl"
            stop_server
        fi
    done
done
echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

echo
echo "pinned: $PIN; echo: $CONNS connections x $SIZE B, ${WARMUP}s warm-up + ${SECS}s," \
     "$REPEAT interleaved rounds; idle: $IDLE_CONNS connections"
python3 - "$work/results.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
echo = [r for r in rows if r["kind"] == "echo"]
idle = [r for r in rows if r["kind"] == "idle"]
labels = list(dict.fromkeys(r["label"] for r in rows))
windows = sorted({r["window"] for r in echo})
ok = {l: all(r["ok"] for r in echo if r["label"] == l) for l in labels}
def med(xs):
    return statistics.median(xs) if xs else None
rate = {(l, w): med([r["msgs_per_sec"] for r in echo if r["label"] == l and r["window"] == w])
        for l in labels for w in windows}
cpu = {(l, w): med([r["server_cpu"] / r["msgs_per_sec"] * 1e6 for r in echo
                    if r["label"] == l and r["window"] == w and r["server_cpu"] and r["msgs_per_sec"]])
       for l in labels for w in windows}
rss = {l: med([r["rss_per_conn_kib"] for r in idle if r["label"] == l and r.get("failed", 0) == 0])
       for l in labels}
print(f"{'server':<17}" + "".join(f"{'W=' + str(w) + ' msg/s':>14}{'us/msg':>8}" for w in windows)
      + f"{'idle KiB/conn':>15}  all echoes verified")
for l in labels:
    cells = "".join(f"{rate[l, w] or 0:>14,.0f}{cpu[l, w] or 0:>8.2f}" for w in windows)
    kib = f"{rss[l]:.1f}" if rss[l] is not None else "-"
    print(f"{l:<17}{cells}{kib:>15}  {'yes' if ok[l] else 'NO'}")
ours = "wsqueue-asyncio"
if ours in labels:
    print(f"\nratios {ours} / peer (median msg/s; idle: peer KiB / ours KiB)")
    for l in labels:
        if l == ours:
            continue
        parts = [f"W={w}: {rate[ours, w] / rate[l, w]:.2f}x" for w in windows if rate[l, w]]
        if rss[l] and rss[ours]:
            parts.append(f"idle: {rss[l] / rss[ours]:.2f}x less memory")
        print(f"  vs {l:<15} " + ", ".join(parts))
PY
exit $failed
