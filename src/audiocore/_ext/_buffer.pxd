# Acquisition of caller buffers for the kernels. Exact bytes objects are read in place; anything
# else goes through the buffer protocol, C-contiguous, and what its items are is checked once,
# here: byte items ('B', 'b', 'c', or no format: bytes, bytearray, memoryview, uint8/int8
# arrays) are read as raw bytes; a kernel reading PCM also takes little-endian int16 (NumPy
# int16 on a little-endian host, '<h'), or float32 where a name says so. Any other item type,
# byte order or shape is refused (TypeError, ValueError) naming what was expected, never
# reinterpreted as PCM16.
from cpython.buffer cimport PyBuffer_Release, PyBUF_FORMAT, PyBUF_ND, PyBUF_WRITABLE
from cpython.bytes cimport PyBytes_CheckExact, PyBytes_AS_STRING, PyBytes_GET_SIZE

cdef extern from "Python.h":
    # Without Cython's error check: a failure is re-raised by _unreadable, saying what was wanted.
    int _get_buffer "PyObject_GetBuffer"(object obj, Py_buffer* view, int flags) noexcept

cdef extern from "ac_common.h":
    enum:
        AC_BIG_ENDIAN

# Inputs at least this long are coded with the GIL released (base64, the JSON envelopes); a
# 20 ms frame is far shorter, and releasing the GIL would cost more than its work.
cdef enum:
    NOGIL_BYTES = 65536

# What a typed buffer may hold (a set of ITEM_* bits).
cdef enum:
    ITEM_BYTES = 1    # 'B', 'b', 'c' or no format: read as raw bytes
    ITEM_INT16 = 2    # int16, little-endian
    ITEM_FLOAT32 = 4  # float32, little-endian
    ACCEPT_BYTES = 1  # codes, packets, containers, text
    ACCEPT_PCM16 = 3  # PCM16LE or raw bytes
    ACCEPT_F32 = 5    # float32 PCM or raw bytes


cdef struct InBuf:
    const unsigned char* ptr
    Py_ssize_t len
    Py_buffer view
    bint owned


cdef struct OutBuf:
    unsigned char* ptr
    Py_ssize_t len
    Py_buffer view


cdef inline int _item(const char* f) noexcept:
    """The ITEM_* kind of a buffer format string; 0 for any other item type or byte order."""
    cdef char order = 0
    if f == NULL:
        return ITEM_BYTES
    if f[0] == c'@' or f[0] == c'=' or f[0] == c'<' or f[0] == c'>' or f[0] == c'!':
        order = f[0]
        f += 1
    if f[0] == 0 or f[1] != 0:
        return 0
    if f[0] == c'B' or f[0] == c'b' or f[0] == c'c':
        return ITEM_BYTES
    if order == c'>' or order == c'!' or (AC_BIG_ENDIAN and order != c'<'):
        return 0
    if f[0] == c'h':
        return ITEM_INT16
    if f[0] == c'f':
        return ITEM_FLOAT32
    return 0


cdef inline bint _fits(Py_buffer* view, int accept, int channels) noexcept:
    """Whether ``view`` holds items ``accept`` takes, 1-D, or (frames, channels) samples."""
    cdef int kind = _item(view.format)
    if not (kind & accept):
        return False
    if view.ndim <= 1:
        return True
    return (view.ndim == 2 and kind != ITEM_BYTES and channels > 0
            and view.shape[1] == channels)


cdef inline str _expected(int accept):
    if accept & ITEM_INT16:
        return "int16 PCM (or bytes)"
    if accept & ITEM_FLOAT32:
        return "float32 PCM (or bytes)"
    return "bytes (or a uint8 array)"


cdef inline str _dtype_name(str fmt, Py_ssize_t itemsize):
    """A NumPy-style name for the items of buffer format ``fmt``."""
    order = fmt[0] if fmt and fmt[0] in "@=<>!" else ""
    code = fmt[len(order):]
    if code in ("b", "h", "i", "l", "q", "n"):
        name = f"int{8 * itemsize}"
    elif code in ("B", "H", "I", "L", "Q", "N"):
        name = f"uint{8 * itemsize}"
    elif code in ("e", "f", "d", "g"):
        name = f"float{8 * itemsize}"
    elif code in ("Zf", "Zd", "Zg"):
        name = f"complex{8 * itemsize}"
    elif code == "?":
        name = "bool"
    else:
        return f"items of buffer format {fmt!r}"
    if itemsize > 1 and (order in (">", "!") or (AC_BIG_ENDIAN and order != "<")):
        name = "big-endian " + name
    return f"{name} (buffer format {fmt!r})"


cdef inline int _pending() except -1:
    return -1  # re-raises the exception already set


cdef inline int _unreadable(object obj, int accept, bint writable) except -1:
    """The buffer protocol refused ``obj`` (its exception is pending): raise one that says
    what was expected. An unusable output stays a TypeError, as it always was."""
    try:
        _pending()
    except (BufferError, ValueError) as exc:  # NumPy raises ValueError
        what = "a writable, " if writable else "a "
        msg = (f"expected {what}C-contiguous buffer of {_expected(accept)}; this "
               f"{type(obj).__name__!r} is not ({exc})")
        if writable:
            raise TypeError(msg) from None
        raise ValueError(msg) from None
    except TypeError:
        what = "a writable, C-contiguous buffer of " if writable else ""
        raise TypeError(f"expected {what}{_expected(accept)}, not {type(obj).__name__!r}"
                        ) from None
    return -1


cdef inline int _refuse(Py_buffer* view, int accept, int channels) except -1:
    """Release ``view`` (which _fits refused) and raise why."""
    cdef int kind = _item(view.format)
    fmt = "B" if view.format == NULL else (<bytes>view.format).decode("ascii", "replace")
    itemsize = view.itemsize
    shape = tuple([view.shape[i] for i in range(view.ndim)]) if view.shape != NULL else ()
    PyBuffer_Release(view)
    if not (kind & accept):
        raise TypeError(f"wrong dtype: expected {_expected(accept)}, "
                        f"got {_dtype_name(fmt, itemsize)}")
    if channels > 0 and kind != ITEM_BYTES:
        want = (f"a 1-D buffer or a (frames, {channels}) array ({channels} "
                f"channel{'s' if channels > 1 else ''})")
    else:
        want = "a 1-D buffer"
    raise ValueError(f"wrong shape: expected {want} of {_expected(accept)}, got shape "
                     f"{shape}")


cdef inline int acquire(object obj, InBuf* b, int accept, int channels) except -1:
    """Borrow a read-only view of ``obj``'s bytes; pair with in_release. ``accept`` is the
    ITEM_* kinds a typed buffer may hold; ``channels`` > 0 also lets samples through as a 2-D
    C-contiguous array of shape (frames, channels)."""
    if PyBytes_CheckExact(obj):
        b.ptr = <const unsigned char*>PyBytes_AS_STRING(obj)
        b.len = PyBytes_GET_SIZE(obj)
        b.owned = 0
        return 0
    if _get_buffer(obj, &b.view, PyBUF_FORMAT | PyBUF_ND) < 0:
        return _unreadable(obj, accept, False)
    if not _fits(&b.view, accept, channels):
        return _refuse(&b.view, accept, channels)
    b.ptr = <const unsigned char*>b.view.buf
    b.len = b.view.len
    b.owned = 1
    return 0


cdef inline int in_acquire(object obj, InBuf* b) except -1:
    """Borrow the bytes of a bytes-like object (codes, packets, text); pair with in_release."""
    return acquire(obj, b, ACCEPT_BYTES, 0)


cdef inline int pcm_acquire(object obj, InBuf* b, int channels) except -1:
    """Borrow PCM16LE: raw bytes or an int16 array (2-D (frames, channels) if ``channels``
    > 0); pair with in_release."""
    return acquire(obj, b, ACCEPT_PCM16, channels)


cdef inline void in_release(InBuf* b) noexcept:
    if b.owned:
        PyBuffer_Release(&b.view)
        b.owned = 0


cdef inline int out_acquire(object obj, OutBuf* b, int accept, int channels) except -1:
    """Borrow a writable view of ``obj`` whose items ``accept`` takes (shaped as for
    acquire); pair with out_release."""
    if _get_buffer(obj, &b.view, PyBUF_FORMAT | PyBUF_ND | PyBUF_WRITABLE) < 0:
        return _unreadable(obj, accept, True)
    if not _fits(&b.view, accept, channels):
        return _refuse(&b.view, accept, channels)
    b.ptr = <unsigned char*>b.view.buf
    b.len = b.view.len
    return 0


cdef inline void out_release(OutBuf* b) noexcept:
    PyBuffer_Release(&b.view)
