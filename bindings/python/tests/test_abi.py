"""The binding's hand-written mirror of ``include/wsqueue.h`` against the header itself.

``_ffi.py`` declares the header's structs in ctypes and ``Config`` mirrors
``wsq_config_t``; nothing generates them, so a change to the header (a field added,
moved or widened) must be made there too. These tests compile a small C program
against the header with the machine's C compiler (``make test`` needs one anyway),
which prints each struct's size and alignment and each field's offset and size, and
compare that with the ctypes structures, the ``struct`` format the poll loop unpacks
events with, and the result and event constants.
"""

from __future__ import annotations

import ctypes
import dataclasses
import itertools
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

import wsqueue
from wsqueue import _ffi

ROOT = Path(__file__).resolve().parents[3]
HEADER = ROOT / "include" / "wsqueue.h"

#: The header's structs the binding declares in ctypes.
STRUCTS: dict[str, Any] = {
    "wsq_config_t": _ffi.wsq_config_t,
    "wsq_event_t": _ffi.wsq_event_t,
    "wsq_stats_t": _ffi.wsq_stats_t,
    "wsq_send_item_t": _ffi.wsq_send_item_t,
    "wsq_header_t": _ffi.wsq_header_t,
}

#: ``wsq_config_t`` fields that ``Config`` leaves out on purpose, and why. Every other
#: field of the header's struct must be a ``Config`` field, in the header's order.
CONFIG_EXCLUDED = {
    # One ``bytes`` field in Python is a pointer and its length in C; to_c sets both.
    "tls_cert_chain_pem_len": "the length of tls_cert_chain_pem",
    "tls_private_key_pem_len": "the length of tls_private_key_pem",
    # Handler mode runs a C function on the library's threads for each event; from
    # ctypes it would take the GIL for every event. Left NULL: Python polls.
    "on_event": "handler mode is for C programs",
    "on_event_user": "handler mode's argument",
}

#: A struct's (size, alignment) and its fields' (name, offset, size), in order.
Layout = tuple[tuple[int, int], list[tuple[str, int, int]]]


def header_struct_fields(name: str) -> list[str]:
    """Field names of ``typedef struct { ... } name;`` in include/wsqueue.h, in order."""
    header = HEADER.read_text()
    body = re.search(r"typedef struct \{((?:(?!typedef struct).)*?)\} " + name + ";", header, re.S)
    assert body is not None, name
    code = re.sub(r"/\*.*?\*/", "", body.group(1), flags=re.S)
    return re.findall(r"(\w+);", code)


def ffi_constants() -> dict[str, int]:
    """The header's ``WSQ_*`` numbers as ``_ffi`` spells them (``WSQ_`` left off)."""
    return {
        name: value
        for name, value in vars(_ffi).items()
        if name.isupper() and type(value) is int
    }


def c_compiler() -> str:
    for candidate in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if candidate and shutil.which(candidate):
            return candidate
    pytest.fail("the ABI check compiles a C program: no C compiler (cc, gcc, clang, $CC) found")


def c_program() -> str:
    lines = [
        "#include <stdio.h>",
        "#include <stddef.h>",
        '#include "wsqueue.h"',
        "int main(void) {",
    ]
    for name in STRUCTS:
        lines.append(f'  printf("struct {name} %zu %zu\\n", sizeof({name}), _Alignof({name}));')
        for field in header_struct_fields(name):
            lines.append(
                f'  printf("field {name} {field} %zu %zu\\n",'
                f" offsetof({name}, {field}), sizeof((({name} *)0)->{field}));"
            )
    for name in ffi_constants():
        lines.append(f'  printf("const {name} %lld\\n", (long long)WSQ_{name});')
    lines += ["  return 0;", "}"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def c_abi(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Layout], dict[str, int]]:
    """What the C compiler makes of the header: layouts by struct, constants by name."""
    work = tmp_path_factory.mktemp("abi")
    source = work / "abi.c"
    source.write_text(c_program())
    program = work / "abi"
    compiled = subprocess.run(
        [c_compiler(), "-Wall", "-I", str(HEADER.parent), "-o", str(program), str(source)],
        capture_output=True,
        text=True,
    )
    # A constant _ffi declares that the header lacks fails here, with the compiler's
    # word for which.
    assert compiled.returncode == 0, compiled.stderr
    output = subprocess.run([str(program)], capture_output=True, text=True, check=True).stdout
    layouts: dict[str, Layout] = {}
    constants: dict[str, int] = {}
    for line in output.splitlines():
        kind, *rest = line.split()
        if kind == "struct":
            layouts[rest[0]] = ((int(rest[1]), int(rest[2])), [])
        elif kind == "field":
            layouts[rest[0]][1].append((rest[1], int(rest[2]), int(rest[3])))
        else:
            constants[rest[0]] = int(rest[1])
    return layouts, constants


def ctypes_layout(ctype: Any) -> Layout:
    fields = [(entry[0], getattr(ctype, entry[0]).offset, getattr(ctype, entry[0]).size) for entry in ctype._fields_]
    return (ctypes.sizeof(ctype), ctypes.alignment(ctype)), fields


@pytest.mark.parametrize("name", STRUCTS)
def test_ctypes_structs_have_the_headers_fields_in_order(name: str) -> None:
    # A field the header gained and ctypes lacks would let the library write past
    # the Python buffer: the header is the reference.
    assert [entry[0] for entry in STRUCTS[name]._fields_] == header_struct_fields(name)


@pytest.mark.parametrize("name", STRUCTS)
def test_ctypes_layout_is_the_c_compilers(name: str, c_abi: tuple[dict[str, Layout], dict[str, int]]) -> None:
    # Field by field: a type that is wider or narrower in one of the two, or fields
    # in another order, moves an offset even where the total size stays the same.
    ours, theirs = ctypes_layout(STRUCTS[name]), c_abi[0][name]
    differing = [
        f"ctypes {mine} / C {cs}" for mine, cs in itertools.zip_longest(ours[1], theirs[1]) if mine != cs
    ]
    assert ours == theirs, (
        f"{name}: (size, alignment) ctypes {ours[0]} / C {theirs[0]};"
        f" (field, offset, size) that differ: {differing}"
    )


def test_the_event_unpack_format_is_the_c_layout(c_abi: tuple[dict[str, Layout], dict[str, int]]) -> None:
    # The poll loop reads events with _ffi.EVENT_STRUCT, not through ctypes: its
    # fields must sit where the C compiler puts wsq_event_t's.
    codes = _ffi.EVENT_STRUCT.format[1:]
    assert _ffi.EVENT_STRUCT.format[0] == "@"  # native sizes and alignment
    unpacked = [
        (struct.calcsize("@" + codes[: i + 1]) - struct.calcsize("@" + code), struct.calcsize("@" + code))
        for i, code in enumerate(codes)
    ]
    (size, _), fields = c_abi[0]["wsq_event_t"]
    assert unpacked == [(offset, width) for _, offset, width in fields]
    assert _ffi.EVENT_STRUCT.size == size


def test_result_and_event_constants_are_the_headers(c_abi: tuple[dict[str, Layout], dict[str, int]]) -> None:
    assert ffi_constants() == c_abi[1]


def test_every_config_field_is_in_config_or_excluded_on_purpose() -> None:
    c_fields = header_struct_fields("wsq_config_t")
    assert set(CONFIG_EXCLUDED) <= set(c_fields), "an exclusion the header no longer has"
    python = [f.name for f in dataclasses.fields(wsqueue.Config)]
    assert python == [name for name in c_fields if name not in CONFIG_EXCLUDED]
