"""The gateway's configuration file and flags, `audiocore serve sora`, and the example cloud
recognizer against a fake cloud served by hypercorn (an independent HTTP/2 server)."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import audiocore
from audiocore.gateway._h2 import PREFACE
from audiocore.gateway.config import REFERENCE_ONLY_KEYS, ConfigError, SoraConfig, load_config, parse_config
from audiocore.gateway.h2client import H2Client
from audiocore.gateway.peers.sora_client import basic_authorization, open_stream, packets_from_ogg, stream_opus
from audiocore.gateway.recognizers import HttpRecognizer
from audiocore.gateway.sora import SoraServer
from conftest import DATA
from gateway_util import run, server_process

PACKETS = packets_from_ogg(DATA / "speech-20ms.opus")

# Keys and values in the style of the reference gateway's config.ini (written here).
REFERENCE_STYLE = """\
# comment
debug = true
https = false
listen_addr = 0.0.0.0
listen_port = 48080
audio_streaming_header = TRUE
time_to_wait_for_opus_packet_ms = 250
ogg_dir = "./ogg"
dump_file = './dump.jsonl'   ; trailing comment
log_dir = .
aws_region = ap-northeast-1
[gcp]
gcp_interim_results = true
Audio_Sample_Rate = 48000
audio_channel_count = 1
disable_silent_packet = off
"""


def test_reference_style_file(tmp_path: Path) -> None:
    path = tmp_path / "config.ini"
    path.write_text(REFERENCE_STYLE)
    cfg = load_config(path)
    assert (cfg.listen_addr, cfg.listen_port, cfg.https) == ("0.0.0.0", 48080, False)
    assert cfg.audio_streaming_header is True and cfg.time_to_wait_for_opus_packet_ms == 250
    assert (cfg.ogg_dir, cfg.dump_file) == ("./ogg", "./dump.jsonl")
    assert cfg.disable_silent_packet is False and cfg.audio_sample_rate == 48000
    assert set(cfg.ignored) == {"debug", "log_dir", "aws_region", "gcp_interim_results"}
    assert SoraConfig(time_to_wait_for_opus_packet_ms=0).wait_ms == 10000  # as the reference


@pytest.mark.parametrize(("text", "line", "key", "words"), [
    ("listen_port = 80\nlisten_prot = 81\n", 2, "listen_prot", "unknown key"),
    ("https = maybe\n", 1, "https", "not a boolean"),
    ("listen_port = 8o\n", 1, "listen_port", "not an integer"),
    ("ogg_dir = a\n\nOGG_DIR = b\n", 3, "ogg_dir", "given twice"),
    ("ogg_dir = \"abc\n", 1, "ogg_dir", "unterminated"),
    ("just words\n", 1, None, "key = value"),
    ("[section\n", 1, None, "section"),
])
def test_errors_name_the_line_and_key(text: str, line: int, key: str | None, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert info.value.line == line and info.value.key == key and words in str(info.value)


@pytest.mark.parametrize(("changes", "key"), [
    ({"listen_addr": "localhost"}, "listen_addr"),
    ({"listen_port": 70000}, "listen_port"),
    ({"https": True}, "https"),
    ({"tls_verify_cacert_path": "/x"}, "tls_verify_cacert_path"),
    ({"audio_channel_count": 3}, "audio_channel_count"),
    ({"max_payload_length": 0x1000000}, "max_payload_length"),
    ({"http2_max_read_frame_size": 1000}, "http2_max_read_frame_size"),
])
def test_checks_across_keys(changes: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        SoraConfig().replace(**changes)
    assert info.value.key == key


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.ini")
    (tmp_path / "bin.ini").write_bytes(b"ogg_dir = \xff\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(tmp_path / "bin.ini")


_KEYS = sorted(k for k in SoraConfig.__dataclass_fields__ if k != "ignored")
_LINE = st.one_of(
    st.text(max_size=60),
    st.tuples(st.sampled_from(_KEYS + sorted(REFERENCE_ONLY_KEYS)[:5] + ["nope"]),
              st.sampled_from([" = ", "=", " =  "]),
              st.one_of(st.text(max_size=20), st.integers(-10, 10**6).map(str),
                        st.sampled_from(["true", "OFF", "'q'", '"x" # c', "1", "0"]))).map("".join),
)


@settings(max_examples=300)
@given(st.lists(_LINE, max_size=12).map("\n".join))
def test_parser_never_crashes(text: str) -> None:
    try:
        values = parse_config(text)
    except ConfigError as exc:
        assert exc.line is None or 1 <= exc.line <= text.count("\n") + 1
        return
    try:
        SoraConfig().replace(**values)
    except ConfigError as exc:
        assert exc.key in values or exc.key in ("https", "tls_verify_cacert_path", "basic_auth_username",
                                                "basic_auth_password")


@given(st.fixed_dictionaries({}, optional={
    "listen_port": st.integers(0, 65535), "audio_streaming_header": st.booleans(),
    "time_to_wait_for_opus_packet_ms": st.integers(0, 100000), "ogg_dir": st.text(
        st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters="\"'#;"), max_size=20)
    .map(str.strip), "service": st.sampled_from(["ogg", "test", "dump"]),
    "max_payload_length": st.integers(1, 0xFFFFFF)}))
def test_written_settings_read_back(values: dict[str, object]) -> None:
    lines = [f"{k} = \"{v}\"" if isinstance(v, str) else f"{k.upper()} = {str(v).lower()}" for k, v in values.items()]
    cfg = SoraConfig().replace(**parse_config("\n".join(lines)))
    for k, v in values.items():
        assert getattr(cfg, k) == v


# ---------------------------------------------------------------------------- serve


def test_serve_sora_command(tmp_path: Path) -> None:
    cfg = tmp_path / "c.ini"
    cfg.write_text("listen_port = 1\nservice = test\naudio_streaming_header = false\naws_region = x\n"
                   "basic_auth_username = sora\nbasic_auth_password = 's3cret pass'\n")
    with server_process([sys.executable, "-m", "audiocore", "serve", "sora", "--config", str(cfg), "--listen-port",
                         "0", "--audio-streaming-header", "--service", "ogg", "--ogg-dir", str(tmp_path)]) as (proc, line):
        assert "listening on http://127.0.0.1:" in line and "service ogg; header mode" in line, line
        url = line.split("listening on ", 1)[1].split(" ", 1)[0]

        async def client() -> None:
            anonymous = await stream_opus(url + "/speech", PACKETS[:2], realtime=False)
            assert anonymous.status == 401
            r = await stream_opus(url + "/speech", PACKETS[:20], realtime=False, session_id="s", connection_id="c",
                                  headers=[basic_authorization("sora", "s3cret pass")])
            assert r.status == 200
        run(client())
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "aws_region" in err  # reported as not used
        assert "s3cret" not in err
    assert packets_from_ogg(tmp_path / "s-c.ogg") == PACKETS[:20]


def test_serve_errors() -> None:
    def serve(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "audiocore", "serve", *args], capture_output=True, text=True,
                              timeout=60)

    bad = serve("sora", "--https")
    assert bad.returncode == 2 and "tls_fullchain_file" in bad.stderr
    # neither credentials nor an explicit skip_basic_auth: the gateway does not start
    anonymous = serve("sora", "--listen-port", "0")
    assert anonymous.returncode == 2 and "skip_basic_auth" in anonymous.stderr
    assert serve("sora", "--config", "/nonexistent").returncode == 2
    assert serve("nope").returncode == 2
    bridge = serve("bridge", "--help")
    assert bridge.returncode == 0 and "--upstream-url" in bridge.stdout
    assert "--audio-streaming-header" in serve("sora", "--help").stdout
    listing = subprocess.run([sys.executable, "-m", "audiocore", "--help"], capture_output=True, text=True)
    for name in ("serve", "convert", "dump2ogg", "inspect"):
        assert name in listing.stdout


# ---------------------------------------------------------------------------- the http example recognizer


async def fake_cloud(scope: dict, receive, send) -> None:  # type: ignore[no-untyped-def]
    """A streaming recognizer stand-in: decodes the Ogg Opus body as it arrives and reports the
    audio it has heard (ms, and whether there was sound) every 200 ms, then a final result."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    assert scope["http_version"] == "2"
    language = dict(scope["headers"]).get(b"x-language-code", b"").decode()
    if language == "xx":
        await send({"type": "http.response.start", "status": 503, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/x-ndjson")]})
    reader, decoder = audiocore.OggOpusReader(), audiocore.OpusDecoder(16000)
    heard = loud = 0
    next_report = 200
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        for packet in reader.feed(message.get("body", b"")):
            pcm = decoder.decode(packet.data)
            heard += len(pcm) // 32
            loud += max(abs(int.from_bytes(pcm[i:i + 2], "little", signed=True)) for i in range(0, len(pcm), 2)) > 1000
            if heard >= next_report:
                line = {"transcript": f"{heard} ms", "is_final": False, "stability": 0.5}
                await send({"type": "http.response.body", "body": json.dumps(line).encode() + b"\n", "more_body": True})
                next_report += 200
        if not message.get("more_body"):
            break
    final = {"transcript": f"{heard} ms, {loud} loud packets ({language})", "is_final": True}
    await send({"type": "http.response.body", "body": json.dumps(final).encode() + b"\n"})


def test_http_recognizer_with_a_fake_cloud_on_hypercorn(tmp_path: Path) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    async def scenario() -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        hconfig = Config()
        hconfig.bind = [f"fd://{sock.detach()}"]  # hypercorn owns the socket now
        hconfig.loglevel = "WARNING"
        stop = asyncio.Event()
        cloud = asyncio.create_task(serve(fake_cloud, hconfig, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
        try:
            cfg = SoraConfig(listen_port=0, service="http", audio_streaming_header=True,
                             recognizer_url=f"http://127.0.0.1:{port}/v1/recognize", skip_basic_auth=True)
            async with SoraServer(cfg) as server:
                packets = PACKETS[:100]  # 2 s
                result = await stream_opus(server.url + "/speech", packets, realtime=False, language_code="ja-JP")
                assert result.status == 200
                objs = [json.loads(x) for x in result.lines]
                assert all(o["type"] == "gcp" for o in objs)
                assert [o["message"] for o in objs[:-1]] == [f"{ms} ms" for ms in range(200, 2001, 200)]
                assert all(o["is_final"] is False and o["stability"] == 0.5 for o in objs[:-1])
                assert objs[-1]["is_final"] is True and objs[-1]["message"].startswith("2000 ms, ")
                assert objs[-1]["message"].endswith("(ja-JP)") and " 0 loud" not in objs[-1]["message"]
                refused = await stream_opus(server.url + "/speech", packets[:5], realtime=False, language_code="xx")
                assert refused.status == 502 and refused.lines == []
            down = SoraConfig(listen_port=0, service="http", recognizer_url="http://127.0.0.1:1/x", skip_basic_auth=True)
            async with SoraServer(down) as server:
                r = await stream_opus(server.url + "/speech", packets[:5], realtime=False)
                assert r.status == 502
        finally:
            stop.set()
            await cloud

    run(scenario())
    with pytest.raises(ValueError):
        HttpRecognizer("")


def test_http_recognizer_closes_its_upstream_when_cut_while_opening() -> None:
    async def scenario() -> None:
        asked, closed = asyncio.Event(), asyncio.Event()

        async def silent_cloud(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            """Reads the request's HEADERS, never answers, and notes when the client hangs up."""
            try:
                await reader.readexactly(len(PREFACE))
                while True:
                    head = await reader.readexactly(9)
                    await reader.readexactly(int.from_bytes(head[:3], "big"))
                    if head[3] == 1:
                        break
                asked.set()
                await reader.read()
            finally:
                closed.set()
                writer.close()

        cloud = await asyncio.start_server(silent_cloud, "127.0.0.1", 0)
        port = cloud.sockets[0].getsockname()[1]
        cfg = SoraConfig(listen_port=0, service="http", recognizer_url=f"http://127.0.0.1:{port}/v1/recognize", skip_basic_auth=True)
        server = SoraServer(cfg)
        await server.start()
        client = await H2Client.connect(server.url)
        await open_stream(client, "/speech")
        await asyncio.wait_for(asked.wait(), 20)  # open() now waits for the upstream's answer
        await server.close(timeout=0)  # cuts the stream, cancelling open()
        await asyncio.wait_for(closed.wait(), 20)
        await client.aclose()
        cloud.close()

    run(scenario())


# ---------------------------------------------------------------------------- security keys


def test_basic_auth_keys_are_honoured_not_ignored() -> None:
    """The reference reads basic_auth_* and skip_basic_auth and never checks them: anyone
    gets in. Here they are real keys; a config that would leave the gateway open without
    saying so explicitly, or that is contradictory, does not start."""
    assert not {"skip_basic_auth", "basic_auth_username", "basic_auth_password"} & REFERENCE_ONLY_KEYS
    cfg = load_config_text("basic_auth_username = sora\nbasic_auth_password = \"p w\"\n")
    assert (cfg.basic_auth_username, cfg.basic_auth_password, cfg.ignored) == ("sora", "p w", ())
    assert "p w" not in repr(cfg)
    assert cfg.require_auth_decision() is cfg
    assert SoraConfig(skip_basic_auth=True).require_auth_decision().skip_basic_auth
    with pytest.raises(ConfigError) as info:
        SoraConfig().require_auth_decision()
    assert info.value.key == "skip_basic_auth"
    with pytest.raises(ConfigError) as info:
        SoraServer(SoraConfig(listen_port=0))
    assert info.value.key == "skip_basic_auth"
    for changes, key in (({"basic_auth_username": "u"}, "basic_auth_password"),
                         ({"basic_auth_password": "p"}, "basic_auth_username"),
                         ({"basic_auth_username": "a:b", "basic_auth_password": "p"}, "basic_auth_username"),
                         ({"skip_basic_auth": True, "basic_auth_username": "u", "basic_auth_password": "p"},
                          "skip_basic_auth")):
        with pytest.raises(ConfigError) as info:
            SoraConfig().replace(**changes)
        assert info.value.key == key


def load_config_text(text: str) -> SoraConfig:
    return SoraConfig().replace(**parse_config(text))


@pytest.mark.parametrize(("key", "bad"), [
    ("max_connections", 0), ("handshake_timeout_ms", 0), ("stream_idle_timeout_ms", -1),
    ("http2_flood_window_ms", 0), ("http2_max_new_streams", 0), ("http2_max_resets", 0),
    ("http2_max_control_frames", 0), ("http2_max_empty_frames", 0), ("max_write_buffer_bytes", 100),
    ("stream_max_queued_packets", 1), ("stream_max_queued_bytes", 10),
])
def test_limits_are_keys_and_flags_with_safe_defaults(key: str, bad: int) -> None:
    default = getattr(SoraConfig(), key)
    assert isinstance(default, int) and default > 0  # on by default
    assert getattr(load_config_text(f"{key} = {default + 1}"), key) == default + 1
    with pytest.raises(ConfigError) as info:
        SoraConfig().replace(**{key: bad})
    assert info.value.key == key
    assert SoraConfig().http2_idle_timeout > 0 and not SoraConfig().enable_debug_paths


def test_every_key_is_a_flag() -> None:
    out = subprocess.run([sys.executable, "-m", "audiocore", "serve", "sora", "--help"], capture_output=True,
                         text=True, timeout=60).stdout
    for key in SoraConfig.__dataclass_fields__:
        if key != "ignored":
            assert "--" + key.replace("_", "-") in out, key
