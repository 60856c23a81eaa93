"""Shared by the attack tests: memory of a server process (from /proc), event-loop lateness,
a bridge in its own process, raw WebSocket clients (handshakes and frames written by hand,
so an attacker can do what a well-behaved library would not), and a legitimate call.

Bounds in these tests are stated from the server's limits (bytes it may hold per
connection) plus a fixed allowance for the interpreter's own noise, never from a speed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MIB = 1 << 20


# ---------------------------------------------------------------- memory


def status_kb(pid: int, key: str) -> int:
    """A ``/proc/PID/status`` figure in kB (VmRSS: resident now; VmHWM: the peak)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def reset_peak(pid: int) -> None:
    """Reset the process's VmHWM to its current RSS (Linux clear_refs 5), so that the peak
    read later is the peak of what happened since."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


# ---------------------------------------------------------------- scheduling


class LagProbe:
    """The largest lateness (s) of a timer due every ``period`` s on the running loop: the
    scheduling delay of this process, measured while the test runs."""

    def __init__(self, period: float = 0.005) -> None:
        self.period = period
        self.max_late = 0.0
        self.task: asyncio.Task[None] | None = None

    def start(self) -> LagProbe:
        self.task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.period
            await asyncio.sleep(self.period)
            self.max_late = max(self.max_late, loop.time() - due)

    def take(self) -> float:
        late, self.max_late = self.max_late, 0.0
        return late

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()


# ---------------------------------------------------------------- the bridge process


class BridgeProc:
    """``tests/attacks/bridge_proc.py`` with ``spec`` (see there): ``url``, ``pid``,
    :meth:`stats`, the log (stderr, in a file: a pipe nobody reads would block the bridge).
    A context manager: at exit the bridge is told to quit, then killed if it does not."""

    def __init__(self, spec: dict[str, Any], timeout: float = 60) -> None:
        self.log_file = tempfile.NamedTemporaryFile("w+b", suffix=".log", delete=False)
        self.closed_log: str | None = None
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONPATH=str(HERE))
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "bridge_proc.py"), json.dumps(spec)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log_file, text=True, env=env)
        self.pid = self.proc.pid
        assert self.proc.stdout is not None
        import select
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line.startswith("listening on "):
            log = self.close()
            raise RuntimeError(f"the bridge did not start: {line!r} {log[-3000:]}")
        self.url = line.split()[-1]
        self.port = int(self.url.split(":")[2].split("/")[0])

    def stats(self) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        out: dict[str, Any] = json.loads(self.proc.stdout.readline())
        return out

    async def astats(self) -> dict[str, Any]:
        return await asyncio.to_thread(self.stats)

    def rss(self) -> int:
        return status_kb(self.pid, "VmRSS") * 1024

    def peak(self) -> int:
        return status_kb(self.pid, "VmHWM") * 1024

    def reset_peak(self) -> None:
        reset_peak(self.pid)

    def log(self) -> str:
        self.log_file.flush()
        return Path(self.log_file.name).read_bytes().decode("utf-8", "replace")

    def log_size(self) -> int:
        return os.path.getsize(self.log_file.name)

    def close(self) -> str:
        """Quit (kill after 15 s) and return the log (again on a second call)."""
        if self.closed_log is not None:
            return self.closed_log
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(15)
            except (OSError, subprocess.TimeoutExpired, ValueError):
                self.proc.kill()
                self.proc.wait(15)
        text = self.log()
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None:
                f.close()
        self.log_file.close()
        os.unlink(self.log_file.name)
        self.closed_log = text
        return text

    def __enter__(self) -> BridgeProc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------- raw WebSocket clients


def handshake(port: int, path: str = "/acs", headers: dict[str, str] | None = None,
              source: str = "127.0.0.1", timeout: float = 10.0,
              rcvbuf: int | None = None) -> tuple[int, dict[str, str], socket.socket]:
    """A blocking WebSocket upgrade to 127.0.0.1:``port`` from address ``source``: (status,
    response headers (lower-case names), the socket). ``rcvbuf``: SO_RCVBUF set before
    connecting (a small one makes a client that never reads fill the server's buffers
    sooner)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket",
             "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    status = int(head[0].split()[1]) if head and len(head[0].split()) > 1 else 0
    hdrs = {}
    for line in head[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, sock


def frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """A client frame (masked, RFC 6455 section 5.2). Opcodes: 0 continuation, 1 text,
    2 binary, 8 close, 9 ping, 10 pong."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 1 << 16:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    mask = os.urandom(4)
    if payload:
        m = (mask * (n // 4 + 1))[:n]
        payload = (int.from_bytes(payload, "big") ^ int.from_bytes(m, "big")).to_bytes(n, "big")
    return head + mask + payload


def read_close(sock: socket.socket, timeout: float = 10.0) -> int | None:
    """Read until the server's CLOSE frame or the end of the connection: the close code
    (None if the connection ended without one)."""
    sock.settimeout(timeout)
    buf = b""
    try:
        while True:
            while len(buf) >= 2:
                n = buf[1] & 0x7F
                off = 2
                if n == 126:
                    if len(buf) < 4:
                        break
                    n, off = struct.unpack("!H", buf[2:4])[0], 4
                elif n == 127:
                    if len(buf) < 10:
                        break
                    n, off = struct.unpack("!Q", buf[2:10])[0], 10
                if len(buf) < off + n:
                    break
                if buf[0] & 0x0F == 8:
                    body = buf[off:off + n]
                    return struct.unpack("!H", body[:2])[0] if len(body) >= 2 else None
                buf = buf[off + n:]
            chunk = sock.recv(65536)
            if not chunk:
                return None
            buf += chunk
    except (ConnectionResetError, socket.timeout, OSError):
        return None
