"""A bridge in its own process, for the attack tests (its memory is then its own).

    python bridge_proc.py CONFIG_JSON

CONFIG_JSON: :class:`BridgeConfig` keyword arguments, plus ``"token"`` (a StaticToken),
``"jwks"``/``"audience"``/``"issuer"`` (AcsJwt) or ``"insecure_no_auth": true``, and
``"nofile"`` (RLIMIT_NOFILE to set first). Prints ``listening on URL``, then answers lines
on stdin: ``stats`` -> one JSON line (refusal counts, calls, the finished calls' stats, the
loop's largest lateness); ``quit`` -> closes the bridge and exits 0. Logs go to stderr.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import sys
import time
from typing import Any

from util import LagProbe

from audiocore.gateway.auth import AcsJwt, Authenticator, StaticToken
from audiocore.gateway.bridge import Bridge, BridgeConfig, new_event_loop


async def main(spec: dict[str, Any]) -> None:
    auth: Authenticator | None = None
    if "token" in spec:
        auth = StaticToken(spec.pop("token"))
    elif "jwks" in spec:
        kw = {"issuer": spec.pop("issuer")} if "issuer" in spec else {}
        auth = AcsJwt(spec.pop("jwks"), spec.pop("audience"), **kw)
    if "acs_rates" in spec:
        spec["acs_rates"] = tuple(spec["acs_rates"])
    config = BridgeConfig(caller_auth=auth, **spec)
    probe = LagProbe()
    loop = asyncio.get_running_loop()
    async with Bridge(config) as bridge:
        probe.start()
        print(f"listening on {bridge.url}", flush=True)
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := (await reader.readline()).decode().strip():
            if line == "quit":
                break
            if line == "stats":
                out = {"refusals": dict(bridge.refusals.counts), "calls": len(bridge.calls),
                       "connections": len(bridge._conns),
                       "finished": [s.as_dict() for s in bridge.finished],
                       "lag_ms": probe.take() * 1000, "time": time.monotonic()}
                print(json.dumps(out), flush=True)
        probe.stop()


if __name__ == "__main__":
    spec = json.loads(sys.argv[1])
    nofile = spec.pop("nofile", None)
    if nofile:
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    logging.basicConfig(level=spec.pop("log_level", "INFO"), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("picows").setLevel(logging.WARNING)
    loop = new_event_loop(spec.pop("loop", "auto"))
    try:
        loop.run_until_complete(main(spec))
    finally:
        loop.close()
