"""audiocore: the per-frame audio work of real-time voice gateways, in Cython.

PCM is signed 16-bit little-endian, interleaved, unless a name says otherwise. Kernels accept
any C-contiguous buffer (bytes, bytearray, memoryview, numpy array) and return ``bytes``.
Objects are safe to use from one thread at a time.
"""

from audiocore._ext.b64 import b64decode, b64decode_into, b64decoded_length, b64encode
from audiocore._ext.errors import (
    AudioCoreError,
    BufferFullError,
    DecodeError,
    OpusError,
    ProtocolError,
)
from audiocore._ext.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from audiocore._ext.opus import libopus_version
from audiocore._ext.ring import RingBuffer

# --- opus/ogg area: Opus codec binding and Ogg Opus paging
from audiocore._ext.ogg import (
    OggOpusReader,
    OggOpusWriter,
    OggPacket,
    OpusHead,
    OpusTags,
    ogg_crc32,
)
from audiocore._ext.opus import (
    OpusDecoder,
    OpusEncoder,
    opus_packet_samples,
)
# --- end opus/ogg area
# --- jitter area: adaptive playout queue and barge-in tracker
from audiocore._ext.jitter import JitterQueue
# --- end jitter area
# --- resample area: streaming resampler and one-shot resample()
from audiocore._ext.resample import Resampler
from audiocore.resampling import resample
# --- end resample area
# --- protocols area: sans-I/O handlers live in audiocore.protocols; their kernel re-exported
from audiocore._ext.rechunk import Rechunker
# --- end protocols area

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
    "libopus_version",
    "ulaw_decode",
    "ulaw_encode",
    # --- opus/ogg area
    "OggOpusReader",
    "OggOpusWriter",
    "OggPacket",
    "OpusDecoder",
    "OpusEncoder",
    "OpusHead",
    "OpusTags",
    "ogg_crc32",
    "opus_packet_samples",
    # --- end opus/ogg area
    # --- jitter area
    "JitterQueue",
    # --- end jitter area
    # --- resample area
    "Resampler",
    "resample",
    # --- end resample area
    # --- protocols area
    "Rechunker",
    # --- end protocols area
]
