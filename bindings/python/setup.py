"""Build step for the wsqueue package: compile the Rust library with cargo and put
``libwsqueue.so`` inside the package, and read the version from ``Cargo.toml``.

setuptools stays the backend (declared in pyproject.toml); this file only adds the
cargo step to ``build_py`` and marks the wheel as platform-specific (it carries a
native library) but independent of the Python version and ABI (ctypes, no extension
module).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent  # the repository: Cargo.toml, src/, target/


def crate_version() -> str:
    text = (ROOT / "Cargo.toml").read_text()
    match = re.search(r'^version\s*=\s*"([^"]+)"', text, re.MULTILINE)
    if match is None:
        raise RuntimeError("no version in Cargo.toml")
    return match.group(1)


def built_library() -> Path:
    """Runs ``cargo build --release --lib`` (a no-op when up to date) unless
    WSQUEUE_PREBUILT names a library to bundle instead."""
    prebuilt = os.environ.get("WSQUEUE_PREBUILT")
    if prebuilt:
        return Path(prebuilt)
    cargo = os.environ.get("CARGO", "cargo")
    if shutil.which(cargo) is None:
        raise RuntimeError(
            "building wsqueue needs cargo (Rust) on PATH, or WSQUEUE_PREBUILT=path/to/libwsqueue.so;"
            " a wheel built with `pip wheel` installs without it"
        )
    subprocess.run(
        [cargo, "build", "--release", "--lib", "--manifest-path", str(ROOT / "Cargo.toml")],
        check=True,
    )
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    if not target.is_absolute():
        target = ROOT / target
    return target / "release" / "libwsqueue.so"


class BuildWithCargo(build_py):
    def run(self) -> None:
        super().run()
        library = built_library()
        destination = Path(self.build_lib) / "wsqueue" / "libwsqueue.so"
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(library, destination)


class NativeDistribution(Distribution):
    def has_ext_modules(self) -> bool:  # a platform wheel, not a pure-Python one
        return True


commands: dict[str, type] = {"build_py": BuildWithCargo}

try:
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # setuptools < 70
    from wheel.bdist_wheel import bdist_wheel  # type: ignore[no-redef]


class PlatformWheel(bdist_wheel):  # type: ignore[misc,valid-type]
    def get_tag(self) -> tuple[str, str, str]:
        _, _, platform = super().get_tag()
        return "py3", "none", platform


commands["bdist_wheel"] = PlatformWheel

setup(version=crate_version(), cmdclass=commands, distclass=NativeDistribution)
