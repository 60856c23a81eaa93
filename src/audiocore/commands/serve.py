"""``audiocore serve sora|bridge``: run a reference gateway until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from audiocore.gateway.config import SoraConfig

#: Environment variable read for basic_auth_password (a flag's value shows in ``ps``).
PASSWORD_ENV = "AUDIOCORE_SORA_BASIC_AUTH_PASSWORD"
HELP = "run a gateway: 'serve sora' (Sora audio streaming, HTTP/2) or 'serve bridge' (ACS <-> realtime)"


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: audiocore serve {sora,bridge} [options]\n\n" + HELP
              + "\n\nRun 'audiocore serve sora --help' for the Sora gateway's options.")
        return 0 if argv else 2
    kind, rest = argv[0], argv[1:]
    if kind in ("sora", "bridge"):
        from audiocore.commands._extras import missing_gateway

        if (status := missing_gateway(f"serve {kind}")) is not None:
            return status
    if kind == "sora":
        return sora_main(rest)
    if kind == "bridge":
        from audiocore.gateway.bridge import serve_main

        return serve_main(rest)
    print(f"audiocore serve: unknown gateway {kind!r} (choose sora or bridge)", file=sys.stderr)
    return 2


def _parser() -> argparse.ArgumentParser:
    from audiocore.gateway.config import SoraConfig

    parser = argparse.ArgumentParser(
        prog="audiocore serve sora",
        description="The Sora audio streaming gateway: POST /speech (the service), /test, /dump; "
        "GET /.ok. Settings come from --config (the reference gateway's key names), then flags. "
        "Every key of the file is also a flag: listen_port is --listen-port.",
    )
    parser.add_argument("--config", metavar="FILE", help="configuration file (key = value lines)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    helps = {
        "service": "recognizer behind /speech: ogg, test, dump or http (default test)",
        "ogg_dir": "where the ogg service writes {session}-{connection}.ogg",
        "audio_streaming_header": "header mode (20-byte header per packet); raw mode without it",
        "listen_port": "TCP port (0: any free port; printed at start)",
        "basic_auth_password": "basic auth password (better: the config file, or the environment "
                               "variable AUDIOCORE_SORA_BASIC_AUTH_PASSWORD)",
        "skip_basic_auth": "accept callers without credentials (required explicitly when none are set)",
    }
    for f in dataclasses.fields(SoraConfig):
        if f.name == "ignored":
            continue
        flag = "--" + f.name.replace("_", "-")
        text = helps.get(f.name, f"(default {f.default!r})")
        if isinstance(f.default, bool):
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            metavar = "N" if isinstance(f.default, int) else "VALUE"
            parser.add_argument(flag, dest=f.name, type=type(f.default), default=None, metavar=metavar, help=text)
    return parser


def sora_main(argv: list[str]) -> int:
    from audiocore.gateway.config import ConfigError, SoraConfig, load_config

    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    overrides = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(SoraConfig)
        if f.name != "ignored" and getattr(args, f.name) is not None
    }
    secret = os.environ.get(PASSWORD_ENV)
    if secret and "basic_auth_password" not in overrides:
        overrides["basic_auth_password"] = secret  # kept out of the process list
    try:
        config = load_config(args.config) if args.config else SoraConfig()
        config = config.replace(**overrides).require_auth_decision()
    except ConfigError as exc:
        print(f"audiocore serve sora: {exc}", file=sys.stderr)
        return 2
    if config.ignored:
        logging.getLogger("audiocore.gateway.sora").warning(
            "keys of the reference gateway not used here: %s", ", ".join(config.ignored))
    try:
        asyncio.run(_serve(config))
    except (OSError, ValueError) as exc:
        print(f"audiocore serve sora: {exc}", file=sys.stderr)
        return 1
    return 0


async def _serve(config: SoraConfig) -> None:
    from audiocore.gateway._signals import stop_on_signal
    from audiocore.gateway.sora import SoraServer

    async with SoraServer(config) as server:
        stop = stop_on_signal()
        print(f"audiocore serve sora: listening on {server.url} (service {config.service}; "
              f"{'header' if config.audio_streaming_header else 'raw'} mode)", flush=True)
        try:
            await stop.wait()
        finally:
            print("audiocore serve sora: shutting down", file=sys.stderr, flush=True)
