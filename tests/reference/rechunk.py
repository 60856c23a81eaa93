"""Plain rechunking: the stream so far, cut into whole frames; the rest held."""

from __future__ import annotations


class RefRechunker:
    def __init__(self, frame_bytes: int) -> None:
        self.frame = frame_bytes
        self.held = b""

    def push(self, data: bytes) -> list[bytes]:
        stream = self.held + bytes(data)
        whole = len(stream) - len(stream) % self.frame
        self.held = stream[whole:]
        return [stream[i : i + self.frame] for i in range(0, whole, self.frame)]

    def flush(self, pad: bool = True) -> list[bytes]:
        if not self.held:
            return []
        out = self.held + (b"\0" * (self.frame - len(self.held)) if pad else b"")
        self.held = b""
        return [out]
