#!/usr/bin/env bash
# Builds and runs the C ABI tests against target/release/libwsqueue.a under
# AddressSanitizer + LeakSanitizer (which also sees the Rust side's allocations,
# since they go through malloc). Prints per-test lines and "N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/../.."
out=build/ctests
mkdir -p "$out"
lib=target/release/libwsqueue.a
[ -f "$lib" ] || { echo "missing $lib: run 'make lib' first"; exit 1; }
CFLAGS="-std=c11 -D_DEFAULT_SOURCE -Wall -Wextra -Werror -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined"
status=0
for src in tests/c/test_*.c; do
    name=$(basename "$src" .c)
    cc $CFLAGS -Iinclude -Itests/c "$src" -o "$out/$name" "$lib" -lpthread -ldl -lm
    echo "== $name"
    # detect_leaks: any definitely-lost block fails the run. The library keeps each
    # server handle reachable from a global on purpose (stale-handle detection), which
    # LeakSanitizer does not report.
    if ! ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1 \
         UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
         timeout 300 "$out/$name"; then
        status=1
    fi
done
# The README's C example must keep compiling against the header (docs true to code).
echo "== readme_example"
sed -n '/^```c$/,/^```$/p' README.md | sed '1d;$d' > "$out/readme_example.c"
if cc -std=c11 -Wall -Wextra -Werror -Iinclude -c "$out/readme_example.c" -o "$out/readme_example.o"; then
    echo "ok   README C example compiles"
else
    echo "FAIL README C example compiles"; status=1
fi
# `make install` must give a usable installation: pkg-config flags for the shared
# library, and the static library linking on its own.
echo "== install"
prefix=$(mktemp -d)
if make -s install PREFIX="$prefix" >/dev/null &&
   cc -std=c11 "$out/readme_example.c" -o "$out/readme_shared" \
      $(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --cflags --libs wsqueue) &&
   cc -std=c11 "$out/readme_example.c" -o "$out/readme_static" -I"$prefix/include" \
      "$prefix/lib/libwsqueue.a" $(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --libs-only-l --static wsqueue | sed 's/-lwsqueue//'); then
    echo "ok   make install + pkg-config (shared and static links)"
else
    echo "FAIL make install + pkg-config"; status=1
fi
rm -rf "$prefix"
exit $status
