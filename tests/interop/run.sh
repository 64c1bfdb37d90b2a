#!/usr/bin/env bash
# Interop suites: independent WebSocket clients (Python websockets, Node ws, Go
# gorilla/websocket, headless Chromium) against the example servers, each suite
# against fresh server processes on free ports.
#
#   bash tests/interop/run.sh [python] [node] [go] [browser] [browser-go] [wss]
#                                                                 (default: all)
#
# wss: the python, node and browser suites again over TLS, against the same servers
# started with --tls and a CA made for the run (examples/tls/make_certs.rs, so cargo
# is needed): Python and Node trust it through SSL_CERT_FILE / NODE_EXTRA_CA_CERTS,
# Chromium through --ignore-certificate-errors-spki-list naming the server's key only.
#
# Needs `make examples` (build/echo_server, build/chat_server) and the clients that
# tests/interop/install.sh installs. Prints one result line per suite and per server
# check, then "N passed, M failed" as its last line; exits non-zero on any failure.
set -uo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
echo_bin="${WSQ_ECHO_SERVER:-$root/build/echo_server}"
chat_bin="${WSQ_CHAT_SERVER:-$root/build/chat_server}"
web_dir="$root/examples/web"
# Hang guard per suite; the whole run normally takes a minute or two.
suite_timeout="${WSQ_INTEROP_SUITE_TIMEOUT:-240}"

tmp="$(mktemp -d /tmp/wsq-interop.XXXXXX)"
server_pids=()

cleanup() {
    local pid
    for pid in "${server_pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null
    done
    for pid in "${server_pids[@]}"; do
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

total_passed=0
total_failed=0
# Set by run_wss for the suites it runs again over TLS.
ws_scheme=ws
http_scheme=http
tls_args=()
pfx=""
summary=()

record() { # record PASSED FAILED LABEL
    total_passed=$((total_passed + $1))
    total_failed=$((total_failed + $2))
    summary+=("$(printf '%-9s %4d passed, %d failed' "$3" "$1" "$2")")
}

# Starts a server on port 0 and waits for its "listening on" line. Sets server_pid
# and server_port; returns non-zero (after saying why) if it does not come up.
start_server() { # start_server NAME BINARY [ARGS...]
    local name="$1" bin="$2"
    shift 2
    if [ ! -x "$bin" ]; then
        echo "cannot start $name: $bin is missing (run 'make examples')"
        return 1
    fi
    "$bin" 0 "$@" "${tls_args[@]}" >"$tmp/$name.out" 2>"$tmp/$name.err" &
    server_pid=$!
    server_pids+=("$server_pid")
    server_port=""
    for _ in $(seq 200); do
        server_port="$(sed -n -E 's#^listening on (https?://)?127\.0\.0\.1:([0-9]+)/?$#\2#p' "$tmp/$name.out" | head -1)"
        [ -n "$server_port" ] && return 0
        if ! kill -0 "$server_pid" 2>/dev/null; then
            echo "$name exited before listening:"
            sed 's/^/  | /' "$tmp/$name.err"
            return 1
        fi
        sleep 0.1
    done
    echo "$name printed no 'listening on' line within 20 s"
    return 1
}

show_server_log() { # show_server_log NAME
    if [ -s "$tmp/$1.err" ]; then
        echo "  $1 stderr (last 20 lines):"
        tail -n 20 "$tmp/$1.err" | sed 's/^/  | /'
    fi
}

# Checks a server after a suite: it is still running; a client connected during
# SIGTERM gets close 1001; the process exits 0. Adds three checks to the totals.
stop_server() { # stop_server NAME PID WS_URL
    local name="$1" pid="$2" url="$3" passed=0 failed=0 rc
    if kill -0 "$pid" 2>/dev/null; then
        echo "PASS $name survived the suite"
        passed=$((passed + 1))
    else
        wait "$pid"
        echo "FAIL $name died during the suite (exit status $?)"
        failed=$((failed + 1))
        show_server_log "$name"
        record "$passed" "$((failed + 2))" "$name"
        echo "FAIL $name graceful stop (not checked: already dead)"
        echo "FAIL $name exit status after SIGTERM (not checked: already dead)"
        return
    fi

    : >"$tmp/$name.shutdown"
    timeout 60 python3 "$here/python/shutdown_client.py" "$url" >"$tmp/$name.shutdown" 2>&1 &
    local client=$!
    for _ in $(seq 300); do
        grep -q '^ready' "$tmp/$name.shutdown" && break
        kill -0 "$client" 2>/dev/null || break
        sleep 0.1
    done
    kill -TERM "$pid"
    for _ in $(seq 150); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "FAIL $name still running 15 s after SIGTERM: killed"
        kill -KILL "$pid"
        failed=$((failed + 1))
        wait "$pid" 2>/dev/null
    else
        wait "$pid"
        rc=$?
        if [ "$rc" -eq 0 ]; then
            echo "PASS $name exits 0 after SIGTERM"
            passed=$((passed + 1))
        else
            echo "FAIL $name exited with status $rc after SIGTERM"
            failed=$((failed + 1))
        fi
    fi
    if wait "$client"; then
        echo "PASS $name closes a connected client with 1001 on SIGTERM"
        passed=$((passed + 1))
    else
        echo "FAIL $name graceful stop, as a connected client saw it:"
        sed 's/^/  | /' "$tmp/$name.shutdown"
        failed=$((failed + 1))
    fi
    [ "$failed" -eq 0 ] || show_server_log "$name"
    record "$passed" "$failed" "$name"
}

# Adds a suite's counts; a runner that failed without a failing test, or passed
# without running one, counts as one failure.
finish_suite() { # finish_suite NAME RC PASSED FAILED
    local name="$1" rc="$2" passed="$3" failed="$4"
    if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
        echo "FAIL $name: runner exited with status $rc${5:+ ($5)}"
        failed=1
    elif [ "$rc" -eq 0 ] && [ "$passed" -eq 0 ]; then
        echo "FAIL $name: ran no test"
        failed=1
    fi
    record "$passed" "$failed" "$name"
}

rc_note() { [ "$1" -eq 124 ] && echo "hang guard: killed after ${suite_timeout} s"; }

run_python() {
    start_server "${pfx}python-echo" "$echo_bin" || { record 0 1 "${pfx}python"; return; }
    local pid="$server_pid" url="$ws_scheme://127.0.0.1:$server_port/"
    # A second echo server with a compression context per connection (permessage-
    # deflate with context takeover); the default one shares its contexts.
    start_server "${pfx}python-echo-dedicated" "$echo_bin" --deflate dedicated ||
        { record 0 1 "${pfx}python"; return; }
    local dpid="$server_pid" durl="$ws_scheme://127.0.0.1:$server_port/"
    echo "${pfx}python: websockets against echo_server at $url (and --deflate dedicated at $durl)"
    # ECHO_MAX_CONNECTIONS and ECHO_PING_INTERVAL_MS are the C echo example's own
    # options (examples/README.md): checked only when that is the server under test.
    local suites=("$here/python/test_interop.py")
    if [ "$echo_bin" = "$root/build/echo_server" ] && [ -z "$pfx" ]; then
        suites+=("$here/python/test_echo_server_options.py")
    fi
    WSQ_ECHO_URL="$url" WSQ_ECHO_DEDICATED_URL="$durl" WSQ_ECHO_SERVER="$echo_bin" \
        PYTHONDONTWRITEBYTECODE=1 timeout -k 10 "$suite_timeout" \
        python3 -m pytest -q -p no:cacheprovider -rfE --junitxml="$tmp/${pfx}python.xml" \
        "${suites[@]}"
    local rc=$?
    local counts
    counts="$(python3 - "$tmp/${pfx}python.xml" <<'EOF'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except Exception:
    print(0, 0); sys.exit()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
t = sum(int(s.get("tests", 0)) for s in suites)
bad = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
skipped = sum(int(s.get("skipped", 0)) for s in suites)
# A skip is not a pass: the suite has no skips, so one means something is off.
print(t - bad - skipped, bad + skipped)
EOF
)"
    # shellcheck disable=SC2086
    finish_suite "${pfx}python" "$rc" $counts "$(rc_note "$rc")"
    stop_server "${pfx}python-echo" "$pid" "$url"
    stop_server "${pfx}python-echo-dedicated" "$dpid" "$durl"
}

run_node() {
    start_server "${pfx}node-echo" "$echo_bin" || { record 0 1 "${pfx}node"; return; }
    local pid="$server_pid" url="$ws_scheme://127.0.0.1:$server_port/"
    echo "${pfx}node: ws against echo_server at $url"
    (cd "$here/node" && WSQ_ECHO_URL="$url" timeout -k 10 "$suite_timeout" \
        node --test --test-reporter=spec --test-reporter-destination=stdout \
        --test-reporter=tap --test-reporter-destination="$tmp/${pfx}node.tap" test.mjs)
    local rc=$?
    local passed failed
    passed="$(sed -n -E 's/^# pass ([0-9]+)$/\1/p' "$tmp/${pfx}node.tap" 2>/dev/null | tail -1)"
    failed="$(sed -n -E 's/^# fail ([0-9]+)$/\1/p' "$tmp/${pfx}node.tap" 2>/dev/null | tail -1)"
    finish_suite "${pfx}node" "$rc" "${passed:-0}" "${failed:-0}" "$(rc_note "$rc")"
    stop_server "${pfx}node-echo" "$pid" "$url"
}

run_go() {
    start_server go-echo "$echo_bin" || { record 0 1 go; return; }
    local pid="$server_pid" url="ws://127.0.0.1:$server_port/"
    echo "go: gorilla/websocket against echo_server at $url"
    (cd "$here/go" && WSQ_ECHO_URL="$url" timeout -k 10 "$suite_timeout" \
        go test -count=1 -v -timeout "$((suite_timeout - 20))s" ./...) | tee "$tmp/go.out"
    local rc=${PIPESTATUS[0]}
    local passed failed
    passed="$(grep -c '^--- PASS: ' "$tmp/go.out")"
    failed="$(grep -c '^--- FAIL: ' "$tmp/go.out")"
    finish_suite go "$rc" "$passed" "$failed" "$(rc_note "$rc")"
    stop_server go-echo "$pid" "$url"
}

run_browser() { # run_browser [LABEL CHAT_BINARY ECHO_BINARY]
    local label="${1:-browser}" chat="${2:-$chat_bin}" echo="${3:-$echo_bin}"
    start_server "$label-chat" "$chat" "$web_dir" || { record 0 1 "$label"; return; }
    local chat_pid="$server_pid" chat_port="$server_port"
    start_server "$label-echo" "$echo" || { record 0 1 "$label"; return; }
    local echo_pid="$server_pid" echo_url="$ws_scheme://127.0.0.1:$server_port/"
    local chat_url="$http_scheme://127.0.0.1:$chat_port/"
    echo "$label: chromium against $(basename "$chat") at $chat_url and $(basename "$echo") at $echo_url"
    (cd "$here/browser" && WSQ_CHAT_URL="$chat_url" WSQ_ECHO_URL="$echo_url" \
        timeout -k 10 "$suite_timeout" node browser_test.mjs) | tee "$tmp/$label.out"
    local rc=${PIPESTATUS[0]}
    local passed failed
    passed="$(grep -c '^PASS ' "$tmp/$label.out")"
    failed="$(grep -c '^FAIL ' "$tmp/$label.out")"
    finish_suite "$label" "$rc" "$passed" "$failed" "$(rc_note "$rc")"
    stop_server "$label-chat" "$chat_pid" "$ws_scheme://127.0.0.1:$chat_port/"
    stop_server "$label-echo" "$echo_pid" "$echo_url"
}

# The browser suite against the Go examples (examples/go/chat and echo, built here
# against target/release/libwsqueue.a).
run_browser_go() {
    local bins="$tmp/go-examples"
    mkdir -p "$bins"
    if ! (cd "$root/examples/go" && go build -o "$bins/" ./chat ./echo) >"$tmp/go-build.err" 2>&1; then
        echo "building examples/go failed (needs 'make lib'):"
        sed 's/^/  | /' "$tmp/go-build.err"
        record 0 1 browser-go
        return
    fi
    run_browser browser-go "$bins/chat" "$bins/echo"
}

# The python, node and browser suites over TLS: the same clients and checks, wss://
# and https:// URLs, the servers started with --tls.
run_wss() {
    local certs="$tmp/tls"
    if ! (cd "$root" && cargo run --quiet --example make_certs -- "$certs") >"$tmp/make_certs.out" 2>&1; then
        echo "making the test certificates failed:"
        sed 's/^/  | /' "$tmp/make_certs.out"
        record 0 1 wss
        return
    fi
    # Python's default SSL context and Node read these; Chromium is told the server
    # key's SPKI hash (browser_test.mjs computes it from WSQ_TLS_CERT).
    export SSL_CERT_FILE="$certs/ca.pem" NODE_EXTRA_CA_CERTS="$certs/ca.pem"
    export WSQ_TLS_CERT="$certs/server.pem"
    ws_scheme=wss http_scheme=https pfx=wss-
    tls_args=(--tls "$certs/server.pem" "$certs/server.key")
    run_python
    run_node
    run_browser wss-browser
    ws_scheme=ws http_scheme=http pfx=""
    tls_args=()
    unset SSL_CERT_FILE NODE_EXTRA_CA_CERTS WSQ_TLS_CERT
}

suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(python node go browser browser-go wss)
start=$(date +%s)
for suite in "${suites[@]}"; do
    case "$suite" in
        python | node | go | browser | browser-go | wss)
            echo
            echo "== interop: $suite"
            "run_${suite//-/_}"
            ;;
        *)
            echo "unknown suite '$suite' (python, node, go, browser, browser-go, wss)"
            record 0 1 "$suite"
            ;;
    esac
done

echo
echo "== interop results ($(($(date +%s) - start)) s)"
printf '%s\n' "${summary[@]}"
echo "$total_passed passed, $total_failed failed"
[ "$total_failed" -eq 0 ]
