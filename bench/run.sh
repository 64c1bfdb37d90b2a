#!/usr/bin/env bash
# Side-by-side echo benchmark: the same load generator (bench/loadgen) against each echo
# server in turn, one scenario after another, in one run. Prints one JSON line per
# load-generator run, then a table and the ratios ours/peer. Writes no file in the tree
# (results go to bench/RESULTS.md by hand). Not part of `make test`.
#
#   bash bench/run.sh [SECS=10]
#
# Environment (defaults in brackets):
#   SERVERS   which servers, in order [wsqueue-c wsqueue-rust tokio-tungstenite gorilla python-websockets]
#             wsqueue-c-before: the same C echo example built in another checkout
#             (BEFORE_DIR, where `make examples` has run), for before/after runs.
#   WINDOWS   messages in flight per connection, one run each [1 16]
#   CONNS [100]  SIZE [32]  WARMUP [2]
#   REPEAT [1] rounds over all servers; the summary keeps each scenario's best round
#             among those where other programs took little CPU (the "others" column),
#             since other programs on a shared machine can only slow a run down.
#   PIN [1]   1: server on CPU 0, load generator on CPU 1 (taskset), so that each side has
#             one core of this 2-core machine and they do not take turns on the same
#             one; 0: no pinning, the scheduler decides.
#   LOADGEN_THREADS  [1 when pinned, 2 otherwise]
#   CARGO_TARGET_DIR [bench/target]: one target directory for every bench project.
#
# Server threads: each server gets one I/O thread where it can be configured. Pinned, the
# C echo_server's library default (one reactor per core) also yields one reactor, since
# the engine counts the cores it may run on; it has one polling thread besides (so does
# wsqueue-rust). Unpinned it gets 2 reactors; the peers stay at 1 thread either way.
#
# Exit status: 0 if every load-generator run verified every echo and every closing
# handshake; 1 otherwise (the table is printed either way).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECS=${1:-10}
SERVERS=${SERVERS:-wsqueue-c wsqueue-rust tokio-tungstenite gorilla python-websockets}
WINDOWS=${WINDOWS:-1 16}
CONNS=${CONNS:-100}
SIZE=${SIZE:-32}
WARMUP=${WARMUP:-2}
REPEAT=${REPEAT:-1}
PIN=${PIN:-1}
if [ "$PIN" = 1 ]; then
    LOADGEN_THREADS=${LOADGEN_THREADS:-1}
    SERVER_CPU=(taskset -c 0)
    LOADGEN_CPU=(taskset -c 1)
else
    LOADGEN_THREADS=${LOADGEN_THREADS:-2}
    SERVER_CPU=()
    LOADGEN_CPU=()
fi
echo "== building (release)" >&2
# Before CARGO_TARGET_DIR is set: the library and examples build in the root's target/.
make -s examples >&2
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/bench/target}
BIN=$CARGO_TARGET_DIR/release
for project in bench/loadgen bench/peers/tokio-echo bench/peers/wsqueue-echo; do
    (cd "$project" && cargo build --release -q)
done
if [[ " $SERVERS " == *" gorilla "* ]]; then
    (cd bench/peers/gorilla-echo && go build -o "$BIN/gorilla-echo" .)
fi
# The interpreter itself rather than a version manager's shim, so the pid is the server's.
PYTHON=$(python3 -c 'import sys; print(sys.executable)')
if [[ " $SERVERS " == *" python-websockets "* ]] && ! "$PYTHON" -c 'import websockets' 2>/dev/null; then
    echo "python3 has no 'websockets' package: leaving python-websockets out (pip install websockets)" >&2
    SERVERS=${SERVERS//python-websockets/}
fi

. bench/lib.sh

echo "== load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
failed=0
for round in $(seq "$REPEAT"); do
    for server in $SERVERS; do
        case $server in
            wsqueue-c)         start_server ./build/echo_server 0; threads="default" ;;
            wsqueue-c-before)  start_server "${BEFORE_DIR:?set BEFORE_DIR}/build/echo_server" 0; threads="default" ;;
            wsqueue-rust)      start_server "$BIN/wsqueue-echo" 0 1; threads="1 reactor" ;;
            tokio-tungstenite) start_server "$BIN/tokio-echo" 0 1; threads="current_thread" ;;
            gorilla)           start_server env GOMAXPROCS=1 "$BIN/gorilla-echo" 0; threads="GOMAXPROCS=1" ;;
            python-websockets) start_server "$PYTHON" bench/peers/python-echo/echo.py 0; threads="asyncio" ;;
            *) echo "unknown server $server" >&2; exit 2 ;;
        esac
        # What the server actually runs: its OS threads (after start-up, before load).
        nthreads=$(ls "/proc/$server_pid/task" | wc -l)
        for window in $WINDOWS; do
            echo "== round $round: $server ($threads, $nthreads OS threads), window $window" >&2
            line=$("${LOADGEN_CPU[@]}" "$BIN/wsq-loadgen" "127.0.0.1:$PORT" --conns "$CONNS" --size "$SIZE" \
                --window "$window" --secs "$SECS" --warmup "$WARMUP" --threads "$LOADGEN_THREADS" \
                --label "$server" --server-pid "$server_pid") || failed=1
            if ! kill -0 "$server_pid" 2>/dev/null; then
                echo "$server died during the run" >&2
                failed=1
            fi
            line=${line/\{/\{\"round\":$round,\"server_threads\":\"$threads\",\"server_os_threads\":$nthreads,}
            echo "$line"
            echo "$line" >> "$work/results.jsonl"
        done
        stop_server "$server"
    done
done
echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

echo
echo "pinned: $PIN, load generator threads: $LOADGEN_THREADS, $CONNS connections x $SIZE B," \
     "${WARMUP}s warm-up + ${SECS}s measured, $REPEAT round(s)"
python3 - "$work/results.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]

def fmt(r):
    srv, lg, mach = r["server_cpu"], r["loadgen_cpu"], r["machine_cpu"]
    # Whatever else ran on the machine meanwhile (other people's builds and tests).
    other = f"{max(mach - srv - lg, 0):.2f}" if None not in (srv, mach) else "-"
    ok = "yes" if r["ok"] else "NO: " + "; ".join(r["errors"][:2])
    return (f"{r['round']:>2} {r['label']:<18} {r['server_threads']:<15} {r['window']:>3} "
            f"{r['msgs_per_sec']:>10,.0f} {r['lat_p50_us']:>8.0f} {r['lat_p99_us']:>8.0f} "
            f"{srv if srv is not None else '-':>6} {lg:>6} {other:>6} {cost(r):>8}  {ok}")

def us_per_msg(r):
    if not r["server_cpu"] or not r["msgs_per_sec"]:
        return None
    return r["server_cpu"] / r["msgs_per_sec"] * 1e6

def cost(r):
    c = us_per_msg(r)
    return "-" if c is None else f"{c:.2f}"

head = (f"{'rd':>2} {'server':<18} {'threads':<15} {'W':>3} {'msg/s':>10} {'p50 us':>8} "
        f"{'p99 us':>8} {'server':>6} {'loadgn':>6} {'others':>6} {'srv us/m':>8}  ok\n"
        "   (server/loadgn/others: CPU cores busy in the measured period; "
        "srv us/m: server CPU microseconds per echoed message)")
print(head)
for r in rows:
    print(fmt(r))

def others(r):
    if r["server_cpu"] is None or r["machine_cpu"] is None:
        return 0.0
    return r["machine_cpu"] - r["server_cpu"] - r["loadgen_cpu"]

# A round is "quiet" when other programs took at most a quarter of a core; the summary
# keeps each scenario's best quiet round (or, failing one, its best round, marked).
QUIET = 0.25
best = {}
for r in rows:
    k = (r["label"], r["window"])
    key = lambda x: (others(x) <= QUIET, x["msgs_per_sec"])
    if k not in best or key(r) > key(best[k]):
        best[k] = r
if len(best) < len(rows):
    print(f"\nbest round per scenario (among quiet rounds: others <= {QUIET}; * = none was quiet):")
    print(head)
    for r in best.values():
        print(fmt(r) + ("" if others(r) <= QUIET else "  *"))
rate = {k: r["msgs_per_sec"] for k, r in best.items()}
labels = list(dict.fromkeys(r["label"] for r in rows))
ours = [s for s in labels if s.startswith("wsqueue")]
peers = [s for s in labels if s not in ours]
windows = sorted({k[1] for k in rate})
# Server CPU per message moves much less with interference than msg/s does (a starved
# server echoes less but pays about the same per echo): its median over all rounds is
# the steadier figure on a shared machine.
def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2
cpu = {}
for k in best:
    cs = [us_per_msg(r) for r in rows if (r["label"], r["window"]) == k and us_per_msg(r)]
    if cs:
        cpu[k] = median(cs)
print("\nserver CPU per message, median over rounds (us):")
for k, c in cpu.items():
    print(f"  {k[0]:<18} W={k[1]:<3} {c:.2f}")
print()
for o in ours:
    for p in peers:
        parts = [f"W={w}: {rate[(o, w)] / rate[(p, w)]:.2f}x" for w in windows
                 if (o, w) in rate and (p, w) in rate and rate[(p, w)]]
        print(f"ratio {o} / {p}, msg/s (best quiet round): " + ", ".join(parts))
        parts = [f"W={w}: {cpu[(p, w)] / cpu[(o, w)]:.2f}x" for w in windows
                 if (o, w) in cpu and (p, w) in cpu]
        print(f"ratio {o} / {p}, messages per server CPU-second (median): " + ", ".join(parts))
PY
exit $failed
