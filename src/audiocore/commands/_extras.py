"""Optional dependencies a command needs, checked before it does anything."""

from __future__ import annotations

import importlib
import sys

#: Import names of the ``gateway`` extra's libraries (pyproject.toml).
GATEWAY = ("picows", "h2", "hyperframe", "jwt")


def missing_gateway(command: str) -> int | None:
    """None when the ``gateway`` extra can be imported; else one line on stderr naming what
    to install, and the exit status 2."""
    missing = []
    for name in GATEWAY:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if not missing:
        return None
    print(f"audiocore {command}: needs the gateway extra (missing: {', '.join(missing)}); "
          "install it with: pip install 'audiocore[gateway]'", file=sys.stderr)
    return 2
