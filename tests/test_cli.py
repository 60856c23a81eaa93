"""The ``audiocore`` command and the benchmark cases it runs."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from audiocore.bench import harness

ROOT = Path(__file__).resolve().parents[1]


def audiocore(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "audiocore", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


# The cases hold their contenders' state, soxr's ResampleStream objects among them: the
# fixture drops them when this module's tests end. Still alive at interpreter exit, every one
# is reported by nanobind (soxr's binding) as a leak, ~30 lines after the test run.
_CASES = {case.op: case for case in harness.all_cases()}
OPS = list(_CASES)


@pytest.fixture(scope="module")
def bench_cases() -> Iterator[dict[str, harness.Case]]:
    yield _CASES
    _CASES.clear()
    gc.collect()


@pytest.mark.parametrize("op", OPS)
def test_contenders_of_every_bench_case_agree(op: str, bench_cases: dict[str, harness.Case]) -> None:
    case = bench_cases[op]
    assert case.check is not None, "every benchmark case checks that the contenders agree"
    case.check()
    case.ours()
    for peer in case.peers:
        peer()
    assert set(case.targets) <= {p.name for p in case.peers}


def test_bench_prints_a_table_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    png = tmp_path / "bench.png"
    result = audiocore("bench", "--quick", "--seconds", "0.01", "--json", str(out),
                       "--plot", str(png))
    assert result.returncode == 0, result.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "speedup" in result.stdout and "pybase64" in result.stdout
    data = json.loads(out.read_text())
    ops = {row["operation"] for row in data["results"]}
    assert set(OPS) == ops
    for row in data["results"]:
        if "peer" in row:
            assert row["speedup"] == pytest.approx(row["peer_seconds"] / row["ours_seconds"])


def test_bench_filter_and_list() -> None:
    listed = audiocore("bench", "--list", "-k", "g711")
    assert listed.returncode == 0 and "ulaw_encode" in listed.stdout
    assert "b64encode" not in listed.stdout


def test_version_and_unknown_command() -> None:
    assert "libopus" in audiocore("--version").stdout
    bad = audiocore("frobnicate")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
    listing = audiocore("--help")
    assert "bench" in listing.stdout and "time every kernel" in listing.stdout


_SOXR_PROBE = """
import gc, sys
def pytest_unconfigure(config):
    gc.collect()
    soxr = sys.modules.get("soxr")
    alive = sum(isinstance(o, soxr.ResampleStream) for o in gc.get_objects()) if soxr else -1
    print(f"\\nsoxr streams alive at the end: {alive}")
"""


def test_no_soxr_stream_outlives_the_bench_case_tests(tmp_path: Path) -> None:
    # nanobind reports every soxr object still alive at interpreter exit as a leak (dozens
    # of lines that would hide a real warning): the bench cases' streams must be gone by then.
    (tmp_path / "soxr_probe.py").write_text(_SOXR_PROBE)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", "-p", "soxr_probe",
         str(ROOT / "tests" / "test_cli.py"), "-k", "contenders"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "soxr streams alive at the end: 0" in result.stdout, result.stdout[-2000:]
    assert "nanobind" not in result.stdout + result.stderr
