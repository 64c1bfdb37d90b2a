#!/usr/bin/env bash
# Builds bench/peers/uws-echo (echo.cpp) against uWebSockets and uSockets, from their
# sources at pinned commits, into $OUT (bench/target/uws). Nothing of theirs is kept in
# this repository: the sources are cloned at bench time.
#
#   bash bench/peers/uws-echo/build.sh      -> bench/target/uws/uws-echo
#
# Environment:
#   UWS_REPO        where to clone uWebSockets from [https://github.com/uNetworking/uWebSockets.git]
#   USOCKETS_REPO   where to clone uSockets from [https://github.com/uNetworking/uSockets.git]
#                   (either may be a local git directory, e.g. a mirror)
#   UWS_COMMIT, USOCKETS_COMMIT   the commits built (USOCKETS_COMMIT is the one
#                   uWebSockets' uSockets submodule points at)
#   OUT             build directory [bench/target/uws]
#
# Needs git, a C compiler and a C++20 compiler (g++ or clang++). Built the way their
# own build (build.c, uSockets' Makefile) does it: -O3, LTO, -march=native, no TLS;
# without zlib, since the benchmark never negotiates compression; -w: their warnings
# are not ours to act on.
set -euo pipefail
cd "$(dirname "$0")"
HERE=$PWD
ROOT=$(cd ../../.. && pwd)
UWS_REPO=${UWS_REPO:-https://github.com/uNetworking/uWebSockets.git}
USOCKETS_REPO=${USOCKETS_REPO:-https://github.com/uNetworking/uSockets.git}
UWS_COMMIT=${UWS_COMMIT:-66dcff3dd48f0c19dd1703426365d062039321d0}
USOCKETS_COMMIT=${USOCKETS_COMMIT:-86097c490263ab662d62e8e7b541390bdec7d149}
OUT=${OUT:-$ROOT/bench/target/uws}
CC=${CC:-cc}
CXX=${CXX:-g++}

# Clones REPO into DIR (once) and checks out COMMIT.
checkout() {
    local repo=$1 dir=$2 commit=$3
    if [ ! -d "$dir/.git" ]; then
        rm -rf "$dir"
        git clone -q --no-checkout "$repo" "$dir"
    fi
    git -C "$dir" -c advice.detachedHead=false checkout -q "$commit"
}

mkdir -p "$OUT"
stamp=$OUT/uws-echo.built-from
want="$UWS_COMMIT $USOCKETS_COMMIT $(sha1sum echo.cpp build.sh | cut -c1-40 | tr '\n' ' ')"
if [ -x "$OUT/uws-echo" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    exit 0
fi
checkout "$UWS_REPO" "$OUT/uWebSockets" "$UWS_COMMIT"
checkout "$USOCKETS_REPO" "$OUT/uSockets" "$USOCKETS_COMMIT"

# uSockets' own Makefile: its default target compiles every .c file with -O3 and LTO,
# without TLS, into object files in its directory.
make -s -C "$OUT/uSockets" default CC="$CC" >/dev/null
"$CXX" -w -march=native -O3 -flto=auto -std=c++2b -DUWS_NO_ZLIB -DLIBUS_NO_SSL \
    -I"$OUT/uWebSockets/src" -I"$OUT/uSockets/src" \
    "$HERE/echo.cpp" "$OUT"/uSockets/*.o -o "$OUT/uws-echo"
echo "$want" > "$stamp"
echo "built $OUT/uws-echo (uWebSockets $UWS_COMMIT, uSockets $USOCKETS_COMMIT)" >&2
