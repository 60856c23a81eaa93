"""The ``audiocore`` command. Subcommands live in :mod:`audiocore.commands`."""

from __future__ import annotations

import argparse
import importlib
import sys

import audiocore
from audiocore.commands import COMMANDS


def _help(name: str) -> str:
    try:
        return str(importlib.import_module(COMMANDS[name]).HELP)
    except ImportError as exc:  # a command whose optional dependencies are missing
        return f"(unavailable: {exc})"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in COMMANDS:  # only the command's own module is imported
        result: int = importlib.import_module(COMMANDS[argv[0]]).main(argv[1:])
        return result
    parser = argparse.ArgumentParser(
        prog="audiocore",
        description="Audio core for real-time voice gateways.",
        epilog="Commands:\n" + "\n".join(f"  {k:10} {_help(k)}" for k in sorted(COMMANDS))
        + "\n\nRun 'audiocore COMMAND --help' for a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action="version",
        version=f"audiocore {audiocore.__version__} ({audiocore.libopus_version()})",
    )
    parser.add_argument("command", choices=sorted(COMMANDS), metavar="COMMAND")
    parser.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    if not argv:
        parser.print_help()
        return 2
    parser.parse_args(argv)  # reports the unknown command, or handles --help / --version
    return 2


if __name__ == "__main__":
    sys.exit(main())
