"""Fused JSON-envelope kernels: the plain case of a protocol message in one C call.

:class:`Shape` scans a JSON text against a table of fields given by the protocol layer and
decodes its base64 field (optionally expanding G.711 to PCM16) in the same pass; it answers
only the plain case (see ``csrc/ac_json.h``) and returns ``None`` for everything else, which
the caller hands to its general parser. :class:`Template` builds ``prefix + base64(audio) +
suffix`` as one ``str`` (optionally G.711-coding PCM16 first). Neither knows any protocol: the
fields and the literal text come from the caller.
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.long cimport PyLong_FromLongLong
from cpython.ref cimport PyObject, Py_DECREF, Py_INCREF
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from libc.stdint cimport uint8_t
from libc.string cimport memcpy

from audiocore._ext._buffer cimport NOGIL_BYTES, InBuf, in_release, pcm_acquire
from audiocore._ext.b64 cimport (AC_B64_OK, ac_b64_decode, ac_b64_decoded_len, ac_b64_encode,
                                 ac_b64_encoded_len, ac_b64_init, ac_b64_use_simd, ac_cpu_has_ssse3)
from audiocore._ext.g711 cimport (ac_alaw_decode, ac_alaw_encode, ac_g711_init, ac_ulaw_decode,
                                  ac_ulaw_encode)

cdef extern from "structmember.h":
    enum:
        T_OBJECT_EX
        READONLY

cdef extern from "Python.h":
    ctypedef struct PyMemberDef:
        int type
        Py_ssize_t offset
        int flags
    ctypedef struct PyMemberDescrObject:
        PyMemberDef* d_member
    ctypedef struct PyTypeObject:
        PyObject* (*tp_alloc)(PyTypeObject*, Py_ssize_t)
        Py_ssize_t tp_dictoffset
    PyTypeObject PyMemberDescr_Type
    bint PyObject_TypeCheck(object o, PyTypeObject* t)
    bint PyUnicode_Check(object o)
    bint PyUnicode_IS_ASCII(object o)
    void* PyUnicode_DATA(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)
    object PyUnicode_FromStringAndSize(const char* s, Py_ssize_t size)


ac_b64_init()
ac_g711_init()

_TYPES = {"str": AC_JW_STR, "int": AC_JW_INT, "bool": AC_JW_BOOL, "object": AC_JW_OBJ,
          "count": AC_JW_INT | AC_JW_DIGITS}
_CODECS = {None: CODEC_NONE, "ulaw": CODEC_ULAW, "alaw": CODEC_ALAW, "pcm16": CODEC_PCM16}

# G.711 codes staged on the stack per step of Template (a multiple of 3 keeps base64 groups whole).
DEF STAGE = 3072


cdef int text_view(object text, const uint8_t** ptr, Py_ssize_t* n) noexcept:
    """Point at the bytes of an ASCII ``str`` or of exact ``bytes``; 0 for anything else."""
    if PyUnicode_Check(text):
        if not PyUnicode_IS_ASCII(text):
            return 0
        ptr[0] = <const uint8_t*>PyUnicode_DATA(text)
        n[0] = PyUnicode_GET_LENGTH(text)
        return 1
    if PyBytes_CheckExact(text):
        ptr[0] = <const uint8_t*>PyBytes_AS_STRING(text)
        n[0] = PyBytes_GET_SIZE(text)
        return 1
    return 0


@cython.final
cdef class Shape:
    """The plain form of one kind of JSON message.

    ``fields`` is a sequence of ``(path, types, required, alternatives[, default])``: ``path``
    a dotted key path (a parent before its children), ``types`` one or more of ``"str"``,
    ``"int"``,
    ``"bool"``, ``"object"`` joined by ``"|"``, or ``"count"`` (an integer, or a string of 1 to
    18 decimal digits read as one), ``required`` whether the field must be
    present (non-null) when its parent is, ``alternatives`` the strings the value may equal
    (empty: any), ``default`` the value read when it is absent or null (None if not given).
    ``b64`` names the string field holding base64 audio; ``codec`` (``"ulaw"``, ``"alaw"``,
    ``"pcm16"`` or None) appends the decoded bytes as PCM16 (expanded from G.711; for
    ``"pcm16"`` the same object). ``case_insensitive`` compares keys ignoring ASCII case.

    :meth:`scan` returns a tuple with one value per non-object field, in table order (the
    default when absent; for a field with alternatives, the matching alternative), with the
    decoded audio ``bytes`` in the base64 field's place and, with a codec, the PCM16 ``bytes``
    appended; or ``None`` when the text is not a plain instance of the shape.

    With ``record`` (a class whose instances hold only ``__slots__``, such as a
    ``dataclass(slots=True)``) and ``slots`` (the attribute for each value of that tuple, None
    to leave a value out, every slot of the class named once), :meth:`scan` returns an instance
    of ``record`` with those attributes set directly, without calling its ``__init__``.
    """

    def __cinit__(self, fields, *, bint case_insensitive=False, str b64=None, str codec=None,
                  record=None, slots=None):
        cdef ac_jfield* f
        cdef int i, k, parent
        if codec not in _CODECS:
            raise ValueError(f"codec must be 'ulaw', 'alaw', 'pcm16' or None, not {codec!r}")
        self._codec = _CODECS[codec]
        self._keep = []
        fields = list(fields)
        if not 0 < len(fields) <= AC_JSON_MAX_FIELDS:
            raise ValueError(f"a shape has 1 to {AC_JSON_MAX_FIELDS} fields, not {len(fields)}")
        paths = [fld[0] for fld in fields]
        if len(set(paths)) != len(paths):
            raise ValueError("a path appears twice")
        self.sh.n = len(fields)
        self.sh.ci = case_insensitive
        self._b64 = -1
        self._nleaves = 0
        alts = []
        defaults = []
        for i, field in enumerate(fields):
            path, types, required, alternatives = field[:4]
            defaults.append(field[4] if len(field) > 4 else None)
            f = &self.sh.f[i]
            parent_path, _, name = path.rpartition(".")
            if parent_path:
                if parent_path not in paths[:i]:
                    raise ValueError(f"{path!r}: its parent must come before it")
                parent = paths.index(parent_path)
                if not self.sh.f[parent].want & AC_JW_OBJ:
                    raise ValueError(f"{path!r}: its parent is not an object")
            else:
                parent = -1
            key = (name.lower() if case_insensitive else name).encode("ascii")
            self._keep.append(key)
            f.name = <const uint8_t*>PyBytes_AS_STRING(key)
            f.name_len = len(key)
            f.parent = parent
            f.want = 0
            for t in types.split("|"):
                f.want |= _TYPES[t]
            f.required = bool(required)
            f.raw = path == b64
            alternatives = tuple(alternatives)
            if len(alternatives) > AC_JSON_MAX_ALTS:
                raise ValueError(f"{path!r}: at most {AC_JSON_MAX_ALTS} alternatives")
            f.nalts = len(alternatives)
            for k, alt in enumerate(alternatives):
                raw = alt.encode("ascii")
                self._keep.append(raw)
                f.alts[k] = <const uint8_t*>PyBytes_AS_STRING(raw)
                f.alt_len[k] = len(raw)
            alts.append(alternatives)
            if path == b64:
                if f.want != AC_JW_STR or alternatives:
                    raise ValueError(f"{path!r}: the base64 field must be a plain 'str' field")
                self._b64 = i
            if not f.want & AC_JW_OBJ:
                self._leaves[self._nleaves] = i
                self._nleaves += 1
            elif f.want != AC_JW_OBJ:
                raise ValueError(f"{path!r}: an object field takes no other type")
        if b64 is not None and self._b64 < 0:
            raise ValueError(f"b64 field {b64!r} is not in the shape")
        if self._codec != CODEC_NONE and self._b64 < 0:
            raise ValueError("a codec needs a base64 field")
        self._alts = tuple(alts)
        self._defaults = tuple(defaults)
        self.paths = tuple(paths[self._leaves[i]] for i in range(self._nleaves))
        self._nout = self._nleaves + (self._codec != CODEC_NONE)
        self._record = None
        if record is not None:
            self._bind(record, slots)

    cdef _bind(self, record, slots):
        """Find where each value goes in an instance of ``record``."""
        cdef PyMemberDescrObject* d
        if not isinstance(record, type) or (<PyTypeObject*><PyObject*>record).tp_dictoffset:
            raise TypeError("record must be a class whose instances have no __dict__")
        if record.__new__ is not object.__new__:
            raise TypeError("record must not define __new__")
        members = {}
        for klass in reversed(record.__mro__):
            for name, attr in vars(klass).items():
                if PyObject_TypeCheck(attr, &PyMemberDescr_Type):
                    d = <PyMemberDescrObject*><PyObject*>attr
                    if d.d_member.type != T_OBJECT_EX or d.d_member.flags & READONLY:
                        raise TypeError(f"record slot {name!r} is not a plain object slot")
                    members[name] = d.d_member.offset
        slots = tuple(slots or ())
        if len(slots) != self._nout:
            raise ValueError(f"slots names {len(slots)} values, the shape gives {self._nout}")
        named = [s for s in slots if s is not None]
        if sorted(named) != sorted(members):
            raise ValueError(f"slots must name every slot of {record.__name__} once: "
                             f"{sorted(members)}, not {sorted(named)}")
        for i, name in enumerate(slots):
            self._offsets[i] = -1 if name is None else members[name]
        self._record = record

    cdef int c_scan(self, const uint8_t* text, size_t n, ac_jval* out) noexcept:
        return ac_json_scan(&self.sh, text, n, out)

    def scan(self, text):
        """The plain reading of ``text`` (``str`` or ``bytes``) as a tuple, or None."""
        cdef const uint8_t* p
        cdef Py_ssize_t n
        cdef ac_jval vals[16]
        cdef ac_jval* v
        cdef int i, idx
        cdef size_t need, err_offset
        cdef object payload = None
        cdef PyObject* obj
        cdef uint8_t* dst
        cdef bint ok
        if not text_view(text, &p, &n):
            return None
        if not ac_json_scan(&self.sh, p, <size_t>n, vals):
            return None
        if self._b64 >= 0:
            v = &vals[self._b64]
            need = ac_b64_decoded_len(v.p, v.n)
            payload = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>need)
            dst = <uint8_t*>PyBytes_AS_STRING(payload)
            if v.n >= NOGIL_BYTES:
                with nogil:
                    ok = ac_b64_decode(v.p, v.n, dst, &err_offset) == AC_B64_OK
            else:
                ok = ac_b64_decode(v.p, v.n, dst, &err_offset) == AC_B64_OK
            if not ok:
                return None
        if self._record is None:
            out = PyTuple_New(self._nout)
            for i in range(self._nout):
                item = self._value(i, vals, payload)
                Py_INCREF(item)
                PyTuple_SET_ITEM(out, i, item)
            return out
        obj = (<PyTypeObject*><PyObject*>self._record).tp_alloc(
            <PyTypeObject*><PyObject*>self._record, 0)
        if obj == NULL:
            raise MemoryError()
        record = <object>obj
        Py_DECREF(record)  # the cast took a reference of its own
        for i in range(self._nout):
            if self._offsets[i] >= 0:
                item = self._value(i, vals, payload)
                Py_INCREF(item)
                (<PyObject**>(<char*>obj + self._offsets[i]))[0] = <PyObject*>item
        return record

    cdef object _value(self, int i, ac_jval* vals, object payload):
        """Output value i of a successful scan."""
        cdef int idx
        cdef ac_jval* v
        if i == self._nleaves:
            return payload if self._codec == CODEC_PCM16 else _expand(payload, self._codec)
        idx = self._leaves[i]
        v = &vals[idx]
        if v.type == AC_J_STR:
            if idx == self._b64:
                return payload
            if self.sh.f[idx].nalts:
                return (<tuple>self._alts[idx])[v.alt]
            item = PyUnicode_New(<Py_ssize_t>v.n, 127)
            memcpy(PyUnicode_DATA(item), v.p, v.n)
            return item
        if v.type == AC_J_INT:
            return PyLong_FromLongLong(v.i)
        if v.type == AC_J_TRUE:
            return True
        if v.type == AC_J_FALSE:
            return False
        return self._defaults[idx]


cdef bytes _expand(bytes codes, Codec codec):
    cdef Py_ssize_t n = PyBytes_GET_SIZE(codes)
    pcm = PyBytes_FromStringAndSize(NULL, 2 * n)
    cdef const uint8_t* src = <const uint8_t*>PyBytes_AS_STRING(codes)
    cdef uint8_t* dst = <uint8_t*>PyBytes_AS_STRING(pcm)
    if n >= NOGIL_BYTES:
        with nogil:
            _g711_expand(codec, src, n, dst)
    else:
        _g711_expand(codec, src, n, dst)
    return pcm


cdef inline void _g711_expand(Codec codec, const uint8_t* src, Py_ssize_t n, uint8_t* dst) noexcept nogil:
    if codec == CODEC_ULAW:
        ac_ulaw_decode(src, <size_t>n, dst)
    else:
        ac_alaw_decode(src, <size_t>n, dst)


cdef void _write(const uint8_t* prefix, Py_ssize_t lp, const uint8_t* suffix, Py_ssize_t ls,
                 Codec codec, const uint8_t* audio, Py_ssize_t n, uint8_t* dst) noexcept nogil:
    """prefix, base64 of audio (G.711-coded first with a codec), suffix, at dst."""
    cdef Py_ssize_t samples, step, done = 0
    cdef uint8_t stage[STAGE]
    memcpy(dst, prefix, <size_t>lp)
    dst += lp
    if codec == CODEC_NONE:
        ac_b64_encode(audio, <size_t>n, dst)
        dst += ac_b64_encoded_len(<size_t>n)
    else:
        samples = n // 2
        while done < samples:
            step = samples - done if samples - done < STAGE else STAGE
            if codec == CODEC_ULAW:
                ac_ulaw_encode(audio + 2 * done, <size_t>step, stage)
            else:
                ac_alaw_encode(audio + 2 * done, <size_t>step, stage)
            ac_b64_encode(stage, <size_t>step, dst)
            dst += ac_b64_encoded_len(<size_t>step)
            done += step
    memcpy(dst, suffix, <size_t>ls)


@cython.final
cdef class Template:
    """``prefix + base64(audio) + suffix`` as one ``str``.

    ``prefix`` and ``suffix`` are ASCII ``bytes`` (the caller makes them valid JSON around a
    string value). With ``codec`` (``"ulaw"`` or ``"alaw"``) the audio is PCM16LE and is
    G.711-coded before base64; otherwise it is taken as it is. With a codec or ``pcm16=True``
    an odd number of audio bytes is a ValueError.
    """

    def __cinit__(self, bytes prefix not None, bytes suffix not None, *, str codec=None,
                  bint pcm16=False):
        if codec not in (None, "ulaw", "alaw"):  # ("pcm16" is a Shape codec: pcm16=True here)
            raise ValueError(f"codec must be 'ulaw', 'alaw' or None, not {codec!r}")
        if not (prefix.isascii() and suffix.isascii()):
            raise ValueError("prefix and suffix must be ASCII")
        self._prefix = prefix
        self._suffix = suffix
        self._codec = _CODECS[codec]
        self._pcm16 = pcm16 or self._codec != CODEC_NONE

    cdef Py_ssize_t c_length(self, Py_ssize_t audio_bytes) noexcept:
        if self._codec != CODEC_NONE:
            audio_bytes //= 2
        return (PyBytes_GET_SIZE(self._prefix) + PyBytes_GET_SIZE(self._suffix)
                + <Py_ssize_t>ac_b64_encoded_len(<size_t>audio_bytes))

    cdef void c_write(self, const uint8_t* audio, Py_ssize_t n, uint8_t* dst) noexcept:
        """Write c_length(n) characters at dst (n even when a codec is set)."""
        cdef const uint8_t* prefix = <const uint8_t*>PyBytes_AS_STRING(self._prefix)
        cdef const uint8_t* suffix = <const uint8_t*>PyBytes_AS_STRING(self._suffix)
        cdef Py_ssize_t lp = PyBytes_GET_SIZE(self._prefix)
        cdef Py_ssize_t ls = PyBytes_GET_SIZE(self._suffix)
        cdef Codec codec = self._codec
        if n >= NOGIL_BYTES:
            with nogil:
                _write(prefix, lp, suffix, ls, codec, audio, n, dst)
        else:
            _write(prefix, lp, suffix, ls, codec, audio, n, dst)

    cdef object c_build(self, const uint8_t* audio, Py_ssize_t n):
        out = PyUnicode_New(self.c_length(n), 127)
        self.c_write(audio, n, <uint8_t*>PyUnicode_DATA(out))
        return out

    def build(self, audio) -> str:
        """The message text for ``audio`` (raw bytes or an int16 array)."""
        cdef InBuf b
        pcm_acquire(audio, &b, 0)
        try:
            if self._pcm16 and b.len & 1:
                raise ValueError(f"PCM16 input has an odd number of bytes ({b.len})")
            return self.c_build(b.ptr, b.len)
        finally:
            in_release(&b)

    @property
    def prefix(self) -> bytes:
        return self._prefix

    @property
    def suffix(self) -> bytes:
        return self._suffix


def _simd(enabled=None) -> bool:
    """Test hook: whether this kernel's base64 uses its SSSE3 path; pass a bool to switch it
    (off, or on if the CPU has it). Returns the setting now in force."""
    global ac_b64_use_simd
    if enabled is not None:
        ac_b64_use_simd = 1 if (enabled and ac_cpu_has_ssse3()) else 0
    return bool(ac_b64_use_simd)
