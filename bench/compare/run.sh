#!/usr/bin/env bash
# Side-by-side comparison of echo servers: every workload runs the servers interleaved
# (A B C, A B C, ...) for ROUNDS rounds, each run one load-generator process
# (bench/loadgen) against a freshly started server; then a table per workload with
# medians, min-max, and ratios to raw TCP and to the fastest peer. Not part of
# `make test`: benchmarks are programs, not tests.
#
#   bash bench/compare/run.sh            # full: 3 rounds, 5 s runs (~20 minutes)
#   QUICK=1 bash bench/compare/run.sh    # 1 round, short runs, 2,000-conn hold (~2-3 min)
#
# Environment (defaults in brackets):
#   SERVERS    [raw-tcp uws tokio-tungstenite fastwebsockets wsqueue-c]; also
#              wsqueue-rust, gorilla, python-websockets (needs `websockets` in .venv/),
#              and wsqueue-c-before / wsqueue-c-other: build/echo_server of another
#              checkout (BEFORE_DIR / OTHER_DIR, where `make examples` has run), for
#              before/after comparisons in one sitting.
#              raw-tcp is the raw TCP echo fed the same bytes (the physical limit).
#              wsqueue-c-static: the same echo example linked against libwsqueue.a
#              (as the Go binding links it, and as `pkg-config --static` does), to
#              show what the shared library's calls and thread-local looks cost.
#   WORKLOADS  [p1 p16 c1000 m64k m1m hold latency]
#              p1, p16   100 conns x 32 B, 1 / 16 messages in flight per connection
#              c1000     1,000 conns x 32 B, 4 in flight
#              m64k      10 conns x 64 KiB, 1 in flight
#              m1m       1 conn x 1 MiB, 1 in flight
#              hold      HOLD_CONNS idle connections with pings: RSS per connection,
#                        server CPU (raw-tcp does not take part)
#              latency   100 conns x 32 B at a fixed rate, half of each server's peak
#                        (its median p16 rate in this sitting; a short probe if p16 did
#                        not run): p99 latency
#   ROUNDS [3]  SECS [5]  WARMUP [1]     per run
#   HOLD_CONNS [19000]  HOLD_SECS [20]  HOLD_SETTLE [5]  HOLD_CLIENT_PING [15] (seconds
#              between our pings on each held connection)  SERVER_PING_MS [5000] (the
#              wsqueue echo's keepalive pings; uWebSockets pings by itself, as its
#              example is set up; the other peers send none)
#   NOISY [0.25]   a run during which other programs used more than this many cores
#              is flagged noisy; RERUN_NOISY [1] reruns a noisy run up to that many
#              times (all attempts are kept and shown)
#   TLS [0]    1: wss:// everywhere: the servers that can (wsqueue-c, wsqueue-c-other,
#              tokio-tungstenite with tokio-rustls; the default SERVERS then) start with
#              --tls and a certificate made into bench/target/tls/ by
#              examples/tls/make_certs.rs, the load generator trusts its CA; raw-tcp,
#              uws, fastwebsockets and the others are left out
#   PIN [1]    1: server on CPU 0, load generator on CPU 1; 0: unpinned, the load
#              generator gets LOADGEN_THREADS [2] threads
#   OUT [bench/target/compare-DATE.jsonl]: every run's JSON line, also the input of
#              bench/compare/summarize.py, which prints the tables.
#   UWS_REPO, USOCKETS_REPO: where bench/peers/uws-echo/build.sh clones from.
#   LOADGEN [bench/target/release/wsq-loadgen, built here]: another load generator
#              binary (e.g. one built from an older checkout, for a before/after of the
#              load generator itself in one sitting)
#
# Exit status: 0 if every run verified every echo and closed cleanly; 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
if [ "${QUICK:-0}" = 1 ]; then
    : "${ROUNDS:=1}" "${SECS:=2}" "${WARMUP:=0.5}" "${HOLD_CONNS:=2000}" "${HOLD_SECS:=4}" "${HOLD_SETTLE:=2}"
fi
TLS=${TLS:-0}
if [ "$TLS" = 1 ]; then
    SERVERS=${SERVERS:-tokio-tungstenite wsqueue-c}
fi
SERVERS=${SERVERS:-raw-tcp uws tokio-tungstenite fastwebsockets wsqueue-c}
WORKLOADS=${WORKLOADS:-p1 p16 c1000 m64k m1m hold latency}
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-5}
WARMUP=${WARMUP:-1}
HOLD_CONNS=${HOLD_CONNS:-19000}
HOLD_SECS=${HOLD_SECS:-20}
HOLD_SETTLE=${HOLD_SETTLE:-5}
HOLD_CLIENT_PING=${HOLD_CLIENT_PING:-15}
SERVER_PING_MS=${SERVER_PING_MS:-5000}
NOISY=${NOISY:-0.25}
RERUN_NOISY=${RERUN_NOISY:-1}
PIN=${PIN:-1}
OUT=${OUT:-$ROOT/bench/target/compare-$(date -u +%Y%m%dT%H%M%SZ).jsonl}
if [ "$PIN" = 1 ]; then
    LOADGEN_THREADS=${LOADGEN_THREADS:-1}
    SERVER_CPU=(taskset -c 0)
    LOADGEN_CPU=(taskset -c 1)
else
    LOADGEN_THREADS=${LOADGEN_THREADS:-2}
    SERVER_CPU=()
    LOADGEN_CPU=()
fi
# The bench projects share one target directory, outside the root crate's; set for
# cargo only, so that `make examples` still builds the library in target/.
BENCH_TARGET=$ROOT/bench/target
BIN=$BENCH_TARGET/release
LOADGEN=${LOADGEN:-$BIN/wsq-loadgen}
has() { [[ " $SERVERS " == *" $1 "* ]]; }

echo "== building" >&2
make -s examples >&2
projects="bench/loadgen"
has raw-tcp && projects+=" bench/peers/raw-tcp-echo"
has tokio-tungstenite && projects+=" bench/peers/tokio-echo"
has fastwebsockets && projects+=" bench/peers/fastwebsockets-echo"
has wsqueue-rust && projects+=" bench/peers/wsqueue-echo"
for project in $projects; do
    (cd "$project" && CARGO_TARGET_DIR=$BENCH_TARGET cargo build --release -q)
done
if has wsqueue-c-static; then
    cc -O2 -Iinclude examples/c/echo_server.c -o "$BENCH_TARGET/echo_server_static" \
        target/release/libwsqueue.a -lpthread -ldl -lm
fi
if has uws && ! bash bench/peers/uws-echo/build.sh; then
    echo "uWebSockets could not be built (see above): leaving uws out" >&2
    SERVERS=${SERVERS//uws/}
fi
if has gorilla; then
    (cd bench/peers/gorilla-echo && go build -o "$BIN/gorilla-echo" .)
fi
PYTHON=$ROOT/.venv/bin/python
if has python-websockets && ! "$PYTHON" -c 'import websockets' 2>/dev/null; then
    echo "no 'websockets' in .venv/ (bash tests/deps.sh installs it): leaving python-websockets out" >&2
    SERVERS=${SERVERS//python-websockets/}
fi
TLS_DIR=$BENCH_TARGET/tls
SERVER_TLS=()
LOADGEN_TLS=()
if [ "$TLS" = 1 ]; then
    for s in $SERVERS; do
        case $s in
            wsqueue-c | wsqueue-c-other | tokio-tungstenite) ;;
            *) echo "$s has no TLS mode here: left out (TLS=1)" >&2; SERVERS=${SERVERS//$s/} ;;
        esac
    done
    [ -s "$TLS_DIR/server.key" ] || cargo run --quiet --example make_certs -- "$TLS_DIR" >&2
    SERVER_TLS=(--tls "$TLS_DIR/server.pem" "$TLS_DIR/server.key")
    LOADGEN_TLS=(--tls "$TLS_DIR/ca.pem")
fi
mkdir -p "$(dirname "$OUT")"
: > "$OUT"

. bench/lib.sh

start_named() {
    case $1 in
        raw-tcp)           start_server "$BIN/raw-tcp-echo" 0 ;;
        uws)               start_server "$BENCH_TARGET/uws/uws-echo" 0 ;;
        tokio-tungstenite) start_server "$BIN/tokio-echo" 0 1 "${SERVER_TLS[@]}" ;;
        fastwebsockets)    start_server "$BIN/fastwebsockets-echo" 0 ;;
        wsqueue-c)         start_server env ECHO_PING_INTERVAL_MS="$SERVER_PING_MS" ./build/echo_server 0 \
                               "${SERVER_TLS[@]}" ;;
        wsqueue-c-static)  start_server env ECHO_PING_INTERVAL_MS="$SERVER_PING_MS" \
                               "$BENCH_TARGET/echo_server_static" 0 ;;
        wsqueue-c-before)  start_server env ECHO_PING_INTERVAL_MS="$SERVER_PING_MS" \
                               "${BEFORE_DIR:?set BEFORE_DIR}/build/echo_server" 0 ;;
        wsqueue-c-other)   start_server env ECHO_PING_INTERVAL_MS="$SERVER_PING_MS" \
                               "${OTHER_DIR:?set OTHER_DIR}/build/echo_server" 0 "${SERVER_TLS[@]}" ;;
        wsqueue-rust)      start_server "$BIN/wsqueue-echo" 0 1 ;;
        gorilla)           start_server env GOMAXPROCS=1 "$BIN/gorilla-echo" 0 ;;
        python-websockets) start_server "$PYTHON" bench/peers/python-echo/echo.py 0 ;;
        *) echo "unknown server $1" >&2; exit 2 ;;
    esac
}

# The load generator's arguments for a workload (the rate for `latency` comes later).
workload_args() {
    case $1 in
        p1)      echo "--conns 100 --size 32 --window 1" ;;
        p16)     echo "--conns 100 --size 32 --window 16" ;;
        c1000)   echo "--conns 1000 --size 32 --window 4" ;;
        m64k)    echo "--conns 10 --size 65536 --window 1" ;;
        m1m)     echo "--conns 1 --size 1048576 --window 1" ;;
        hold)    echo "--mode hold --conns $HOLD_CONNS --ping-every $HOLD_CLIENT_PING --connect-timeout 120 --drain-timeout 20" ;;
        latency) echo "--conns 100 --size 32" ;;
        *) echo "unknown workload $1" >&2; exit 2 ;;
    esac
}

# Median p16 msg/s of a server in this sitting (quiet runs first), or empty.
peak_of() {
    python3 - "$OUT" "$1" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
rows = [r for r in rows if r.get("workload") == "p16" and r["label"] == sys.argv[2] and r["ok"]]
# The rule summarize.py uses: quiet runs if at least two (or all) are, else all runs.
quiet = [r for r in rows if not r["noisy"]]
use = quiet if len(quiet) >= 2 or len(quiet) == len(rows) else rows
xs = sorted(r["msgs_per_sec"] for r in use)
if xs:
    print(int(xs[len(xs) // 2]))
PY
}

failed=0
# One load-generator run of workload $1 against server $2 (already started); appends
# the JSON line, tagged, to $OUT. Returns 1 if the run was noisy.
run_one() {
    local workload=$1 server=$2 round=$3 attempt=$4
    local -a args
    read -r -a args <<< "$(workload_args "$workload")"
    local secs=$SECS warmup=$WARMUP
    if [ "$workload" = hold ]; then
        secs=$HOLD_SECS warmup=$HOLD_SETTLE
    fi
    raw_mode_for "$server"
    args+=("${raw_mode[@]}")
    if [ "$workload" = latency ]; then
        local peak
        peak=$(peak_of "$server")
        if [ -z "$peak" ]; then
            # No p16 run of this server in this sitting: a short one finds its peak.
            local probe
            local -a probe_args
            read -r -a probe_args <<< "$(workload_args p16)"
            probe_args+=("${raw_mode[@]}")
            probe=$("${LOADGEN_CPU[@]}" "$LOADGEN" "127.0.0.1:$PORT" "${probe_args[@]}" "${LOADGEN_TLS[@]}" \
                --secs 2 --warmup 0.5 --threads "$LOADGEN_THREADS" || true)
            peak=$(python3 -c 'import json,sys; print(int(json.loads(sys.stdin.read())["msgs_per_sec"]))' <<< "$probe" || echo 0)
        fi
        if [ -z "$peak" ] || [ "$peak" -le 0 ]; then
            echo "no peak rate for $server: latency run skipped" >&2
            failed=1
            return 0
        fi
        args+=(--rate $((peak / 2)))
    fi
    local nthreads line
    nthreads=$(ls "/proc/$server_pid/task" | wc -l)
    echo "== $workload, round $round: $server${attempt:+ (rerun $attempt)}" >&2
    line=$("${LOADGEN_CPU[@]}" "$LOADGEN" "127.0.0.1:$PORT" "${args[@]}" "${LOADGEN_TLS[@]}" --secs "$secs" \
        --warmup "$warmup" --threads "$LOADGEN_THREADS" --label "$server" \
        --server-pid "$server_pid") || failed=1
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "$server died during the run" >&2
        failed=1
    fi
    if [ -z "$line" ]; then
        echo "no result from the load generator" >&2
        failed=1
        return 0
    fi
    local noisy
    noisy=$(python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); o=r["others_cpu"]; print("true" if o is not None and o > float(sys.argv[1]) else "false")' "$NOISY" <<< "$line")
    line=${line/\{/\{\"workload\":\"$workload\",\"round\":$round,\"attempt\":${attempt:-0},\"pinned\":$PIN,\"tls\":$([ "$TLS" = 1 ] && echo true || echo false),\"server_os_threads\":$nthreads,\"noisy\":$noisy,}
    echo "$line" >> "$OUT"
    python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); print("   msg/s %(msgs_per_sec)s  MB/s %(mbytes_per_sec)s  p99 %(lat_p99_us)s us  server cpu %(server_cpu)s  loadgen cpu %(loadgen_cpu)s  others %(others_cpu)s  rss/conn %(rss_per_conn_bytes)s  ok %(ok)s" % r, file=sys.stderr)' <<< "$line"
    [ "$noisy" = false ]
}

echo "== load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for workload in $WORKLOADS; do
    for round in $(seq "$ROUNDS"); do
        for server in $SERVERS; do
            [ "$workload" = hold ] && [ "$server" = raw-tcp ] && continue
            attempt=
            while :; do
                start_named "$server"
                quiet=1
                run_one "$workload" "$server" "$round" "$attempt" || quiet=0
                stop_server "$server"
                [ "$quiet" = 1 ] && break
                attempt=$(( ${attempt:-0} + 1 ))
                [ "$attempt" -gt "$RERUN_NOISY" ] && break
                echo "   noisy (others above $NOISY cores): again" >&2
                sleep 2
            done
        done
    done
done
echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "== results: $OUT" >&2
python3 bench/compare/summarize.py "$OUT"
exit $failed
