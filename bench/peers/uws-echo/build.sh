#!/usr/bin/env bash
# Builds bench/peers/uws-echo (echo.cpp) against uWebSockets and uSockets, from their
# sources at pinned commits, into $UWS_BUILD_DIR (bench/target/uws). Nothing of theirs
# is kept in this repository: the sources are cloned at bench time.
#
#   bash bench/peers/uws-echo/build.sh      -> bench/target/uws/uws-echo
#
# Environment:
#   UWS_REPO        where to clone uWebSockets from [https://github.com/uNetworking/uWebSockets.git]
#   USOCKETS_REPO   where to clone uSockets from [https://github.com/uNetworking/uSockets.git]
#                   (either may be a local git directory, e.g. a mirror)
#   UWS_COMMIT, USOCKETS_COMMIT   the commits built (USOCKETS_COMMIT is the one
#                   uWebSockets' uSockets submodule points at)
#   UWS_BUILD_DIR   build directory [bench/target/uws]
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
UWS_BUILD_DIR=${UWS_BUILD_DIR:-$ROOT/bench/target/uws}
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

mkdir -p "$UWS_BUILD_DIR"
stamp=$UWS_BUILD_DIR/uws-echo.built-from
want="$UWS_COMMIT $USOCKETS_COMMIT $(sha1sum echo.cpp build.sh | cut -c1-40 | tr '\n' ' ')"
if [ -x "$UWS_BUILD_DIR/uws-echo" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    exit 0
fi
checkout "$UWS_REPO" "$UWS_BUILD_DIR/uWebSockets" "$UWS_COMMIT"
checkout "$USOCKETS_REPO" "$UWS_BUILD_DIR/uSockets" "$USOCKETS_COMMIT"

# uSockets' own Makefile: its default target compiles every .c file with -O3 and LTO,
# without TLS, into object files in its directory.
# (Its Makefile tries Windows' lib.exe before ar: that message is expected, so the
# log is shown only if the build fails.)
if ! make -s -C "$UWS_BUILD_DIR/uSockets" default CC="$CC" > "$UWS_BUILD_DIR/uSockets.log" 2>&1; then
    cat "$UWS_BUILD_DIR/uSockets.log" >&2
    exit 1
fi
"$CXX" -w -march=native -O3 -flto=auto -std=c++2b -DUWS_NO_ZLIB -DLIBUS_NO_SSL \
    -I"$UWS_BUILD_DIR/uWebSockets/src" -I"$UWS_BUILD_DIR/uSockets/src" \
    "$HERE/echo.cpp" "$UWS_BUILD_DIR"/uSockets/*.o -o "$UWS_BUILD_DIR/uws-echo"
echo "$want" > "$stamp"
echo "built $UWS_BUILD_DIR/uws-echo (uWebSockets $UWS_COMMIT, uSockets $USOCKETS_COMMIT)" >&2
