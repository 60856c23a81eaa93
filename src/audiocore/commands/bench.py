"""``audiocore bench``: run the benchmark suites of the source checkout's bench/ directory."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

import audiocore

HELP = "time every kernel beside its peers; prints a table, writes JSON (--plot: a PNG)"


def bench_dir(explicit: str | None = None) -> Path:
    """bench/ of the source checkout this package runs from, unless told otherwise."""
    if explicit:
        return Path(explicit)
    if os.environ.get("AUDIOCORE_BENCH_DIR"):
        return Path(os.environ["AUDIOCORE_BENCH_DIR"])
    return Path(audiocore.__file__).resolve().parents[2] / "bench"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--bench-dir")
    known, rest = parser.parse_known_args(argv)
    where = bench_dir(known.bench_dir)
    harness_path = where / "harness.py"
    if not harness_path.is_file():
        print(
            f"audiocore bench: no benchmark suites at {where}; they live in the source "
            "checkout's bench/ directory (pass --bench-dir DIR or set AUDIOCORE_BENCH_DIR)",
            file=sys.stderr,
        )
        return 2
    spec = importlib.util.spec_from_file_location("harness", harness_path)
    assert spec and spec.loader
    harness = importlib.util.module_from_spec(spec)
    sys.modules["harness"] = harness
    try:
        spec.loader.exec_module(harness)
        result: int = harness.main(rest, bench_dir=where)
    except ModuleNotFoundError as exc:  # a peer the suites time against is not installed
        if not exc.name:
            raise
        print(f"audiocore bench: needs the bench extra (missing: {exc.name}); install it with: "
              "pip install 'audiocore[bench]'", file=sys.stderr)
        return 2
    return result
