"""Helpers for the gateway tests: running coroutines, TLS certificates made with
``cryptography``, and independent readers of Ogg files (opusinfo, PyAV)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import hashlib
import hmac
import ipaddress
import json
import select
import subprocess
import threading
from collections.abc import Callable, Coroutine, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import av
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T], timeout: float = 90) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


async def settle(cond: Callable[[], object], timeout: float = 3.0) -> None:
    """Wait until cond() holds (the other side of a socket catching up); fails after
    ``timeout`` seconds. Use it instead of a fixed sleep: shared machines are slow at times."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        assert loop.time() < end, "timed out waiting for the peers"
        await asyncio.sleep(0.01)


@contextlib.contextmanager
def server_process(args: list[str], env: dict[str, str] | None = None,
                   timeout: float = 60) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Start a server, yield it with the first line it prints (read within ``timeout``
    seconds); at exit a server still running is killed and reaped."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        assert ready, f"no line from the server within {timeout} s"
        yield proc, proc.stdout.readline()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def opusinfo(path: Path) -> str:
    """opusinfo's report; fails the test on a non-zero exit or any warning/error line."""
    result = subprocess.run(["opusinfo", str(path)], capture_output=True, text=True, timeout=120)
    text = result.stdout + result.stderr
    assert result.returncode == 0, text
    bad = [line for line in text.splitlines() if "warning" in line.lower() or "error" in line.lower()]
    assert not bad, text
    return text


def pyav_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(audio=0) if p.size]


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_pki(directory: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1/localhost and two client certificates: one
    signed by the CA, one self-signed (untrusted). Returns the PEM paths."""
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)

    def key() -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    def write(name: str, cert: x509.Certificate, k: ec.EllipticCurvePrivateKey) -> None:
        (directory / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (directory / f"{name}.key").write_bytes(k.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))

    ca_key = key()
    ca = (x509.CertificateBuilder().subject_name(_name("audiocore test CA")).issuer_name(_name("audiocore test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    write("ca", ca, ca_key)

    def leaf(name: str, usage: x509.ObjectIdentifier, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None) -> None:
        k = key()
        builder = (x509.CertificateBuilder().subject_name(_name(name))
                   .public_key(k.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(start).not_valid_after(end)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
        if usage == ExtendedKeyUsageOID.SERVER_AUTH:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        if issuer is None:
            cert = builder.issuer_name(_name(name)).sign(k, hashes.SHA256())
        else:
            builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                issuer[1].public_key()), critical=False)
            cert = builder.issuer_name(issuer[0].subject).sign(issuer[1], hashes.SHA256())
        write(name, cert, k)

    leaf("server", ExtendedKeyUsageOID.SERVER_AUTH, (ca, ca_key))
    leaf("client", ExtendedKeyUsageOID.CLIENT_AUTH, (ca, ca_key))
    leaf("stranger", ExtendedKeyUsageOID.CLIENT_AUTH, None)
    return {p.stem if p.suffix == ".pem" else p.stem + "_key": p for p in directory.iterdir()}


def b64url(data: bytes) -> str:
    """Base64url without padding (RFC 7515's encoding of JWT parts)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_token(header: dict[str, Any], claims: dict[str, Any], hs256_key: bytes | None = None) -> str:
    """A JWT built by hand: unsigned (``alg: none``) or HS256 with ``hs256_key`` as the
    secret; PyJWT refuses to make either with an RSA key, as it should."""
    head = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    sig = b"" if hs256_key is None else hmac.new(hs256_key, head.encode(), hashlib.sha256).digest()
    return head + "." + b64url(sig)


class KeyServer:
    """Serves ``docs[path]`` as JSON over HTTP on 127.0.0.1 (a JWKS, an OpenID configuration)
    from a thread, and records the paths asked for."""

    def __init__(self) -> None:
        self.docs: dict[str, Any] = {}
        self.paths: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                outer.paths.append(self.path)
                doc = outer.docs.get(self.path)
                body = json.dumps(doc).encode() if doc is not None else b"{}"
                self.send_response(200 if doc is not None else 404)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def hits(self) -> int:
        return len(self.paths)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
