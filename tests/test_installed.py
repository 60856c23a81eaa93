"""``audiocore bench`` and ``audiocore loadtest`` from a wheel installed in a fresh venv, run
from another folder: nothing of the source checkout on ``sys.path``.

One test, so that the wheel is built once (about 70-80 s of compiling on one core: the
kernels) whichever worker runs it. The venv gets only the wheel (``--no-deps``); the
dependencies and extras come from this test run's own environment through a ``.pth`` line
(its site-packages directory, whose own ``.pth`` files, the editable install's among them,
are not processed), so no index is needed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# What a build of a fresh checkout would not see (.gitignore), and the checkout's own venv.
_NOT_SOURCE = shutil.ignore_patterns(".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", "*.so",
                                     ".*_cache", ".hypothesis", ".benchmarks", "audiocore-demo", "out")


def _run(args: list[str | Path], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=env)


@pytest.mark.slow
def test_bench_and_loadtest_run_from_an_installed_wheel(tmp_path: Path) -> None:
    source, wheels, venv, work = (tmp_path / n for n in ("source", "wheels", "venv", "work"))
    shutil.copytree(ROOT, source, ignore=_NOT_SOURCE)
    built = _run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation",
                  "--no-index", "-q", "-w", wheels], cwd=source, timeout=900)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = wheels.glob("audiocore-*.whl")

    assert _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp_path).returncode == 0
    python = venv / "bin" / "python"
    installed = _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
                      "-q", wheel], cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr[-3000:]
    # Only now (pip would otherwise see this run's own audiocore and replace it).
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                     cwd=tmp_path).stdout.strip())
    (site / "_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")

    work.mkdir()
    where = _run([python, "-c", "import sys, audiocore.bench; print(audiocore.bench.__file__); "
                  "print(*sys.path, sep='\\n')"], cwd=work)
    assert where.returncode == 0, where.stderr
    module, *path = where.stdout.splitlines()
    assert Path(module).is_relative_to(site)  # the wheel's copy
    assert not [p for p in path if p and Path(p).resolve().is_relative_to(ROOT / "src")]

    # --list builds every case, which reads every bundled recording: the same cases as the
    # checkout's, so every module and recording shipped
    audiocore = venv / "bin" / "audiocore"
    listed = _run([audiocore, "bench", "--list"], cwd=work)
    assert listed.returncode == 0, listed.stderr[-3000:]
    checkout = _run([sys.executable, "-m", "audiocore", "bench", "--list"], cwd=ROOT)
    assert listed.stdout == checkout.stdout and len(listed.stdout.splitlines()) > 20

    bench = _run([audiocore, "bench", "--quick", "-k", "ulaw_encode", "--json", "out.json"], cwd=work)
    assert bench.returncode == 0, bench.stderr[-3000:]
    rows = json.loads((work / "out.json").read_text())["results"]
    assert [(r["operation"], r["peer"]) for r in rows] == [("ulaw_encode 160 samples (20 ms @8 kHz)", "audioop")]
    assert rows[0]["ours_seconds"] > 0 and rows[0]["peer_seconds"] > 0

    helped = _run([audiocore, "loadtest", "--help"], cwd=work)
    assert helped.returncode == 0 and "--no-baseline" in helped.stdout
    # the smallest load: one call of one second through our bridge and the usual one
    load = _run([audiocore, "loadtest", "--calls", "1", "--seconds", "1", "--json"], cwd=work, timeout=300)
    assert load.returncode == 0, load.stderr[-3000:]
    out = json.loads(load.stdout)
    assert out["baseline"] is not None and out["baseline"]["bridge"].startswith("usual")
    for fig in (out["ours"], out["baseline"]):
        assert fig["frames_sent"] == 50 and fig["lost_frames"] == 0
    assert sorted(p.name for p in work.iterdir()) == ["out.json"]
