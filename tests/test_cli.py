"""The ``audiocore`` command and the benchmark cases it runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import harness  # noqa: E402


def audiocore(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "audiocore", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("case", harness.all_cases(), ids=lambda c: c.op)
def test_contenders_of_every_bench_case_agree(case: harness.Case) -> None:
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
    assert {c.op for c in harness.all_cases()} == ops
    for row in data["results"]:
        if "peer" in row:
            assert row["speedup"] == pytest.approx(row["peer_seconds"] / row["ours_seconds"])


def test_bench_filter_list_and_missing_dir(tmp_path: Path) -> None:
    listed = audiocore("bench", "--list", "-k", "g711")
    assert listed.returncode == 0 and "ulaw_encode" in listed.stdout
    assert "b64encode" not in listed.stdout
    missing = audiocore("bench", "--bench-dir", str(tmp_path))
    assert missing.returncode == 2 and "no benchmark suites" in missing.stderr


def test_version_and_unknown_command() -> None:
    assert "libopus" in audiocore("--version").stdout
    bad = audiocore("frobnicate")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
    listing = audiocore("--help")
    assert "bench" in listing.stdout and "time every kernel" in listing.stdout
