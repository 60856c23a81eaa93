"""``audiocore demo``: both reference gateways end to end, offline, over real sockets.

1. An ACS call through the ACS <-> realtime bridge to the local realtime server: the caller
   streams the bundled sentence in real time, pauses for the answer, then talks over it (a
   barge-in: StopAudio, response.cancel, truncate with the ms heard). What the caller heard
   is written to ``heard.wav``. The caller authenticates as ACS does: an RSA key is made at
   start, its JWKS written to ``jwks.json`` for the bridge (``AcsJwt``), and the caller sends
   ``Authorization: Bearer <JWT>`` signed with it (RS256).
2. Concurrently, a Sora pass: the same sentence as 48 kHz Opus over HTTP/2 in header mode to
   the Sora gateway, whose ``ogg`` recognizer writes the Ogg Opus file; the file the gateway
   opened for this stream (a later run's gets a timestamped name) is checked (the packets read
   back, opusinfo when installed).

Everything runs on loopback in this process and takes about 20 seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import shutil
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

HELP = "run both reference gateways on loopback with the bundled speech (the main job)"

PAUSE_S = 3.0  # the caller listens to the answer this long before talking over it
BARGE_S = 2.0  # then says the first 2 s of the sentence again
TAIL_S = 4.5  # and listens to the second answer until hanging up


def bundled_speech() -> tuple[bytes, int]:
    """The bundled sentence: PCM16LE mono and its rate (16 kHz)."""
    from audiocore.gateway.peers.acs_caller import read_wav

    with resources.as_file(resources.files("audiocore") / "data" / "speech-16k.wav") as path:
        return read_wav(path)


def _silence(rate: int, seconds: float) -> bytes:
    return bytes(int(rate * seconds) * 2)


DEMO_AUDIENCE = "audiocore-demo-bridge"


def caller_credentials(out: Path) -> tuple[Path, str]:
    """A new RSA key (:class:`~audiocore.gateway.peers.acs_tokens.TokenIssuer`): its JWKS
    written to ``out/jwks.json`` (what the bridge verifies with), and the ``Authorization``
    value of a JWT signed with it as ACS signs its media-streaming handshakes (RS256,
    ``kid``, ``aud``, ``iss``, ``iat``/``nbf``/``exp``; 10 minutes)."""
    from audiocore.gateway.peers.acs_tokens import TokenIssuer

    issuer = TokenIssuer(kid="audiocore-demo")
    path = issuer.write_jwks(out / "jwks.json")
    return path, issuer.authorization(DEMO_AUDIENCE, lifetime_s=600)


async def _acs_call(out: Path, speech: bytes, rate: int) -> dict[str, Any]:
    from audiocore.gateway.bridge import Bridge, BridgeConfig
    from audiocore.gateway.peers.acs_caller import call, write_wav
    from audiocore.gateway.peers.realtime_server import RealtimeServer

    from audiocore.gateway.auth import AcsJwt

    script = (speech + _silence(rate, PAUSE_S) + speech[: int(rate * BARGE_S) * 2]
              + _silence(rate, TAIL_S))
    write_wav(out / "caller.wav", script, rate)
    jwks, authorization = caller_credentials(out)
    async with RealtimeServer(mode="prompt", silence_ms=700) as rt:
        config = BridgeConfig(upstream_url=rt.url, caller_auth=AcsJwt(str(jwks), DEMO_AUDIENCE))
        async with Bridge(config) as bridge:
            # the resamplers' group delay is part of the bridge's added latency
            result = await call(bridge.url, script, rate=rate, record_to=out / "heard.wav",
                                realtime=rt, group_delay_ms=config.resampler_delays_ms(rate),
                                tail_s=0, authorization=authorization)
            for _ in range(100):  # let the bridge finish the call's bookkeeping
                if not bridge.calls:
                    break
                await asyncio.sleep(0.02)
            stats = bridge.finished[-1].as_dict() if bridge.finished else {}
            refusals = dict(bridge.refusals.counts)
    figures = result.figures
    return {
        "caller": result.summary(),
        "auth": {"scheme": "ACS JWT (RS256)", "jwks": str(jwks), "audience": DEMO_AUDIENCE,
                 "refusals": refusals},
        "bridge": stats,
        "truncates": [list(t) for t in figures.truncates] if figures else [],
        "stop_frames": list(figures.stop_frames) if figures else [],
    }


async def _sora_pass(out: Path, speech: bytes, rate: int) -> dict[str, Any]:
    """Stream the sentence to a Sora gateway writing into ``out/sora``, and check the Ogg file
    the gateway opened for this stream. Its name is learnt from the gateway, not assumed:
    ``demo-call1.ogg`` is only the first run's; a later run into the same folder gets a
    timestamped name (the gateway never overwrites), and checking the fixed name would check
    the earlier run's file."""
    from audiocore.commands._demo_ogg import NotingOggRecognizer
    from audiocore.gateway.config import SoraConfig
    from audiocore.gateway.peers.sora_client import basic_authorization, packets_from_pcm, stream_opus
    from audiocore.gateway.sora import SoraServer
    from audiocore.resampling import resample

    ogg_dir = out / "sora"
    ogg_dir.mkdir(exist_ok=True)
    recognizer = NotingOggRecognizer(ogg_dir)
    packets = packets_from_pcm(resample(speech, rate, 48000), 48000)
    password = secrets.token_urlsafe(16)  # callers authenticate, as in production
    config = SoraConfig(listen_port=0, service="ogg", ogg_dir=str(ogg_dir),
                        audio_streaming_header=True, basic_auth_username="sora",
                        basic_auth_password=password)
    async with SoraServer(config, recognizers={"ogg": recognizer}) as server:
        result = await stream_opus(server.url + "/speech", packets, header_mode=True,
                                   realtime=True, session_id="demo", connection_id="call1",
                                   headers=[basic_authorization("sora", password)])
    # one stream, so at most one file; none if the gateway refused the stream
    path = recognizer.paths[-1] if recognizer.paths else None
    return {"status": result.status, "packets_sent": result.packets_sent,
            "lines": [line.decode(errors="replace").strip() for line in result.lines],
            "check": _check_ogg(path, packets)}


def _check_ogg(path: Path | None, sent: list[bytes]) -> dict[str, Any]:
    """Read the gateway's Ogg file back (None: the gateway opened none): its packets against
    those sent, opusinfo's verdict."""
    from audiocore import DecodeError, OggOpusReader, opus_packet_samples

    reader = OggOpusReader()
    problem = None if path is not None and path.is_file() else "the gateway wrote no file"
    try:
        packets = reader.feed(path.read_bytes()) if path is not None and problem is None else []
    except DecodeError as error:
        packets, problem = [], f"unreadable: {error}"
    head = reader.head
    got = [p.data for p in packets]
    try:
        seconds: float | None = round(sum(opus_packet_samples(p) for p in got) / 48000, 3)
    except DecodeError as error:
        seconds, problem = None, f"a malformed packet: {error}"
    check: dict[str, Any] = {
        "file": str(path) if path is not None else None,
        "problem": problem,
        "packets": len(got),
        "packets_equal_sent": got == sent,
        "channels": head.channels if head else None,
        "pre_skip": head.pre_skip if head else None,
        "seconds": seconds,
    }
    if path is None or not path.is_file():
        check["opusinfo"] = "no file"  # the missing file is the problem reported
    elif shutil.which("opusinfo"):
        info = subprocess.run(["opusinfo", str(path)], capture_output=True, text=True, timeout=60)
        said = info.stdout + info.stderr
        clean = info.returncode == 0 and not any(word in said.upper() for word in ("WARNING", "ERROR"))
        check["opusinfo"] = "clean" if clean else "problems: " + said[-300:]
    else:
        check["opusinfo"] = "not installed (apt-get install opus-tools)"
    return check


async def run(out: Path) -> dict[str, Any]:
    speech, rate = bundled_speech()
    start = time.monotonic()
    acs, sora = await asyncio.gather(_acs_call(out, speech, rate), _sora_pass(out, speech, rate))
    return {"seconds": round(time.monotonic() - start, 1), "acs": acs, "sora": sora,
            "outputs": {"caller": str(out / "caller.wav"), "heard": str(out / "heard.wav"),
                        "jwks": acs["auth"]["jwks"],
                        "ogg": sora["check"]["file"], "summary": str(out / "summary.json")}}


def _report(summary: dict[str, Any]) -> list[str]:
    caller = summary["acs"]["caller"]
    bridge = summary["acs"]["bridge"]
    check = summary["sora"]["check"]

    def ms(value: Any) -> str:
        return "-" if value is None else f"{value:.2f} ms"

    auth = summary["acs"]["auth"]
    lines = [
        f"ACS call through the bridge ({caller['duration_s']} s in real time):",
        f"  caller authenticated with an {auth['scheme']} checked against {auth['jwks']} "
        f"(refusals: {auth['refusals'] or 'none'})",
        f"  frames sent {caller['frames_sent']}, heard {caller['frames_received']}, "
        f"lost {caller['lost_frames']}, malformed {caller['bad_frames']}",
        f"  added latency caller -> service: p50 {ms(caller['in_p50_ms'])}, "
        f"p99 {ms(caller['in_p99_ms'])}",
        f"  added latency service -> caller: p50 {ms(caller['out_p50_ms'])}, "
        f"p99 {ms(caller['out_p99_ms'])}",
        "  answer heard after the caller stopped talking: "
        + ", ".join(f"{x:.0f} ms" for x in caller["response_latency_ms"]),
        f"  barge-ins {caller['barge_ins']}: StopAudio {ms(caller['stop_audio_max_ms'])} after "
        f"speech_started ({max(summary['acs']['stop_frames'], default=0)} frames in between), "
        f"late deltas dropped {bridge.get('dropped_deltas', 0)}, frames of a cancelled "
        f"response heard {caller['after_stop_frames']}",
    ]
    for item, audio_end_ms, heard_ms in summary["acs"]["truncates"]:
        lines.append(f"  truncate {item}: audio_end_ms {audio_end_ms} (the caller heard "
                     f"{heard_ms} ms of it)")
    lines += [
        f"Sora pass (Opus over HTTP/2, header mode): status {summary['sora']['status']}, "
        f"{summary['sora']['packets_sent']} packets",
        f"  Ogg file: {check['packets']} packets, {check['seconds']} s, equal to those sent: "
        f"{check['packets_equal_sent']}, opusinfo: {check['opusinfo']}",
        "Outputs:",
    ]
    lines += [f"  {name:8} {path or '- (none written)'}" for name, path in summary["outputs"].items()]
    return lines


def _problems(summary: dict[str, Any]) -> list[str]:
    caller = summary["acs"]["caller"]
    check = summary["sora"]["check"]
    problems = []
    refusals = summary["acs"].get("auth", {}).get("refusals")
    if refusals:
        problems.append(f"the bridge refused something: {refusals}")
    if caller["lost_frames"] or caller["bad_frames"]:
        problems.append("frames were lost or malformed on the ACS call")
    if caller["barge_ins"] < 1 or caller["after_stop_frames"]:
        problems.append("the barge-in did not cut the answer cleanly")
    if any(a != b for _, a, b in summary["acs"]["truncates"]):
        problems.append("a truncate did not carry the ms the caller heard")
    if summary["sora"]["status"] != 200 or not check["packets_equal_sent"]:
        problems.append("the Sora gateway's Ogg file does not hold the packets sent"
                        + (f" ({check['problem']})" if check["problem"] else ""))
    if not str(check["opusinfo"]).startswith(("clean", "not installed", "no file")):
        problems.append("opusinfo found problems in the Ogg file")
    return problems


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="audiocore demo", description="Both reference gateways end to "
                                     "end, offline, over real sockets on loopback.")
    parser.add_argument("--out", default="audiocore-demo", metavar="DIR",
                        help="where the WAV, Ogg and summary files go (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    from audiocore.commands._extras import missing_gateway

    if (status := missing_gateway("demo")) is not None:
        return status
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        print(f"audiocore demo: --out {out}: exists and is not a directory", file=sys.stderr)
        return 2
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"audiocore demo: --out {out}: {exc.strerror}", file=sys.stderr)
        return 1
    from audiocore.gateway.bridge import new_event_loop

    print("audiocore demo: an ACS call through the bridge to a local realtime service, and a "
          "Sora stream to the Sora gateway, on loopback in real time (about 20 s) ...",
          file=sys.stderr)
    loop = new_event_loop()
    try:
        summary = loop.run_until_complete(run(out))
    finally:
        loop.close()
    text = json.dumps(summary, indent=2)
    (out / "summary.json").write_text(text + "\n")
    problems = _problems(summary)
    if args.json:
        print(text)
    else:
        print("\n".join(_report(summary)))
        print(f"Done in {summary['seconds']} s" + (": " + "; ".join(problems) if problems
                                                    else ", every check passed."))
    return 1 if problems else 0
