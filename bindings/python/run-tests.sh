#!/usr/bin/env bash
# Tests the Python binding as a user gets it: pip-installs ./bindings/python (which
# builds the Rust library with cargo and bundles it) into the tree's .venv, checks
# the types (mypy --strict), runs pytest against the real websockets client, and
# checks that a wheel from `pip wheel` installs and runs where cargo is absent.
# Exits non-zero on any failure.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$root/.venv"

if [ ! -x "$venv/bin/python3" ]; then
    # Normally made by tests/deps.sh (tests/interop/install.sh); same recipe.
    echo "python binding: creating $venv"
    python3 -m venv "$venv"
fi
py="$venv/bin/python3"
"$py" -m pip install --quiet --disable-pip-version-check -r "$here/tests/requirements.txt"

echo "python binding: pip install ./bindings/python (cargo build --release)"
# --force-reinstall: the same version number must still pick up changed sources.
"$py" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps "$here"

echo "python binding: mypy --strict"
(cd "$here" && "$venv/bin/mypy" --strict --no-incremental src/wsqueue tests "$root/examples/python")

echo "python binding: pytest"
# From the tests directory, with no WSQUEUE_LIBRARY: the installed package and its
# bundled library are what is tested, not the source tree.
(cd "$here/tests" && env -u WSQUEUE_LIBRARY "$py" -m pytest -q -p no:cacheprovider .)

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "python binding: the interop suites (websockets, ws, gorilla, chromium) against the Python examples"
# The same suites and checks as the C examples get (tests/interop/run.sh), with
# examples/python/echo.py and chat.py in their place. Their clients are installed
# by tests/interop/install.sh (idempotent; make test has run it already).
bash "$root/tests/interop/install.sh" >/dev/null
for example in echo chat; do
    printf '#!/bin/sh\nexec "%s" "%s" "$@"\n' "$py" "$root/examples/python/$example.py" >"$tmp/$example"
    chmod +x "$tmp/$example"
done
WSQ_ECHO_SERVER="$tmp/echo" WSQ_CHAT_SERVER="$tmp/chat" PATH="$venv/bin:$PATH" \
    bash "$root/tests/interop/run.sh" python node go browser

echo "python binding: pip wheel, installed in a fresh venv without cargo on PATH"
"$py" -m pip wheel --quiet --disable-pip-version-check --no-deps -w "$tmp/dist" "$here"
wheel=("$tmp"/dist/wsqueue-*.whl)
case "$(basename "${wheel[0]}")" in
    *-py3-none-linux_*.whl) ;;
    *) echo "unexpected wheel tag: ${wheel[0]}"; exit 1 ;;
esac
python3 -m venv "$tmp/v"
"$tmp/v/bin/python3" -m pip install --quiet --disable-pip-version-check --no-index "${wheel[0]}"
(cd "$tmp" && env -u WSQUEUE_LIBRARY PATH=/usr/bin:/bin "$tmp/v/bin/python3" -c '
import wsqueue, pathlib
with wsqueue.Server(wsqueue.Config(listen="127.0.0.1:0")) as server:
    assert server.port > 0
print("wheel OK:", wsqueue.__version__, wsqueue._ffi._library_path())
')
echo "python binding: all passed"
