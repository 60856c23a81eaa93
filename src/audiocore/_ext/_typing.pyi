# What the kernels read (stub only: the kernels check at run time, in _buffer.pxd). NumPy
# arrays satisfy typing_extensions.Buffer only on Python 3.12+ (numpy's stubs declare
# __buffer__ there), so the arrays each kernel accepts are named too; on 3.12+ any array
# type-checks as a Buffer, and the run-time check is what refuses a wrong dtype.
from typing import Any, TypeAlias

import numpy as np
from typing_extensions import Buffer

# Raw bytes: bytes, bytearray, memoryview, array('B'), uint8/int8 arrays.
BytesLike: TypeAlias = (
    Buffer | np.ndarray[Any, np.dtype[np.uint8]] | np.ndarray[Any, np.dtype[np.int8]]
)
# PCM16 little-endian: raw bytes or an int16 array.
PCM16Like: TypeAlias = BytesLike | np.ndarray[Any, np.dtype[np.int16]]
# A Resampler's samples: int16 or float32 (its dtype), or raw bytes.
PCMLike: TypeAlias = PCM16Like | np.ndarray[Any, np.dtype[np.float32]]
