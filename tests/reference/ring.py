"""A byte FIFO model with RingBuffer's documented semantics, on a plain bytearray."""

from __future__ import annotations


class Full(Exception):
    pass


class ModelRing:
    def __init__(self, capacity: int, overflow: str = "error") -> None:
        self.capacity = capacity
        self.overflow = overflow
        self.data = bytearray()
        self.dropped = 0

    @property
    def free(self) -> int:
        return self.capacity - len(self.data)

    def write(self, chunk: bytes) -> int:
        if len(chunk) > self.free:
            if self.overflow == "error":
                raise Full
            self.data += chunk
            excess = len(self.data) - self.capacity
            self.dropped += excess
            del self.data[:excess]
            return min(len(chunk), self.capacity)
        self.data += chunk
        return len(chunk)

    def read(self, n: int = -1) -> bytes:
        out = self.peek(n)
        del self.data[: len(out)]
        return out

    def peek(self, n: int = -1) -> bytes:
        return bytes(self.data if n < 0 else self.data[:n])

    def skip(self, n: int) -> int:
        k = min(n, len(self.data))
        del self.data[:k]
        return k

    def clear(self) -> int:
        k = len(self.data)
        self.data.clear()
        return k
