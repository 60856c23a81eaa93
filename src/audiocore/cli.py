"""The ``audiocore`` command: ``audiocore bench`` (more subcommands arrive with their layers)."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

import audiocore


def _bench_dir(explicit: str | None) -> Path:
    """bench/ of the source checkout this package runs from, unless told otherwise."""
    if explicit:
        return Path(explicit)
    if os.environ.get("AUDIOCORE_BENCH_DIR"):
        return Path(os.environ["AUDIOCORE_BENCH_DIR"])
    return Path(audiocore.__file__).resolve().parents[2] / "bench"


def _bench(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--bench-dir")
    known, rest = parser.parse_known_args(argv)
    bench_dir = _bench_dir(known.bench_dir)
    harness_path = bench_dir / "harness.py"
    if not harness_path.is_file():
        print(
            f"audiocore bench: no benchmark suites at {bench_dir}; they live in the source "
            "checkout's bench/ directory (pass --bench-dir DIR or set AUDIOCORE_BENCH_DIR)",
            file=sys.stderr,
        )
        return 2
    spec = importlib.util.spec_from_file_location("harness", harness_path)
    assert spec and spec.loader
    harness = importlib.util.module_from_spec(spec)
    sys.modules["harness"] = harness
    spec.loader.exec_module(harness)
    result: int = harness.main(rest, bench_dir=bench_dir)
    return result


COMMANDS = {
    "bench": (_bench, "time every kernel beside its peers; prints a table, writes JSON"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="audiocore",
        description="Audio core for real-time voice gateways.",
        epilog="Run 'audiocore COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version",
                        version=f"audiocore {audiocore.__version__} ({audiocore.libopus_version()})")
    parser.add_argument("command", choices=sorted(COMMANDS),
                        help="; ".join(f"{k}: {v[1]}" for k, v in sorted(COMMANDS.items())))
    parser.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    if not argv:
        parser.print_help()
        return 2
    if argv[0] in COMMANDS:
        return COMMANDS[argv[0]][0](argv[1:])
    parser.parse_args(argv)  # reports the unknown command or handles --help/--version
    return 2


if __name__ == "__main__":
    sys.exit(main())
