from collections.abc import Iterable, Sequence
from typing import Any, final

from typing_extensions import Self

from audiocore._ext._typing import PCM16Like

@final
class Shape:
    @property
    def paths(self) -> tuple[str, ...]: ...
    def __new__(
        cls,
        fields: Iterable[tuple[Any, ...]],
        *,
        case_insensitive: bool = False,
        b64: str | None = None,
        codec: str | None = None,
        record: type | None = None,
        slots: Sequence[str | None] | None = None,
    ) -> Self: ...
    def scan(self, text: str | bytes) -> Any:
        """A tuple, a ``record`` instance, or None."""

@final
class Template:
    def __new__(
        cls, prefix: bytes, suffix: bytes, *, codec: str | None = None, pcm16: bool = False
    ) -> Self: ...
    def build(self, audio: PCM16Like) -> str: ...
    @property
    def prefix(self) -> bytes: ...
    @property
    def suffix(self) -> bytes: ...

def _simd(enabled: bool | None = None) -> bool: ...
