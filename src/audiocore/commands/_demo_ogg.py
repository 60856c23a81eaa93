"""The demo's ``ogg`` recognizer: the gateway's own, noting which file each stream was given
(needs the ``gateway`` extra; imported by ``audiocore demo`` after it checked for it)."""

from __future__ import annotations

from pathlib import Path

from audiocore.gateway.recognizers import OggFile, OggFileRecognizer, RecognizerStream, StreamInfo

__all__ = ["NotingOggRecognizer"]


class NotingOggRecognizer(OggFileRecognizer):
    """:class:`OggFileRecognizer` writing into ``directory``; ``paths``: the file opened for
    each stream, in order (the name the gateway chose: a taken name gets a timestamp)."""

    def __init__(self, directory: str | Path) -> None:
        super().__init__(directory)
        self.paths: list[Path] = []

    async def open(self, info: StreamInfo) -> RecognizerStream:
        stream = await super().open(info)
        file = getattr(stream, "file", None)
        if isinstance(file, OggFile):
            self.paths.append(file.path)
        return stream
