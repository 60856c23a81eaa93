from collections.abc import Iterable
from typing import Any

from typing_extensions import Buffer

class Shape:
    paths: tuple[str, ...]
    def __init__(
        self,
        fields: Iterable[tuple[str, str, bool, tuple[str, ...]]],
        *,
        case_insensitive: bool = False,
        b64: str | None = None,
        codec: str | None = None,
    ) -> None: ...
    def scan(self, text: str | bytes) -> tuple[Any, ...] | None: ...

class Template:
    def __init__(
        self, prefix: bytes, suffix: bytes, *, codec: str | None = None, pcm16: bool = False
    ) -> None: ...
    def build(self, audio: Buffer) -> str: ...
    @property
    def prefix(self) -> bytes: ...
    @property
    def suffix(self) -> bytes: ...
