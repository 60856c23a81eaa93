"""The peer of JitterQueue in the benchmarks: a jitter buffer of the simplest sound design,
written in plain Python the way aiortc's JitterBuffer is built (design facts only, our code):
a power-of-two ring of slots indexed by the 16-bit RTP sequence number, an origin (the next
sequence number to play), a fixed prefetch before playout starts. ``pop`` returns the frame
at the origin, or silence when it is missing, and moves on: it never stalls.

It does less than JitterQueue: no adaptive target, no concealment (silence instead), no
latency control, no byte-stream mode, no barge-in tracking.
"""

from __future__ import annotations


class SeqRingQueue:
    def __init__(self, frame_bytes: int, capacity: int = 64, prefetch: int = 3) -> None:
        assert capacity & (capacity - 1) == 0, "capacity must be a power of two"
        self.slots: list[bytes | None] = [None] * capacity
        self.mask = capacity - 1
        self.origin: int | None = None
        self.held = 0
        self.prefetch = prefetch
        self.started = False
        self.silence = bytes(frame_bytes)
        self.late = self.duplicate = self.dropped = 0

    def push(self, payload: bytes, seq: int) -> bool:
        if self.origin is None:
            self.origin = seq
        delta = (seq - self.origin) & 0xFFFF
        if delta >= 0x8000:              # behind the playout point
            self.late += 1
            return False
        if delta > self.mask:            # beyond the ring: drop the oldest to make room
            for _ in range(delta - self.mask):
                slot = self.origin & self.mask
                if self.slots[slot] is not None:
                    self.slots[slot] = None
                    self.held -= 1
                    self.dropped += 1
                self.origin = (self.origin + 1) & 0xFFFF
        slot = seq & self.mask
        if self.slots[slot] is not None:
            self.duplicate += 1
            return False
        self.slots[slot] = payload
        self.held += 1
        return True

    def pop(self) -> bytes:
        if not self.started:
            if self.held < self.prefetch:
                return self.silence
            self.started = True
        origin = self.origin
        if origin is None:
            return self.silence
        slot = origin & self.mask
        frame = self.slots[slot]
        self.origin = (origin + 1) & 0xFFFF
        if frame is None:
            return self.silence
        self.slots[slot] = None
        self.held -= 1
        return frame


class ByteFifoPlayout:
    """The usual pure-Python playout of a byte stream (realtime AI deltas): a bytearray
    FIFO cut into exact frames, silence when less than a frame is held."""

    def __init__(self, frame_bytes: int) -> None:
        self.buf = bytearray()
        self.fb = frame_bytes
        self.silence = bytes(frame_bytes)

    def push(self, payload: bytes) -> bool:
        self.buf += payload
        return True

    def pop(self) -> bytes:
        if len(self.buf) < self.fb:
            return self.silence
        out = bytes(self.buf[: self.fb])
        del self.buf[: self.fb]
        return out
