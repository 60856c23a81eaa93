"""A second peer of JitterQueue: aiortc's JitterBuffer design, re-written from its design facts
(our code), with the tick-driven playout a gateway adds around it.

The design: RTP packets (objects with sequence_number, timestamp, payload) sit in a
power-of-two ring indexed by the 16-bit sequence number. ``add`` works out the packet's
distance from the origin with 16-bit wrap, restarts on a misorder of 100 or more, evicts the
oldest slots when the packet lies beyond the ring, stores it, then scans forward from the
origin gathering packets that share a timestamp into frames: once ``prefetch`` frames are
complete, the first is joined, removed from the ring and returned. aiortc hands that frame to
a decoder at once; a gateway that must play one frame per 20 ms tick puts it on a deque and
pops it on the tick (silence when the deque is empty).

Like the leaner SeqRingQueue, it has no adaptive target, no concealment, no latency control.
"""

from __future__ import annotations

from collections import deque

MAX_MISORDER = 100


class RtpLike:
    """What an RTP parser hands the jitter buffer (built outside the timed loop)."""

    __slots__ = ("sequence_number", "timestamp", "payload")

    def __init__(self, sequence_number: int, timestamp: int, payload: bytes) -> None:
        self.sequence_number = sequence_number
        self.timestamp = timestamp
        self.payload = payload


class Frame:
    __slots__ = ("data", "timestamp")

    def __init__(self, data: bytes, timestamp: int) -> None:
        self.data = data
        self.timestamp = timestamp


def _u16(value: int) -> int:
    return value & 0xFFFF


class AiortcDesignQueue:
    def __init__(self, frame_bytes: int, capacity: int = 16, prefetch: int = 4,
                 max_frames: int = 50) -> None:
        assert capacity & (capacity - 1) == 0, "capacity must be a power of two"
        self.capacity = capacity
        self.prefetch = prefetch
        self.slots: list[RtpLike | None] = [None] * capacity
        self.origin: int | None = None
        self.ready: deque[Frame] = deque(maxlen=max_frames)
        self.silence = bytes(frame_bytes)

    def push(self, packet: RtpLike) -> bool:
        seq = packet.sequence_number
        if self.origin is None:
            self.origin = seq
            delta = misorder = 0
        else:
            delta = _u16(seq - self.origin)
            misorder = _u16(self.origin - seq)
        if misorder < delta:  # the packet is behind the origin
            if misorder < MAX_MISORDER:
                return False
            self._drop(self.capacity)  # far out of order: start again from this packet
            self.origin = seq
            delta = 0
        if delta >= self.capacity:
            self._evict(delta - self.capacity + 1)
        self.slots[seq % self.capacity] = packet
        frame = self._take_frame()
        if frame is not None:
            self.ready.append(frame)
        return True

    def pop(self) -> bytes:
        return self.ready.popleft().data if self.ready else self.silence

    def _take_frame(self) -> Frame | None:
        assert self.origin is not None
        gathered: list[RtpLike] = []
        first: Frame | None = None
        first_len = 0
        complete = 0
        timestamp = None
        for count in range(self.capacity):
            packet = self.slots[(self.origin + count) % self.capacity]
            if packet is None:
                break
            if timestamp is None:
                timestamp = packet.timestamp
            elif packet.timestamp != timestamp:
                if first is None:
                    first = Frame(b"".join(p.payload for p in gathered), timestamp)
                    first_len = count
                complete += 1
                if complete >= self.prefetch:
                    self._drop(first_len)
                    return first
                gathered = []
                timestamp = packet.timestamp
            gathered.append(packet)
        return None

    def _drop(self, count: int) -> None:
        assert self.origin is not None
        for _ in range(count):
            self.slots[self.origin % self.capacity] = None
            self.origin = _u16(self.origin + 1)

    def _evict(self, count: int) -> None:
        """Drop at least ``count`` slots from the origin without splitting a frame."""
        assert self.origin is not None
        timestamp = None
        for i in range(self.capacity):
            pos = self.origin % self.capacity
            packet = self.slots[pos]
            if packet is not None:
                if i >= count and packet.timestamp != timestamp:
                    return
                timestamp = packet.timestamp
            self.slots[pos] = None
            self.origin = _u16(self.origin + 1)
