"""Configuration of the Sora gateway: a file of ``key = value`` lines with the reference
gateway's key names (Suzu's ``config.ini``), overridden by command-line flags.

File syntax (what Suzu's INI files use): one ``key = value`` per line; ``#`` or ``;`` starts a
comment line; keys are case-insensitive; a value may be quoted with ``"`` or ``'``; booleans
are ``true/false``, ``yes/no``, ``on/off``, ``1/0``, ``t/f`` (any case); ``[section]`` lines
only group keys (the keys read the same in any section). Keys of the reference gateway that
this gateway does not implement (its logging, Prometheus exporter, AWS/GCP settings) are
accepted and reported in :attr:`SoraConfig.ignored`; any other key is an error, so a typo
never passes silently. Every error is a :class:`ConfigError` naming the line and key.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audiocore._ext.errors import AudioCoreError
from audiocore.protocols.sora import MAX_LENGTH

__all__ = ["ConfigError", "SoraConfig", "load_config", "parse_config"]


class ConfigError(AudioCoreError, ValueError):
    """A bad configuration file or value. ``line`` is the 1-based line (None for a flag or a
    cross-key check), ``key`` the key concerned."""

    def __init__(self, message: str, key: str | None = None, line: int | None = None) -> None:
        where = f"line {line}: " if line is not None else ""
        super().__init__(where + message)
        self.key = key
        self.line = line


@dataclass(frozen=True, slots=True)
class SoraConfig:
    """Settings of :class:`audiocore.gateway.sora.SoraServer`. Field names are the file's keys."""

    listen_addr: str = "127.0.0.1"
    #: TCP port; 0 picks a free one (see ``SoraServer.port``).
    listen_port: int = 5890
    #: h2 over TLS (ALPN ``h2``) instead of cleartext h2c.
    https: bool = False
    tls_fullchain_file: str = ""
    tls_privkey_file: str = ""
    #: A PEM file or a directory of PEM files: client certificates are then required and
    #: checked against these CAs.
    tls_verify_cacert_path: str = ""
    #: Header mode (20-byte header per packet); raw mode (a read is a packet) when false.
    audio_streaming_header: bool = False
    #: Insert the 3-byte Opus silence when no packet arrives for this long (ms; 0: 10000).
    time_to_wait_for_opus_packet_ms: int = 10000
    disable_silent_packet: bool = False
    #: Recognizer behind ``POST /speech``: ``ogg``, ``test``, ``dump``, ``http`` or one
    #: registered with the server.
    service: str = "test"
    #: Where the ``ogg`` service (and ``enable_ogg_file_output``) writes
    #: ``{session}-{connection}.ogg``.
    ogg_dir: str = "."
    #: Also write the Ogg file for services other than ``ogg``.
    enable_ogg_file_output: bool = False
    #: The ``dump`` service appends one JSON line per packet here.
    dump_file: str = "./dump.jsonl"
    #: OpusHead input rate and channel count of the Ogg stream (Sora sends 48 kHz Opus).
    audio_sample_rate: int = 48000
    audio_channel_count: int = 1
    #: The largest Opus packet accepted (bytes; header mode's limit is 0xFFFFFF).
    max_payload_length: int = 65536
    http2_max_concurrent_streams: int = 250
    #: SETTINGS_MAX_FRAME_SIZE we announce (16384-16777215).
    http2_max_read_frame_size: int = 16384
    #: Close a connection with no open stream after this many seconds (0: never).
    http2_idle_timeout: int = 120
    #: HTTP basic authentication (RFC 7617) of every request but ``GET /.ok``: both set, or
    #: ``skip_basic_auth = true`` said explicitly; with neither the server refuses to start.
    skip_basic_auth: bool = False
    basic_auth_username: str = ""
    basic_auth_password: str = field(default="", repr=False)  # a secret: never in a repr or log
    #: Serve ``POST /test`` and ``/dump`` whatever the service (otherwise only the path of the
    #: configured service is served; the reference serves both always).
    enable_debug_paths: bool = False
    #: Connections open at once; more are accepted and closed at once (counted).
    max_connections: int = 256
    #: Milliseconds a connection has for its TLS handshake and then its HTTP/2 preface.
    handshake_timeout_ms: int = 10000
    #: Reset a stream after this many ms with no DATA from its client and no progress of its
    #: recognizer or results (0: never; the silence filler does not count as progress).
    stream_idle_timeout_ms: int = 300_000
    #: Flood budgets per connection per window of ``http2_flood_window_ms``; past one, GOAWAY
    #: ENHANCE_YOUR_CALM and the connection closes. Streams opened (HEADERS of a new stream):
    http2_flood_window_ms: int = 10_000
    http2_max_new_streams: int = 1000
    #: RST_STREAM frames received.
    http2_max_resets: int = 100
    #: PING, SETTINGS, PRIORITY and unknown-type frames received.
    http2_max_control_frames: int = 100
    #: DATA frames with no payload and no END_STREAM.
    http2_max_empty_frames: int = 100
    #: Bytes queued for a connection's socket past which a peer that does not read is cut off.
    max_write_buffer_bytes: int = 1 << 20
    #: Packets, and bytes (payload + 20 per packet), waiting for a stream's recognizer past
    #: which its DATA is no longer acknowledged (the client's window closes).
    stream_max_queued_packets: int = 256
    stream_max_queued_bytes: int = 1 << 16
    #: Milliseconds ``close()`` lets open streams finish before cutting them.
    shutdown_timeout_ms: int = 5000
    #: Milliseconds a stream cut at shutdown has to finish (its audio ended: the Ogg EOS page,
    #: the recognizer's last results, the end of the response) before it is reset (CANCEL);
    #: at least 100 ms, so the gateway's own Ogg writing always completes.
    shutdown_finish_timeout_ms: int = 2000
    #: The ``http`` example recognizer's upstream URL (``http://`` h2c or ``https://``).
    recognizer_url: str = ""
    #: Keys of the reference gateway found in the file and not implemented here.
    ignored: tuple[str, ...] = field(default=(), compare=False)

    def replace(self, **changes: Any) -> SoraConfig:
        """A copy with ``changes`` applied and checked."""
        return dataclasses.replace(self, **changes).checked()

    def checked(self) -> SoraConfig:
        """Self, after the checks across keys; raises :class:`ConfigError`."""
        try:
            ipaddress.ip_address(self.listen_addr)
        except ValueError:
            raise ConfigError(f"listen_addr: {self.listen_addr!r} is not an IP address", "listen_addr") from None
        _bounded("listen_port", self.listen_port, 0, 65535)
        _bounded("time_to_wait_for_opus_packet_ms", self.time_to_wait_for_opus_packet_ms, 0, 3_600_000)
        _bounded("audio_sample_rate", self.audio_sample_rate, 1, 384000)
        _bounded("audio_channel_count", self.audio_channel_count, 1, 2)
        _bounded("max_payload_length", self.max_payload_length, 1, MAX_LENGTH)
        _bounded("http2_max_concurrent_streams", self.http2_max_concurrent_streams, 1, (1 << 31) - 1)
        _bounded("http2_max_read_frame_size", self.http2_max_read_frame_size, 16384, (1 << 24) - 1)
        _bounded("http2_idle_timeout", self.http2_idle_timeout, 0, 1 << 31)
        _bounded("max_connections", self.max_connections, 1, 1 << 20)
        _bounded("handshake_timeout_ms", self.handshake_timeout_ms, 1, 3_600_000)
        _bounded("stream_idle_timeout_ms", self.stream_idle_timeout_ms, 0, 1 << 31)
        _bounded("http2_flood_window_ms", self.http2_flood_window_ms, 1, 3_600_000)
        for key in ("http2_max_new_streams", "http2_max_resets", "http2_max_control_frames",
                    "http2_max_empty_frames"):
            _bounded(key, getattr(self, key), 1, 1 << 31)
        _bounded("max_write_buffer_bytes", self.max_write_buffer_bytes, 1 << 16, 1 << 31)
        _bounded("stream_max_queued_packets", self.stream_max_queued_packets, 4, 1 << 20)
        _bounded("stream_max_queued_bytes", self.stream_max_queued_bytes, 1024, 1 << 30)
        if self.skip_basic_auth and (self.basic_auth_username or self.basic_auth_password):
            raise ConfigError("skip_basic_auth = true with basic_auth_username/password set: "
                              "choose one", "skip_basic_auth")
        if bool(self.basic_auth_username) != bool(self.basic_auth_password):
            raise ConfigError("basic_auth_username and basic_auth_password go together",
                              "basic_auth_password" if self.basic_auth_username else "basic_auth_username")
        if ":" in self.basic_auth_username:
            raise ConfigError("basic_auth_username: may not contain ':' (RFC 7617)", "basic_auth_username")
        _bounded("shutdown_timeout_ms", self.shutdown_timeout_ms, 0, 3_600_000)
        _bounded("shutdown_finish_timeout_ms", self.shutdown_finish_timeout_ms, 100, 3_600_000)
        if not self.service:
            raise ConfigError("service: empty", "service")
        if self.https and not (self.tls_fullchain_file and self.tls_privkey_file):
            raise ConfigError("https needs tls_fullchain_file and tls_privkey_file", "https")
        if self.tls_verify_cacert_path and not self.https:
            raise ConfigError("tls_verify_cacert_path needs https = true", "tls_verify_cacert_path")
        return self

    def require_auth_decision(self) -> SoraConfig:
        """Self if callers are authenticated or ``skip_basic_auth`` was said explicitly; a
        :class:`ConfigError` otherwise (the reference accepts anyone then: we refuse to start)."""
        if not self.skip_basic_auth and not self.basic_auth_username:
            raise ConfigError("no caller authentication: set basic_auth_username and basic_auth_password, "
                              "or skip_basic_auth = true (--skip-basic-auth) to accept anyone", "skip_basic_auth")
        return self

    @property
    def wait_ms(self) -> int:
        """The silence filler's timeout in ms (the reference reads 0 as 10000)."""
        return self.time_to_wait_for_opus_packet_ms or 10000


def _bounded(key: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{key}: {value!r} is not an integer in [{low}, {high}]", key)


_FIELDS = {f.name: f for f in dataclasses.fields(SoraConfig) if f.name != "ignored"}
_TYPES: dict[str, type] = {name: type(f.default) for name, f in _FIELDS.items()}  # bool, int or str

#: Keys of the reference gateway (Suzu) this gateway accepts and ignores: its logging,
#: Prometheus exporter, retry and cloud-service settings. None of them weakens security when
#: ignored (audited: no exporter port is opened, logs go to stderr, no cloud credentials are
#: read); a key that would must be implemented or refused, never listed here.
REFERENCE_ONLY_KEYS = frozenset(
    """debug exporter_https exporter_listen_addr exporter_listen_port log_dir log_name log_stdout
    log_rotate_max_size log_rotate_max_backups log_rotate_max_age log_rotate_compress
    log_message_key_name log_timestamp_key_name debug_console_log debug_console_log_json
    max_retry retry_interval_ms
    retry_targets final_result_only minimum_confidence_score minimum_transcribed_time
    aws_region aws_enable_partial_results_stabilization aws_partial_results_stability
    aws_enable_channel_identification aws_credential_file aws_profile aws_result_channel_id
    aws_result_is_partial aws_result_id aws_http_disable_keep_alives
    aws_http_idle_conn_timeout_sec aws_http_max_idle_conns aws_http_max_idle_conns_per_host
    aws_http_max_conns_per_host aws_http_response_header_timeout_ms
    aws_http_expect_continue_timeout_ms aws_http_tls_handshake_timeout_ms gcp_single_utterance
    gcp_interim_results gcp_credential_file gcp_enable_separate_recognition_per_channel
    gcp_alternative_language_codes gcp_max_alternatives gcp_profanity_filter
    gcp_enable_word_time_offsets gcp_enable_word_confidence gcp_enable_automatic_punctuation
    gcp_enable_spoken_punctuation gcp_enable_spoken_emojis gcp_model gcp_use_enhanced
    gcp_result_is_final gcp_result_stability""".split()
)

_TRUE = {"1", "t", "true", "y", "yes", "on"}
_FALSE = {"0", "f", "false", "n", "no", "off"}
#: Largest configuration file read (bytes): a config is a few KiB.
MAX_FILE_BYTES = 1 << 20


def convert(key: str, text: str, line: int | None = None) -> bool | int | str:
    """``text`` as the type of ``key`` (bool, int or str); raises :class:`ConfigError`."""
    kind = _TYPES.get(key)
    if kind is None:
        raise ConfigError(f"unknown key {key!r}", key, line)
    if kind is bool:
        low = text.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ConfigError(f"{key}: {text!r} is not a boolean", key, line)
    if kind is int:
        body = text[1:] if text[:1] in "+-" else text
        if not body.isascii() or not body.isdigit() or len(body) > 12:
            raise ConfigError(f"{key}: {text!r} is not an integer", key, line)
        return int(text)
    return text


def parse_config(text: str) -> dict[str, bool | int | str]:
    """The settings of a configuration file's text, typed, keys lower-cased; reference-only
    keys are returned under ``"ignored"`` as a tuple of names. Raises :class:`ConfigError`."""
    values: dict[str, Any] = {}
    ignored: list[str] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(text.split("\n"), 1):  # only \n ends a line (not \x1e, \u2028...)
        stripped = raw.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if stripped[0] == "[":
            if not stripped.endswith("]") or len(stripped) < 3:
                raise ConfigError(f"malformed section header {stripped[:40]!r}", None, number)
            continue
        key, sep, value = stripped.partition("=")
        key = key.strip().lower()
        if not sep or not key:
            raise ConfigError(f"expected 'key = value', got {stripped[:40]!r}", key if sep and key else None, number)
        if key in seen:
            raise ConfigError(f"{key!r} given twice (first on line {seen[key]})", key, number)
        seen[key] = number
        value = _unquote(value.strip(), key, number)
        if key in REFERENCE_ONLY_KEYS:
            ignored.append(key)
            continue
        values[key] = convert(key, value, number)
    values["ignored"] = tuple(ignored)
    return values


def _unquote(value: str, key: str, line: int) -> str:
    if value[:1] in ('"', "'"):
        quote = value[0]
        end = value.find(quote, 1)
        if end < 0:
            raise ConfigError(f"{key}: unterminated quote", key, line)
        rest = value[end + 1 :].strip()
        if rest and rest[0] not in "#;":
            raise ConfigError(f"{key}: text after the closing quote", key, line)
        return value[1:end]
    for mark in (" #", " ;", "\t#", "\t;"):  # an inline comment after whitespace
        cut = value.find(mark)
        if cut >= 0:
            value = value[:cut].rstrip()
    return value


def from_mapping(values: Mapping[str, Any], base: SoraConfig | None = None) -> SoraConfig:
    """A config from typed values (as :func:`parse_config` returns), over ``base``."""
    unknown = set(values) - set(_FIELDS) - {"ignored"}
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(f"unknown key {key!r}", key)
    return (base or SoraConfig()).replace(**values)


def load_config(path: str | Path, base: SoraConfig | None = None) -> SoraConfig:
    """Read and check a configuration file (UTF-8, at most 1 MiB)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}: not UTF-8", None, line) from None
    return from_mapping(parse_config(text), base)
