#!/usr/bin/env bash
# The C ABI test suite: builds every tests/c/test_*.c against the built library and
# runs each test in its own process, so a sanitizer report or a leak is charged to the
# test that caused it. Prints one line per test and, last, "N passed, M failed".
#
#   bash tests/c/run.sh                       # after `make lib` (or: make test-c)
#   WSQ_CTEST_MODE=valgrind bash tests/c/run.sh
#   bash tests/c/run.sh test_events [name]    # one file, or one test of it
#
# Modes:
#   asan (default)  AddressSanitizer + LeakSanitizer + UBSan, linked with
#                   libwsqueue.a. The Rust side's allocations go through malloc, so
#                   LeakSanitizer sees its leaks as well as the tests'. A leak, a
#                   use-after-free or UB fails the test.
#   valgrind        plain build linked with libwsqueue.so, run under memcheck (binaries
#                   in build/ctests/valgrind/); fails on any memory error and on
#                   "definitely", "indirectly" or "possibly" lost blocks. "Still
#                   reachable" is expected: each server handle stays allocated for the
#                   process's life (so a freed handle is detected, not dereferenced),
#                   reachable from a global. See tests/c/README.md for the evidence.
set -uo pipefail
cd "$(dirname "$0")/../.."

mode=${WSQ_CTEST_MODE:-asan}
only_file=${1:-}
only_test=${2:-}
out=build/ctests
mkdir -p "$out"
libdir=target/release
# Each test has its own hang guard (60 s); this one catches a stuck process exit.
per_test_timeout=${WSQ_CTEST_TIMEOUT:-120}

passed=0
failed=0
failures=()

record() { # name status(0=ok) [log]
    if [ "$2" -eq 0 ]; then
        echo "ok   $1"
        passed=$((passed + 1))
    else
        echo "FAIL $1"
        failed=$((failed + 1))
        failures+=("$1")
        if [ -n "${3:-}" ] && [ -s "$3" ]; then sed 's/^/     | /' "$3" | head -60; fi
    fi
}

common_cflags=(-std=c11 -D_DEFAULT_SOURCE -Wall -Wextra -Werror -g -Iinclude -Itests/c)
case "$mode" in
asan)
    [ -f "$libdir/libwsqueue.a" ] || { echo "missing $libdir/libwsqueue.a: run 'make lib' first"; exit 1; }
    cflags=("${common_cflags[@]}" -O1 -fno-omit-frame-pointer
            -fsanitize=address,undefined -fno-sanitize-recover=undefined)
    link=("$libdir/libwsqueue.a" -lpthread -ldl -lm)
    export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0:detect_stack_use_after_return=1
    export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
    runner=()
    ;;
valgrind)
    [ -f "$libdir/libwsqueue.so" ] || { echo "missing $libdir/libwsqueue.so: run 'make lib' first"; exit 1; }
    command -v valgrind >/dev/null || { echo "valgrind is not installed"; exit 1; }
    out=build/ctests/valgrind
    mkdir -p "$out"
    cflags=("${common_cflags[@]}" -O0)
    link=(-L"$libdir" -lwsqueue -Wl,-rpath,"$(pwd)/$libdir" -lpthread -ldl -lm)
    runner=(valgrind -q --error-exitcode=97 --leak-check=full
            --show-leak-kinds=definite,indirect,possible
            --errors-for-leak-kinds=definite,indirect,possible)
    per_test_timeout=${WSQ_CTEST_TIMEOUT:-300}
    ;;
*) echo "unknown WSQ_CTEST_MODE=$mode (asan or valgrind)"; exit 1 ;;
esac

# ---- build -------------------------------------------------------------------------
support=(tests/c/check.c tests/c/support.c tests/c/wsclient.c)
binaries=()
for src in tests/c/test_*.c; do
    name=$(basename "$src" .c)
    [ -n "$only_file" ] && [ "$name" != "$only_file" ] && continue
    log="$out/$name.build.log"
    if cc "${cflags[@]}" "$src" "${support[@]}" -o "$out/$name" "${link[@]}" >"$log" 2>&1; then
        binaries+=("$name")
    else
        record "$name (build)" 1 "$log"
    fi
done

# test_tls needs certificate files: a throwaway CA and server certificate, made once.
export WSQ_TEST_TLS_DIR="$out/tls"
if [ ! -s "$WSQ_TEST_TLS_DIR/server.key" ]; then
    log="$out/make_certs.log"
    cargo run --quiet --example make_certs -- "$WSQ_TEST_TLS_DIR" >"$log" 2>&1 ||
        record "make_certs (for test_tls)" 1 "$log"
fi

# ---- run -----------------------------------------------------------------------------
for name in "${binaries[@]}"; do
    mapfile -t tests < <("$out/$name" --list 2>"$out/$name.list.log")
    if [ ${#tests[@]} -eq 0 ]; then # a binary that cannot even list must not pass by silence
        record "$name (--list)" 1 "$out/$name.list.log"
        continue
    fi
    for t in "${tests[@]}"; do
        [ -n "$only_test" ] && [ "$t" != "$only_test" ] && continue
        log="$out/$name.$t.log"
        timeout -k 5 "$per_test_timeout" "${runner[@]}" "$out/$name" "$t" >"$log" 2>&1
        rc=$?
        [ $rc -eq 124 ] && echo "(killed after ${per_test_timeout}s)" >>"$log"
        record "$name/$t" $rc "$log"
    done
done

# ---- whole-suite checks (skipped when one file was asked for) ---------------------------
if [ -z "$only_file" ]; then
    # A function added to the header must be added to the NULL-argument test too.
    body=$(sed -n '/^static void null_arguments_to_every_function_return_invalid_argument/,/^}/p' \
               tests/c/test_errors.c)
    missing=""
    for fn in $(grep -oE '^(const )?[a-z_]+ \*?wsq_[a-z_]+\(' include/wsqueue.h |
                sed -E 's/.*(wsq_[a-z_]+)\($/\1/' | sort -u); do
        grep -q "$fn(" <<<"$body" || missing="$missing $fn"
    done
    log="$out/header_coverage.log"
    if [ -n "$missing" ]; then echo "not called by the NULL-argument test:$missing" >"$log"; else : >"$log"; fi
    record "every_header_function_is_in_the_null_argument_test" "$([ -z "$missing" ]; echo $?)" "$log"

    # The README's C example must keep compiling against the header.
    log="$out/readme_example.log"
    sed -n '/^```c$/,/^```$/p' README.md | sed '1d;$d' >"$out/readme_example.c"
    [ -s "$out/readme_example.c" ] && cc -std=c11 -Wall -Wextra -Werror -Iinclude -c \
        "$out/readme_example.c" -o "$out/readme_example.o" >"$log" 2>&1
    record "readme_c_example_compiles" $? "$log"

    # Runs the README's C example (it listens on 127.0.0.1:9002) and checks that it
    # answers a WebSocket upgrade with 101; stops it either way.
    readme_example_answers_upgrade() {
        local pid status="" rc=1
        "$1" & pid=$!
        for _ in $(seq 100); do
            if exec 3<>/dev/tcp/127.0.0.1/9002; then
                printf 'GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n' >&3
                IFS= read -r -t 5 status <&3
                exec 3<&-
                break
            fi 2>/dev/null
            sleep 0.05
        done
        kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
        echo "README example answered: ${status%$'\r'}"
        [[ "$status" == "HTTP/1.1 101"* ]] && rc=0
        return $rc
    }

    # The README's link lines must give programs that start (not only link): a tiny
    # program prints the library's version through each of them.
    printf '#include <wsqueue.h>\n#include <stdio.h>\nint main(void) { puts(wsq_version()); return 0; }\n' \
        >"$out/version_app.c"
    version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
    major=${version%%.*}
    log="$out/in_tree_link.log"
    {
        cc "$out/version_app.c" -Iinclude -Ltarget/release -lwsqueue -Wl,-rpath,$PWD/target/release \
            -o "$out/app_shared" && [ "$("$out/app_shared")" = "$version" ] &&
        cc "$out/version_app.c" -Iinclude target/release/libwsqueue.a -lpthread -ldl -lm \
            -o "$out/app_static" && [ "$("$out/app_static")" = "$version" ] &&
        ! readelf -d "$out/app_static" | grep -q libwsqueue
    } >"$log" 2>&1
    record "readme_in_tree_link_lines_give_programs_that_run" $? "$log"

    log="$out/soname.log"
    {
        readelf -d target/release/libwsqueue.so | grep -q "SONAME.*\[libwsqueue.so.$major\]" &&
        others=$(nm -D --defined-only target/release/libwsqueue.so | awk '{print $3}' | grep -v '^wsq_' || true) &&
        { [ -z "$others" ] || { echo "exported without the wsq_ prefix: $others"; false; }; }
    } >"$log" 2>&1
    record "shared_library_has_soname_and_exports_only_wsq_symbols" $? "$log"

    # `make install`: twice into different prefixes (the second .pc must name the second
    # prefix), versioned file and links, pkg-config lines that run, DESTDIR, uninstall,
    # and no cargo needed once the library is built (as under sudo).
    log="$out/install.log"
    p1=$(mktemp -d); p2=$(mktemp -d); stage=$(mktemp -d)
    pc="$p2/lib/pkgconfig"
    {
        make -s install PREFIX="$p1" && make -s install PREFIX="$p2" CARGO=/nonexistent/cargo &&
        grep -qx "prefix=$p2" "$pc/wsqueue.pc" &&
        [ "$(readlink "$p2/lib/libwsqueue.so")" = "libwsqueue.so.$major" ] &&
        [ "$(readlink "$p2/lib/libwsqueue.so.$major")" = "libwsqueue.so.$version" ] &&
        cc "$out/version_app.c" -o "$out/app_pc" $(PKG_CONFIG_PATH="$pc" pkg-config --cflags --libs wsqueue) \
            -Wl,-rpath,"$(PKG_CONFIG_PATH="$pc" pkg-config --variable=libdir wsqueue)" &&
        [ "$("$out/app_pc")" = "$version" ] &&
        readelf -d "$out/app_pc" | grep -q "NEEDED.*\[libwsqueue.so.$major\]" &&
        cc "$out/readme_example.c" -o "$out/readme_pc" $(PKG_CONFIG_PATH="$pc" pkg-config --cflags --libs wsqueue) \
            -Wl,-rpath,"$(PKG_CONFIG_PATH="$pc" pkg-config --variable=libdir wsqueue)" &&
        cc "$out/version_app.c" -o "$out/app_pc_static" $(PKG_CONFIG_PATH="$pc" pkg-config --cflags wsqueue) \
            "$(PKG_CONFIG_PATH="$pc" pkg-config --variable=libdir wsqueue)/libwsqueue.a" \
            $(PKG_CONFIG_PATH="$pc" pkg-config --libs-only-l --static wsqueue | sed 's/-lwsqueue//') &&
        [ "$("$out/app_pc_static")" = "$version" ] &&
        make -s install DESTDIR="$stage" PREFIX=/opt/wsq &&
        grep -qx "prefix=/opt/wsq" "$stage/opt/wsq/lib/pkgconfig/wsqueue.pc" &&
        [ -f "$stage/opt/wsq/include/wsqueue.h" ] &&
        readme_example_answers_upgrade "$out/readme_pc" &&
        make -s uninstall PREFIX="$p2" &&
        left=$(find "$p2" ! -type d) && { [ -z "$left" ] || { echo "left after uninstall: $left"; false; }; }
    } >"$log" 2>&1
    record "make_install_prefix_destdir_uninstall_and_pkg_config" $? "$log"
    rm -rf "$p1" "$p2" "$stage"
fi

if [ $failed -gt 0 ]; then
    echo "failed:"
    printf '  %s\n' "${failures[@]}"
fi
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
