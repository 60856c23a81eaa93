from collections.abc import Iterable
from typing import final

from typing_extensions import Self

from audiocore._ext.envelope import Shape, Template
from audiocore._ext.rechunk import Rechunker
from audiocore._ext.resample import Resampler

@final
class Transcoder:
    key_bytes: int
    def __new__(
        cls,
        shape: Shape,
        template: Template,
        resampler: Resampler,
        *,
        frame_bytes: int = 0,
        silence: str | None = None,
        rechunker: Rechunker | None = None,
        key: str | None = None,
        deny: str | None = None,
    ) -> Self: ...
    @property
    def frame_bytes(self) -> int: ...
    @frame_bytes.setter
    def frame_bytes(self, n: int) -> None: ...
    @property
    def key(self) -> str | None: ...
    @key.setter
    def key(self, value: str | None) -> None: ...
    @property
    def denied(self) -> tuple[str, ...]: ...
    @denied.setter
    def denied(self, values: Iterable[str]) -> None: ...
    def run(self, text: str | bytes) -> str | list[str] | None: ...
