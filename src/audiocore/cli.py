"""The ``audiocore`` command. Subcommands live in :mod:`audiocore.commands`.

Whatever the command: Ctrl-C prints one line and exits with 130; a reader of stdout that goes
away (``audiocore inspect ... | head``) ends the command quietly with 141 (128 + SIGPIPE, as a
program stopped by the signal).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import select
import signal
import sys
import warnings
from types import FrameType

import audiocore
from audiocore.commands import COMMANDS

EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141


def _help(name: str) -> str:
    try:
        return str(importlib.import_module(COMMANDS[name]).HELP)
    except ImportError as exc:  # a command whose optional dependencies are missing
        return f"(unavailable: {exc})"


def _run(argv: list[str]) -> int:
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


def _stdout_gone() -> bool:
    """Whether stdout is a pipe whose reader has closed it (not some other broken pipe)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):
        return False


def _quiet_teardown() -> None:
    # What an interrupt cuts short (asyncio tasks, futures, coroutines and callbacks dropped
    # with it) would be logged, warned about ("never awaited") or reported as "Exception
    # ignored" while it is torn down and collected, down to interpreter exit: no news after
    # Ctrl-C.
    logging.disable(logging.CRITICAL)
    warnings.simplefilter("ignore")
    sys.unraisablehook = lambda _: None


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    _quiet_teardown()
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    prog = "audiocore" + (f" {argv[0]}" if argv and argv[0] in COMMANDS else "")
    # Python's own handler, unless SIGINT is ignored (a background job): also quiets teardown
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_sigint)
    try:
        result = _run(argv)
        sys.stdout.flush()  # a closed pipe shows here rather than at interpreter exit
        return result
    except KeyboardInterrupt:
        _quiet_teardown()
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        if not _stdout_gone():
            raise
        # Nothing more can be said on stdout; point it at /dev/null so the interpreter's own
        # flush at exit does not report the pipe again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_BROKEN_PIPE
    finally:
        if previous is signal.default_int_handler and signal.getsignal(signal.SIGINT) is _on_sigint:
            signal.signal(signal.SIGINT, previous)


if __name__ == "__main__":
    sys.exit(main())
