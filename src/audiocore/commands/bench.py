"""``audiocore bench``: run the benchmark suites shipped in :mod:`audiocore.bench`."""

from __future__ import annotations

import sys

HELP = "time every kernel beside its peers; prints a table, writes JSON (--plot: a PNG)"


def main(argv: list[str]) -> int:
    try:
        from audiocore.bench import harness

        return harness.main(argv)
    except ModuleNotFoundError as exc:  # a peer the suites time against is not installed
        if not exc.name or exc.name.split(".")[0] == "audiocore":
            raise
        print(f"audiocore bench: needs the bench extra (missing: {exc.name}); install it with: "
              "pip install 'audiocore[bench]'", file=sys.stderr)
        return 2
