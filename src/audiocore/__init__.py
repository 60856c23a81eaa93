"""audiocore: the per-frame audio work of real-time voice gateways, in Cython.

PCM is signed 16-bit little-endian, interleaved, unless a name says otherwise. Kernels read
C-contiguous buffers of bytes (bytes, bytearray, memoryview, uint8 arrays) and, for PCM,
int16 arrays; another dtype, byte order or shape is refused. They return ``bytes``.
Objects are safe to use from one thread at a time.
"""

from typing import TYPE_CHECKING, Any

from audiocore._ext.b64 import (
    b64decode, b64decode_into, b64decoded_length, b64encode, urlsafe_b64decode, urlsafe_b64encode,
)
from audiocore._ext.errors import (
    AudioCoreError,
    BufferFullError,
    DecodeError,
    OpusError,
    ProtocolError,
)
from audiocore._ext.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from audiocore._ext.ring import RingBuffer

# Opus codec binding and Ogg Opus paging
from audiocore._ext.ogg import (
    OggOpusReader,
    OggOpusWriter,
    OggPacket,
    OpusHead,
    OpusTags,
    ogg_crc32,
)
from audiocore._ext.opus import (
    OPUS_RATES,
    OpusDecoder,
    OpusEncoder,
    libopus_version,
    opus_packet_samples,
)
# Ogg Opus files to and from PCM at any rate, the container's timing applied
from audiocore.oggfile import (
    OggOpusAudio,
    OggOpusFileReader,
    OggOpusFileWriter,
    read_ogg_opus,
    write_ogg_opus,
)
# adaptive playout queue and barge-in tracker
from audiocore._ext.jitter import JitterQueue
# streaming resampler; resample() (which needs numpy) is imported on first use, below
from audiocore._ext.resample import Resampler
# sans-I/O handlers live in audiocore.protocols; their kernel re-exported
from audiocore._ext.rechunk import Rechunker

if TYPE_CHECKING:
    from audiocore.resampling import resample

__version__ = "0.1.0"

__all__ = [
    "AudioCoreError",
    "BufferFullError",
    "DecodeError",
    "OpusError",
    "ProtocolError",
    "RingBuffer",
    "alaw_decode",
    "alaw_encode",
    "b64decode",
    "b64decode_into",
    "b64decoded_length",
    "b64encode",
    "urlsafe_b64decode",
    "urlsafe_b64encode",
    "libopus_version",
    "ulaw_decode",
    "ulaw_encode",
    "OPUS_RATES",
    "OggOpusReader",
    "OggOpusWriter",
    "OggPacket",
    "OpusDecoder",
    "OpusEncoder",
    "OpusHead",
    "OpusTags",
    "ogg_crc32",
    "opus_packet_samples",
    "OggOpusAudio",
    "OggOpusFileReader",
    "OggOpusFileWriter",
    "read_ogg_opus",
    "write_ogg_opus",
    "JitterQueue",
    "Resampler",
    "resample",
    "Rechunker",
]


def __getattr__(name: str) -> Any:
    # `import audiocore` stays free of numpy; the filter designer and resample() load it
    if name == "resample":
        from audiocore.resampling import resample

        globals()["resample"] = resample  # later lookups skip this hook
        return resample
    raise AttributeError(f"module 'audiocore' has no attribute {name!r}")
