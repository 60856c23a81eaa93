"""The C-level API other kernels cimport (resample.pxd): a Cython module built here, against
the installed package, drives a Resampler through c_output_samples and c_process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import audiocore

ROOT = Path(__file__).resolve().parents[1]


CIMPORT_USER = '''
# cython: language_level=3
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from audiocore._ext.resample cimport Resampler

def push(Resampler r, bytes data):
    cdef Py_ssize_t frame = r.channels * (2 if r.dtype == "int16" else 4)
    cdef Py_ssize_t n = r.c_output_samples(len(data) // frame)
    out = PyBytes_FromStringAndSize(NULL, n * frame)
    written = r.c_process(<const unsigned char*>PyBytes_AS_STRING(data), len(data),
                          <unsigned char*>PyBytes_AS_STRING(out))
    assert written == n * frame
    return out
'''

BUILD = '''
import sys
from Cython.Build import cythonize
from setuptools import Extension, setup
root, csrc = sys.argv[1], sys.argv[2]
setup(ext_modules=cythonize([Extension("cimport_user", ["cimport_user.pyx"], include_dirs=[csrc])],
                            include_path=[root], quiet=True),
      script_args=["build_ext", "--inplace", "-q"])
'''


@pytest.mark.slow
def test_other_kernels_can_cimport_the_resampler(tmp_path: Path) -> None:
    src = ROOT / "src"
    (tmp_path / "cimport_user.pyx").write_text(CIMPORT_USER)
    (tmp_path / "build.py").write_text(BUILD)
    done = subprocess.run([sys.executable, "build.py", str(src),
                           str(src / "audiocore" / "_ext" / "csrc")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    sys.path.insert(0, str(tmp_path))
    try:
        import cimport_user  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(tmp_path))
    pcm = np.random.default_rng(15).integers(-3000, 3000, 2 * 999).astype("<i2").tobytes()
    a = audiocore.Resampler(16000, 24000, channels=2)
    b = audiocore.Resampler(16000, 24000, channels=2)
    assert b"".join(cimport_user.push(a, pcm[i : i + 400]) for i in range(0, len(pcm), 400)) == (
        b.process(pcm))
    with pytest.raises(ValueError, match="whole number of 4-byte frames"):
        cimport_user.push(a, b"\x00" * 6)
