"""Subcommands of the ``audiocore`` command, one module each, imported only when run.

A command module has ``HELP`` (one line) and ``main(argv: list[str]) -> int``. Register it in
``COMMANDS`` below.
"""

from __future__ import annotations

COMMANDS: dict[str, str] = {
    "bench": "audiocore.commands.bench",
    "convert": "audiocore.commands.convert",
    "demo": "audiocore.commands.demo",
    "dump2ogg": "audiocore.commands.dump2ogg",
    "inspect": "audiocore.commands.inspect",
    "loadtest": "audiocore.commands.loadtest",
    "serve": "audiocore.commands.serve",
}
