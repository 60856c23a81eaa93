"""Base64 kernel: standard or URL-safe alphabet, padded, strict decoding (RFC 4648 sections 4
and 5)."""

from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from cpython.unicode cimport PyUnicode_Check

from audiocore._ext._buffer cimport (
    ACCEPT_PCM16, NOGIL_BYTES, InBuf, OutBuf, in_acquire, in_release, out_acquire, out_release,
    pcm_acquire,
)

from audiocore._ext.errors import DecodeError

cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object o)
    void* PyUnicode_DATA(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)


ac_b64_init()


cdef int _text_acquire(object data, InBuf* b) except -1:
    """Borrow the characters of ASCII ``str`` or the bytes of a bytes-like object."""
    cdef Py_ssize_t i
    if PyUnicode_Check(data):
        if not PyUnicode_IS_ASCII(data):
            for i, ch in enumerate(<str>data):
                if ord(ch) > 127:
                    raise DecodeError(
                        f"invalid base64: non-ASCII character {ch!r} at offset {i}", i)
        b.ptr = <const unsigned char*>PyUnicode_DATA(data)
        b.len = PyUnicode_GET_LENGTH(data)
        b.owned = 0
        return 0
    return in_acquire(data, b)


cdef int _alphabet(object altchars, object validate) except -1:
    """0 for the standard alphabet, 1 for the URL-safe one, from the standard library's
    ``altchars`` and ``validate`` arguments; ValueError for what this kernel does not do."""
    if not validate:
        raise ValueError("validate=False is not supported: audiocore always decodes strictly "
                         "(as validate=True), refusing every character outside the alphabet "
                         "rather than discarding it; strip whitespace first if the input has "
                         "some")
    if altchars is None:
        return 0
    if isinstance(altchars, str):
        alt = altchars.encode("ascii", "replace")
    elif isinstance(altchars, (bytes, bytearray)):
        alt = bytes(altchars)
    else:
        raise TypeError(f"altchars must be bytes or str, not {type(altchars).__name__!r}")
    if alt == b"+/":
        return 0
    if alt == b"-_":
        return 1
    raise ValueError(f"altchars must be b'-_' (the URL-safe alphabet) or b'+/' (the standard "
                     f"one), not {altchars!r}")


cdef object _decode_error(int code, const unsigned char* src, size_t n, size_t offset,
                          int url=0):
    cdef unsigned char c
    if code == AC_B64_ERR_LENGTH:
        return DecodeError(
            f"invalid base64: length {n} is not a multiple of 4 "
            f"(incomplete group at offset {offset})", offset)
    if code == AC_B64_ERR_PAD:
        return DecodeError(f"invalid base64: misplaced padding '=' at offset {offset} "
                           f"(padding may only end the input)", offset)
    c = src[offset]
    if chr(c) in " \t\n\r\v\f":
        what = f"whitespace {chr(c)!r}"
    elif 32 < c < 127:
        what = f"character {chr(c)!r}"
    else:
        what = f"byte 0x{c:02x}"
    if url:
        note = (" (the URL-safe alphabet has '-' and '_' where the standard one has '+' and "
                "'/')" if c in b"+/" else "")
        return DecodeError(f"invalid URL-safe base64: {what} at offset {offset}{note}", offset)
    note = (" (URL-safe base64? use urlsafe_b64decode or altchars=b'-_')"
            if c in b"-_" else "")
    return DecodeError(f"invalid base64: {what} at offset {offset}{note}", offset)


cdef int _decode(const unsigned char* src, size_t n, unsigned char* dst, int url=0) except -1:
    cdef size_t err_offset = 0
    cdef int code
    if n >= NOGIL_BYTES:
        with nogil:
            if url:
                code = ac_b64_decode_url(src, n, dst, &err_offset)
            else:
                code = ac_b64_decode(src, n, dst, &err_offset)
    elif url:
        code = ac_b64_decode_url(src, n, dst, &err_offset)
    else:
        code = ac_b64_decode(src, n, dst, &err_offset)
    if code != AC_B64_OK:
        raise _decode_error(code, src, n, err_offset, url)
    return 0


cdef bytes _encode(object data, int url):
    cdef InBuf b
    cdef unsigned char* dst
    pcm_acquire(data, &b, 0)
    try:
        out = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>ac_b64_encoded_len(<size_t>b.len))
        dst = <unsigned char*>PyBytes_AS_STRING(out)
        if b.len >= NOGIL_BYTES:
            with nogil:
                if url:
                    ac_b64_encode_url(b.ptr, <size_t>b.len, dst)
                else:
                    ac_b64_encode(b.ptr, <size_t>b.len, dst)
        elif url:
            ac_b64_encode_url(b.ptr, <size_t>b.len, dst)
        else:
            ac_b64_encode(b.ptr, <size_t>b.len, dst)
        return out
    finally:
        in_release(&b)


cdef bytes _decode_new(object data, int url):
    cdef InBuf b
    _text_acquire(data, &b)
    try:
        out = PyBytes_FromStringAndSize(
            NULL, <Py_ssize_t>ac_b64_decoded_len(b.ptr, <size_t>b.len))
        _decode(b.ptr, <size_t>b.len, <unsigned char*>PyBytes_AS_STRING(out), url)
        return out
    finally:
        in_release(&b)


def b64encode(data, altchars=None) -> bytes:
    """Encode raw bytes or int16 PCM (an int16 array) as padded standard base64; returns ASCII
    ``bytes``. An array of another dtype is a TypeError (``arr.view(numpy.uint8)`` encodes its
    bytes). ``altchars=b"-_"`` gives the URL-safe alphabet, as the standard library does; no
    other pair is supported (ValueError)."""
    return _encode(data, 0 if altchars is None else _alphabet(altchars, True))


def b64decode(data, altchars=None, validate=True) -> bytes:
    """Decode padded standard base64 from ASCII ``str`` or a bytes-like object.

    Strict: any character outside the alphabet (whitespace included), misplaced padding or a
    length that is not a multiple of 4 raises :class:`DecodeError` with ``.offset`` set.
    ``altchars=b"-_"`` decodes the URL-safe alphabet instead (and only it). ``validate`` is the
    standard library's: True is what this function always does; False (discard characters
    outside the alphabet) is refused with ValueError.
    """
    if altchars is None and validate is True:
        return _decode_new(data, 0)
    return _decode_new(data, _alphabet(altchars, validate))


def urlsafe_b64encode(data) -> bytes:
    """Encode like :func:`b64encode` in the URL-safe alphabet (RFC 4648 section 5: ``-`` and
    ``_`` for ``+`` and ``/``), padded, as :func:`base64.urlsafe_b64encode` does."""
    return _encode(data, 1)


def urlsafe_b64decode(data) -> bytes:
    """Decode padded URL-safe base64 (RFC 4648 section 5), strictly: ``+``, ``/``, whitespace
    or missing padding raise :class:`DecodeError` with ``.offset`` set (the standard library
    also takes ``+`` and ``/`` and discards other characters)."""
    return _decode_new(data, 1)


def b64decode_into(data, out) -> int:
    """Decode like :func:`b64decode` into the writable buffer ``out``; returns bytes written.

    Raises ValueError, before writing anything, when ``out`` is too small. On DecodeError the
    bytes of ``out`` before the bad group may have been written.
    """
    cdef InBuf b
    cdef OutBuf o
    cdef size_t need
    _text_acquire(data, &b)
    try:
        out_acquire(out, &o, ACCEPT_PCM16, 0)
        try:
            need = ac_b64_decoded_len(b.ptr, <size_t>b.len)
            if <size_t>o.len < need:
                raise ValueError(
                    f"output buffer too small: {need} bytes needed, {o.len} available")
            _decode(b.ptr, <size_t>b.len, o.ptr)
            return need
        finally:
            out_release(&o)
    finally:
        in_release(&b)


def b64decoded_length(data) -> int:
    """The number of bytes :func:`b64decode` returns for well-formed ``data``."""
    cdef InBuf b
    _text_acquire(data, &b)
    try:
        return ac_b64_decoded_len(b.ptr, <size_t>b.len)
    finally:
        in_release(&b)


def _simd(enabled=None) -> bool:
    """Test hook: whether the SSSE3 path is used; pass a bool to switch it (off, or on if the
    CPU has it). Returns the setting now in force."""
    global ac_b64_use_simd
    if enabled is not None:
        ac_b64_use_simd = 1 if (enabled and ac_cpu_has_ssse3()) else 0
    return bool(ac_b64_use_simd)
