"""G.711 per 20 ms frame at 8 kHz (160 samples), beside audioop."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import audiocore
from audiocore.bench._frames import frame
from audiocore.bench.harness import Case, Impl

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop


def cases() -> list[Case]:
    pcm = frame(8000)  # 320 bytes
    ulaw = audioop.lin2ulaw(pcm, 2)
    alaw = audioop.lin2alaw(pcm, 2)

    def check() -> None:
        assert audiocore.ulaw_encode(pcm) == ulaw and audiocore.alaw_encode(pcm) == alaw
        assert audiocore.ulaw_decode(ulaw) == audioop.ulaw2lin(ulaw, 2)
        assert audiocore.alaw_decode(alaw) == audioop.alaw2lin(alaw, 2)

    def case(op: str, ours: Callable[[bytes], bytes], peer: Callable[[bytes, int], bytes], arg: bytes) -> Case:
        return Case("g711", op, Impl("audiocore", ours, (arg,)),
                    [Impl("audioop", peer, (arg, 2))], targets={"audioop": 1.0}, check=check)

    return [
        case("ulaw_encode 160 samples (20 ms @8 kHz)", audiocore.ulaw_encode, audioop.lin2ulaw, pcm),
        case("ulaw_decode 160 codes", audiocore.ulaw_decode, audioop.ulaw2lin, ulaw),
        case("alaw_encode 160 samples (20 ms @8 kHz)", audiocore.alaw_encode, audioop.lin2alaw, pcm),
        case("alaw_decode 160 codes", audiocore.alaw_decode, audioop.alaw2lin, alaw),
    ]
