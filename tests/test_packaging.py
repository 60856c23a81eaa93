"""The package as built: stubs agree with the extensions, mypy passes, a missing libopus stops
the build with one clear line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import audiocore

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, env=env, timeout=600
    )


def test_public_names() -> None:
    for name in audiocore.__all__:
        assert hasattr(audiocore, name), name
    assert audiocore.libopus_version().startswith("libopus ")
    package = Path(audiocore.__file__).parent
    assert (package / "py.typed").is_file()
    for pyx in (package / "_ext").glob("*.pyx"):
        assert pyx.with_suffix(".pyi").is_file(), f"{pyx.name} has no .pyi stub"


def test_mypy_passes_on_the_package() -> None:
    result = _run("-m", "mypy", "src/audiocore")
    assert result.returncode == 0, result.stdout + result.stderr


def test_stubs_match_the_compiled_modules() -> None:
    result = _run(
        "-m", "mypy.stubtest", "audiocore", "--ignore-missing-stub",
        "--allowlist", str(ROOT / "tests" / "stubtest-allowlist.txt"),
        # the [tool.mypy] overrides: the benchmark peers (soxr, opuslib, ...) have no stubs
        "--mypy-config-file", str(ROOT / "pyproject.toml"),
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_build_without_libopus_stops_with_one_clear_line(tmp_path: Path) -> None:
    env = dict(os.environ, PKG_CONFIG_LIBDIR=str(tmp_path), PKG_CONFIG_PATH=str(tmp_path))
    result = _run("setup.py", "--name", env=env)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last == (
        "audiocore: libopus was not found by pkg-config; "
        "install it with: apt-get install pkg-config libopus-dev"
    )
    assert shutil.which("pkg-config")


def test_installed_package_carries_its_data_and_stubs(tmp_path: Path) -> None:
    """What a wheel installs besides the code: the demo's speech and its provenance note, the
    realtime peer's prompt, the benchmarks and their recordings, py.typed and the stubs (an
    editable install reads them from src/ and would not notice)."""
    result = _run("setup.py", "-q", "build_py", "--build-lib", str(tmp_path))
    assert result.returncode == 0, result.stderr
    package = tmp_path / "audiocore"
    for name in ("data/speech-16k.wav", "data/README.md", "gateway/peers/data/prompt.opus", "py.typed",
                 "_ext/resample.pyi", "_ext/opus.pyi", "bench/harness.py", "bench/usual_bridge.py",
                 "bench/data/speech-8k.wav", "bench/data/speech-24k.wav", "bench/data/speech-48k.wav",
                 "bench/data/speech-20ms.opus"):
        assert (package / name).is_file(), name


def test_import_leaves_numpy_until_resampling_needs_it() -> None:
    """Protocol-only users and the CLI should not pay for numpy (about 0.1-0.3 s) on import."""
    code = ("import sys, audiocore; a = 'numpy' in sys.modules; "
            "audiocore.resample(bytes(640), 16000, 24000); print(a, 'numpy' in sys.modules)")
    result = _run("-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True"]
