"""base64 per 20 ms frame of 16 kHz PCM, beside pybase64 and the standard library."""

from __future__ import annotations

import base64

import pybase64

import audiocore
from audiocore.bench._frames import frame
from audiocore.bench.harness import Case, Impl


def cases() -> list[Case]:
    pcm = frame(16000)  # 640 bytes
    text = base64.b64encode(pcm)

    def check() -> None:
        assert audiocore.b64encode(pcm) == pybase64.b64encode(pcm) == base64.b64encode(pcm)
        assert audiocore.b64decode(text) == pybase64.b64decode(text, validate=True) == pcm

    return [
        Case(
            "base64", "b64encode 640 B (20 ms @16 kHz)",
            Impl("audiocore", audiocore.b64encode, (pcm,)),
            [Impl("pybase64", pybase64.b64encode, (pcm,)),
             Impl("base64 (stdlib)", base64.b64encode, (pcm,))],
            targets={"pybase64": 1 / 1.3, "base64 (stdlib)": 3.0},
            check=check,
        ),
        Case(
            "base64", "b64decode 856 chars (20 ms @16 kHz)",
            Impl("audiocore", audiocore.b64decode, (text,)),
            [Impl("pybase64 validate=True", lambda t: pybase64.b64decode(t, validate=True), (text,)),
             Impl("base64 (stdlib) validate", lambda t: base64.b64decode(t, validate=True), (text,))],
            targets={"pybase64 validate=True": 1 / 1.3, "base64 (stdlib) validate": 3.0},
            check=check,
            note="peers called through a lambda to pass validate=True; ours takes no options",
        ),
    ]
