"""Build the Cython kernels under src/audiocore/_ext/.

Every ``src/audiocore/_ext/<name>.pyx`` becomes the extension ``audiocore._ext.<name>``.
Kernels listed in ``LINKS_LIBOPUS`` link the system libopus, found with pkg-config.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = Path(__file__).resolve().parent
EXT_DIR = Path("src", "audiocore", "_ext")

# Kernels that call libopus's C API.
LINKS_LIBOPUS = {"opus", "jitter"}  # jitter cimports opus.pxd (opus.h) for its fast path

LIBOPUS_MISSING = (
    "audiocore: libopus was not found by pkg-config; "
    "install it with: apt-get install pkg-config libopus-dev"
)


def _pkg_config(package: str) -> dict[str, list[str]]:
    """Compiler and linker flags for ``package``, or stop the build with one clear line."""
    if shutil.which("pkg-config") is None:
        sys.exit(LIBOPUS_MISSING)
    try:
        cflags = subprocess.run(
            ["pkg-config", "--cflags", package], check=True, capture_output=True, text=True
        ).stdout.split()
        libs = subprocess.run(
            ["pkg-config", "--libs", package], check=True, capture_output=True, text=True
        ).stdout.split()
    except subprocess.CalledProcessError:
        sys.exit(LIBOPUS_MISSING)
    return {
        "include_dirs": [f[2:] for f in cflags if f.startswith("-I")],
        "extra_compile_args": [f for f in cflags if not f.startswith("-I")],
        "library_dirs": [f[2:] for f in libs if f.startswith("-L")],
        "libraries": [f[2:] for f in libs if f.startswith("-l")],
    }


def _extensions() -> list[Extension]:
    opus = _pkg_config("opus")
    # Portable: no -march=native. Speed comes from the algorithms and loops gcc vectorizes;
    # ISA-specific paths are chosen at run time inside the C helpers.
    base_cflags = ["-O3", "-fno-strict-aliasing", "-Wno-unused-function"]
    if os.environ.get("AUDIOCORE_DEBUG"):
        base_cflags = ["-O0", "-g", "-Wno-unused-function"]
    exts = []
    for pyx in sorted((HERE / EXT_DIR).glob("*.pyx")):
        name = pyx.stem
        kw: dict[str, list[str]] = {
            "include_dirs": [str(EXT_DIR / "csrc")],
            "extra_compile_args": list(base_cflags),
            "library_dirs": [],
            "libraries": [],
        }
        if name in LINKS_LIBOPUS:
            for key, values in opus.items():
                kw[key] += values
        depends = [str(p.relative_to(HERE)) for p in (HERE / EXT_DIR / "csrc").glob("*.h")]
        exts.append(
            Extension(
                f"audiocore._ext.{name}",
                [str(EXT_DIR / pyx.name)],
                depends=depends,
                **kw,
            )
        )
    return exts


setup(
    ext_modules=cythonize(
        _extensions(),
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "embedsignature": True,
            "binding": True,
        },
        quiet=True,
    ),
)
