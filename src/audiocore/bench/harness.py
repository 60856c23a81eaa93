"""Benchmark cases and the runner behind ``audiocore bench``.

A case module is any ``audiocore.bench.cases_*`` module with a ``cases() -> list[Case]``
function; it may also have ``extras() -> dict[str, object]`` for figures that are not per-call
times (delays, for example), printed after the table (formatted by ``report(figures) ->
list[str]`` when the module has one) and kept in the JSON, and ``plot(path: Path) -> None``
which writes a PNG of its own for ``--plot``. The pytest-benchmark suite (the source
checkout's ``bench/test_bench.py``) times the very same cases, so both views measure one
definition.

Timing: every implementation of a case is calibrated to a round of a few milliseconds, then
the implementations run in interleaved rounds and each keeps its fastest round. Interleaving
matters on shared machines: a burst of load slows every contender of that round alike.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import importlib.util
import json
import math
import pkgutil
import platform
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from types import ModuleType
from typing import Any

@dataclass
class Impl:
    """One contender: ``fn(*args)`` is one call of the operation."""

    name: str
    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()

    def __call__(self) -> Any:
        return self.fn(*self.args)


@dataclass
class Case:
    """One operation timed for audiocore and its peers.

    ``targets`` maps a peer's name to the minimum speedup required (peer time / our time):
    ``3.0`` is "at least 3x faster", ``1 / 1.3`` is "no more than 1.3x slower".
    ``check`` raises AssertionError when the contenders do not compute the same thing.
    """

    group: str
    op: str
    ours: Impl
    peers: list[Impl]
    targets: dict[str, float] = field(default_factory=dict)
    check: Callable[[], None] | None = None
    note: str = ""


def discover() -> list[ModuleType]:
    """Import every ``audiocore.bench.cases_*`` module (sorted by name)."""
    import audiocore.bench

    names = sorted(m.name for m in pkgutil.iter_modules(audiocore.bench.__path__)
                   if m.name.startswith("cases_"))
    return [importlib.import_module(f"audiocore.bench.{name}") for name in names]


def suite(module: ModuleType) -> str:
    """A case module's short name: ``resample`` for ``audiocore.bench.cases_resample``."""
    return module.__name__.rpartition(".")[2].removeprefix("cases_")


def all_cases() -> list[Case]:
    return [case for module in discover() for case in module.cases()]


def _loop(impl: Impl, number: int) -> float:
    fn, args = impl.fn, impl.args
    start = time.perf_counter()
    if len(args) == 1:
        (a,) = args
        for _ in repeat(None, number):
            fn(a)
    else:
        for _ in repeat(None, number):
            fn(*args)
    return time.perf_counter() - start


def _calibrate(impl: Impl, round_seconds: float) -> int:
    number = 1
    while True:
        elapsed = _loop(impl, number)
        if elapsed >= round_seconds / 4 or number >= 1 << 24:
            return max(1, int(number * round_seconds / max(elapsed, 1e-9)))
        number *= 4


def measure(impls: list[Impl], seconds: float) -> list[float]:
    """Seconds per call of each implementation: the fastest of interleaved rounds."""
    rounds = 7
    round_seconds = max(seconds / (rounds * len(impls)), 0.0005)
    numbers = [_calibrate(impl, round_seconds) for impl in impls]
    best = [math.inf] * len(impls)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(rounds):
            for i, impl in enumerate(impls):
                best[i] = min(best[i], _loop(impl, numbers[i]) / numbers[i])
    finally:
        if gc_was_enabled:
            gc.enable()
    return best


def _fmt_time(seconds: float) -> str:
    if seconds < 1e-6:
        return f"{seconds * 1e9:.0f} ns"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.2f} µs"
    return f"{seconds * 1e3:.2f} ms"


def run(cases: Iterable[Case], seconds: float, out: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Time every case; print one table row per peer; return the rows as dicts."""
    rows: list[dict[str, Any]] = []
    header = f"{'operation':44} {'ours':>10}  {'peer':24} {'peer time':>10} {'speedup':>8}  target"
    out(header)
    out("-" * len(header))
    for case in cases:
        if case.check is not None:
            case.check()
        times = measure([case.ours, *case.peers], seconds)
        ours = times[0]
        for k, (peer, peer_time) in enumerate(zip(case.peers, times[1:])):
            speedup = peer_time / ours
            target = case.targets.get(peer.name)
            met = None if target is None else speedup >= target
            verdict = "" if target is None else f">= {target:.2f}x {'met' if met else 'MISSED'}"
            out(
                f"{case.op if k == 0 else '':44} {_fmt_time(ours) if k == 0 else '':>10}  "
                f"{peer.name:24} {_fmt_time(peer_time):>10} {speedup:7.2f}x  {verdict}"
            )
            rows.append(
                {
                    "group": case.group,
                    "operation": case.op,
                    "ours": case.ours.name,
                    "ours_seconds": ours,
                    "peer": peer.name,
                    "peer_seconds": peer_time,
                    "speedup": speedup,
                    "target_speedup": target,
                    "target_met": met,
                    "note": case.note,
                }
            )
        if not case.peers:
            out(f"{case.op:44} {_fmt_time(ours):>10}")
            rows.append({"group": case.group, "operation": case.op, "ours": case.ours.name,
                         "ours_seconds": ours, "note": case.note})
    return rows


def plot(rows: list[dict[str, Any]], path: Path, modules: list[ModuleType],
         needle: str = "", through: Callable[[Path], Path] = lambda p: p) -> list[Path]:
    """A horizontal bar chart of every speedup (log scale, targets marked) at ``path``, and
    each case module's own figure at ``<path stem>-<module>.png``; ``through(target)`` gives
    the file actually written for a target. Returns the targets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    compared = [r for r in rows if "peer" in r]
    if compared:
        fig, ax = plt.subplots(figsize=(10, 0.35 * len(compared) + 1.5))
        labels = [f"{r['operation']} vs {r['peer']}" for r in compared]
        speedups = [r["speedup"] for r in compared]
        colors = ["tab:green" if r["target_met"] is not False else "tab:red" for r in compared]
        y = range(len(compared))
        ax.barh(y, speedups, color=colors)
        for i, r in enumerate(compared):
            if r["target_speedup"] is not None:
                ax.plot([r["target_speedup"]] * 2, [i - 0.4, i + 0.4], color="black", lw=2)
        ax.set_yticks(list(y), labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.axvline(1.0, color="grey", lw=0.8)
        ax.set_xlabel("speedup over the peer (peer time / audiocore time); black: target")
        ax.set_title("audiocore vs peers, same process and run")
        fig.tight_layout()
        fig.savefig(through(path), dpi=120)
        plt.close(fig)
        written.append(path)
    for module in modules:
        if hasattr(module, "plot") and (not needle or needle in suite(module)):
            own = path.with_name(f"{path.stem}-{suite(module)}.png")
            module.plot(through(own))
            written.append(own)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="audiocore bench", description="Time every kernel beside "
                                     "its peers in the same process and run.")
    parser.add_argument("--quick", action="store_true", help="short timings (a smoke run)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="time budget per case (default 1.0, 0.05 with --quick)")
    parser.add_argument("-k", "--only", default="", help="only cases whose group or operation "
                        "contains this text")
    parser.add_argument("--json", default="audiocore-bench.json", metavar="PATH",
                        help="where to write the results (default: %(default)s)")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--strict", action="store_true",
                        help="exit with status 1 when a target is missed")
    parser.add_argument("--plot", nargs="?", const="audiocore-bench.png", default=None,
                        metavar="PNG", help="also write a chart of the speedups (default "
                        "%(const)s) and each suite's own figures beside it")
    args = parser.parse_args(argv)
    # Everything that can be checked is checked before the run, so that none of it is lost.
    for flag, target in (("--json", args.json), ("--plot", args.plot)):
        if target is not None and not args.list:
            where = Path(target)
            if where.is_dir() or not where.parent.is_dir():
                why = "is a directory" if where.is_dir() else f"no directory {where.parent}"
                print(f"audiocore bench: {flag} {target}: {why}", file=sys.stderr)
                return 2
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        print("audiocore bench: --plot needs matplotlib (pip install 'audiocore[bench]')", file=sys.stderr)
        return 2

    modules = discover()
    needle = args.only.lower()
    cases = [c for m in modules for c in m.cases()
             if needle in c.group.lower() or needle in c.op.lower()]
    if not cases and not any(hasattr(m, "extras") and needle in suite(m) for m in modules):
        print(f"audiocore bench: no case matches -k {args.only!r} ('audiocore bench --list' lists them); "
              "nothing run, nothing written", file=sys.stderr)
        return 2
    if args.list:
        for case in cases:
            print(f"{case.group:12} {case.op}  vs {', '.join(p.name for p in case.peers)}")
        return 0
    seconds = args.seconds if args.seconds is not None else (0.05 if args.quick else 1.0)

    import audiocore

    print(f"audiocore {audiocore.__version__} ({audiocore.libopus_version()}), "
          f"Python {platform.python_version()}, {platform.machine()}, "
          f"{seconds:g} s per case; speedup = peer time / our time\n")
    rows = run(cases, seconds)
    extras: dict[str, Any] = {}
    for module in modules:
        if hasattr(module, "extras") and (not needle or needle in suite(module)):
            figures = module.extras()
            extras.update(figures)
            print()
            if hasattr(module, "report"):
                print("\n".join(module.report(figures)))
            else:
                for key, value in figures.items():
                    print(f"{key}: {value}")
    result = {
        "audiocore": audiocore.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "seconds_per_case": seconds,
        "results": rows,
        "extras": extras,
    }
    from audiocore.commands._atomic import Outputs

    with Outputs() as outputs:  # each file replaces its target only when all were written
        outputs.add(args.json).write_text(json.dumps(result, indent=2) + "\n")
        figures_written = plot(rows, Path(args.plot), modules, needle, outputs.add) if args.plot else []
    for written in figures_written:
        print(f"figure: {written}")
    missed = [r for r in rows if r.get("target_met") is False]
    print(f"\n{len(rows)} comparisons, {len(missed)} targets missed; results in {args.json}")
    return 1 if (missed and args.strict) else 0


if __name__ == "__main__":
    sys.exit(main())
