"""RingBuffer write + read of one 640-byte frame, beside a bytearray FIFO."""

from __future__ import annotations

import audiocore
from audiocore.bench._frames import frame
from audiocore.bench.harness import Case, Impl


class BytearrayFifo:
    """The usual pure-Python FIFO: append, copy the head out, delete it."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def write_read(self, data: bytes) -> bytes:
        buf = self.buf
        buf += data
        out = bytes(buf[: len(data)])
        del buf[: len(data)]
        return out


def cases() -> list[Case]:
    pcm = frame(16000)
    ring = audiocore.RingBuffer(64 * 1024)
    ring.write(bytes(1000))  # keep the ring wrapping around during the run

    def ring_write_read(data: bytes) -> bytes:
        ring.write(data)
        return ring.read(len(data))

    fifo = BytearrayFifo()
    fifo.buf += bytes(1000)

    def check() -> None:
        a, b = audiocore.RingBuffer(4096), BytearrayFifo()
        for i in range(20):
            chunk = bytes([i]) * 640
            a.write(chunk)
            assert a.read(640) == b.write_read(chunk) == chunk

    return [
        Case(
            "ring", "RingBuffer write+read 640 B",
            Impl("audiocore", ring_write_read, (pcm,)),
            [Impl("bytearray FIFO", fifo.write_read, (pcm,))],
            targets={"bytearray FIFO": 3.0},
            check=check,
            note="both sides run through a Python function doing write then read",
        )
    ]
