"""JitterQueue kernel: an adaptive playout queue that turns bursty, reordered, lossy or
faster-than-real-time audio into exactly one frame per tick, with concealment, and tracks how
much of each response item has been played (for barge-in and conversation.item.truncate).

The algorithm is specified, line for line, by tests/reference/jitter.py; docs/jitter.md
explains it. Per-frame loops here are a few hundred samples: they run with the GIL held
(releasing it would cost more than the work).
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_FromStringAndSize
from cpython.bytes cimport PyBytes_GET_SIZE
from cpython.long cimport PyLong_AsLongLong, PyLong_CheckExact
from cpython.number cimport PyNumber_Index
from libc.math cimport cos, M_PI
from libc.stdint cimport INT64_MAX, int16_t, int32_t, int64_t, uint8_t, uint64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy, memset

from audiocore._ext._buffer cimport InBuf, in_acquire, in_release, pcm_acquire
from audiocore._ext._opus_packet cimport packet_samples48
from audiocore._ext.opus cimport OpusDecoder
from audiocore._ext.opus import OPUS_RATES
from audiocore._ext.ring cimport RingBuffer

from audiocore._ext.errors import AudioCoreError


cdef extern from "ac_jitter.h" nogil:
    int16_t ac_jit_mix(int32_t a, int32_t b, int32_t w)
    uint64_t ac_jit_energy(const uint8_t* p, size_t n)
    int ac_jit_quiet(const uint8_t* p, size_t n, uint64_t limit)
    int ac_jit_is_silent(const uint8_t* p, size_t nbytes)
    void ac_jit_fade(const uint8_t* last, int fs, int ch, const int32_t* w_up, int xf,
                     uint8_t* out)
    void ac_jit_mirror(const uint8_t* last, int fs, int ch, uint8_t* out)
    void ac_jit_transition(const uint8_t* last, const uint8_t* x, int fs, int ch, int p,
                           const int32_t* t_up, int h, uint8_t* out)
    void ac_jit_fade_out(uint8_t* x, int fs, int ch, const int32_t* w_up, int xf)
    void ac_jit_tail(const uint8_t* last, uint8_t* out, int fs, int ch, int p,
                     const int32_t* w_up, int xf)
    int64_t ac_jit_floordiv(int64_t a, int64_t b)
    void ac_jit_native_to_le(uint8_t* p, size_t n)


# Tuning (the same constants as tests/reference/jitter.py; docs/jitter.md explains each).
DEF QUIET = 128            # a frame is quiet when its mean |sample| is below this
DEF FORGET = 0.99          # histogram forgetting factor per sample (one sample per tick)
DEF QUANTILE = 0.95        # target = this quantile of the relative arrival delay
DEF HISTORY_MS = 2000      # relative delay is measured against the fastest packet of this span
DEF WINDOW_MS = 500        # a level must persist this long before the queue acts on it
DEF STEP_MS = 100          # at most one non-quiet drop or one insertion per this span
DEF FLUSH_MS = 200         # excess beyond max(target + frame, this) is dropped at once
DEF XFADE_MS = 10          # fades (capped at one frame); transitions take half of it each way
DEF PLC_MS = 100           # decoder concealment this long, then a fade to silence
DEF SPURT_GAP_MS = 500     # stream mode: a refill later than this starts a new talk spurt
DEF DEQUE_MAX = 256
DEF RAMP = 99              # samples after which 1/(n+1) < 1 - FORGET
DEF WARM_PACKETS = 2       # packets decoded (and discarded) when a cut skips Opus audio
cdef double STEADY = (1.0 - FORGET) / FORGET
DEF BIG = 1099511627776    # 1 << 40

cdef enum:
    M_NONE = 0
    M_STREAM = 1
    M_SEQ = 2
    M_TS = 3
    M_AUTO = 4

cdef enum:
    S_EMPTY = 0
    S_START = 1
    S_CONT = 2

_MODE_NAMES = (None, "stream", "seq", "timestamp", "auto")


cdef inline int64_t _fmod(int64_t a, int64_t m) noexcept nogil:
    cdef int64_t r = a % m
    return r + m if r < 0 else r


cdef int32_t* _raised_cosine(int n) except NULL:
    """Q15 weights rising from near 0 to near 1 over n samples (as the reference rounds)."""
    cdef int32_t* w = <int32_t*>malloc(<size_t>(n if n > 0 else 1) * sizeof(int32_t))
    cdef int k
    if w == NULL:
        raise MemoryError()
    for k in range(n):
        w[k] = round(32768 * 0.5 * (1 - cos(M_PI * (k + 1) / (n + 1))))
    return w


@cython.final
cdef class JitterQueue:
    """An adaptive jitter/playout queue: push audio as it arrives, pop exactly one frame of
    ``frame_ms`` per tick.

    ``rate`` (Hz), ``frame_ms`` (ms per popped frame), ``channels`` describe the PCM16LE
    frames popped. ``target_ms`` is the initial target (``min_ms`` <= target <= ``max_ms`` -
    ``frame_ms``); with ``adaptive`` it follows the measured arrival jitter. ``max_ms`` bounds
    what is held (the oldest audio is dropped beyond it). ``decoder`` (an object with
    ``decode(packet)``, ``conceal(samples)``, ``decode_fec(packet, samples)`` and ``reset()``,
    such as an Opus decoder at ``rate`` with ``channels``) makes the payloads Opus packets.

    Time: each ``pop()`` is one tick of ``frame_ms``; a push arrived at the tick of the next
    pop. No wall clock is read. Use an instance from one thread at a time.
    """

    def __cinit__(self, int rate, *, int frame_ms=20, int channels=1, int target_ms=60,
                  int min_ms=20, int max_ms=1000, bint adaptive=True, object decoder=None):
        cdef int F
        if rate <= 0:
            raise ValueError(f"rate must be a positive number of Hz, not {rate}")
        if frame_ms <= 0:
            raise ValueError(f"frame_ms must be positive, not {frame_ms}")
        if channels <= 0 or channels > 255:
            raise ValueError(f"channels must be 1 to 255, not {channels}")
        if <int64_t>rate * frame_ms % 1000:
            raise ValueError(f"frame_ms={frame_ms} is not a whole number of samples at "
                             f"{rate} Hz")
        if not (0 <= min_ms <= target_ms <= <int64_t>max_ms - frame_ms):
            raise ValueError(f"need 0 <= min_ms <= target_ms <= max_ms - frame_ms, got "
                             f"min_ms={min_ms}, target_ms={target_ms}, max_ms={max_ms}, "
                             f"frame_ms={frame_ms}")
        if <int64_t>rate * frame_ms // 1000 * channels * 2 > 1 << 24:
            raise ValueError("frames larger than 16 MiB are not supported")
        if <int64_t>max_ms // frame_ms > 1 << 22:
            raise ValueError("max_ms holds more than 4194304 frames")
        if decoder is not None:
            for name in ("decode", "conceal", "decode_fec", "reset"):
                if not callable(getattr(decoder, name, None)):
                    raise TypeError(f"decoder has no {name}() method")
            if rate not in OPUS_RATES:
                raise ValueError(f"with a decoder, rate must be one of {OPUS_RATES}, not "
                                 f"{rate}")
            if frame_ms * 2 % 5:
                raise ValueError(f"with a decoder, frame_ms must be a multiple of 2.5 ms, "
                                 f"not {frame_ms}")
            if getattr(decoder, "rate", rate) != rate:
                raise ValueError(f"the decoder decodes at {decoder.rate} Hz, the queue plays "
                                 f"at {rate} Hz")
            if getattr(decoder, "channels", channels) != channels:
                raise ValueError(f"the decoder has {decoder.channels} channel(s), the queue "
                                 f"{channels}")
            self._dec_decode = decoder.decode
            self._dec_conceal = decoder.conceal
            self._dec_fec = decoder.decode_fec
            self._dec_reset = decoder.reset
            if type(decoder) is OpusDecoder:
                self._opus = <OpusDecoder>decoder   # decoded in C, no Python call per frame
        self.rate = rate
        self.frame_ms = frame_ms
        self.channels = channels
        self.min_ms = min_ms
        self.max_ms = max_ms
        self.adaptive = adaptive
        self.decoder = decoder
        F = frame_ms
        self._fs = rate * frame_ms // 1000
        self._n = self._fs * channels
        self._fb = 2 * self._n
        self._max_frames = max_ms // F
        self._min_frames = (min_ms + F - 1) // F
        self._L = (target_ms + F - 1) // F
        self._win_len = max(1, WINDOW_MS // F)
        self._step = max(1, STEP_MS // F)
        self._flush = max(1, FLUSH_MS // F)
        self._history = max(1, HISTORY_MS // F)
        self._plc_frames = max(1, PLC_MS // F)
        self._spurt_gap = max(1, SPURT_GAP_MS // F)
        self._xf = min(<int64_t>rate * XFADE_MS // 1000, self._fs)
        self._h = max(1, self._xf // 2)
        self._w_up = _raised_cosine(self._xf)
        self._t_up = _raised_cosine(self._h)
        self._hist = <double*>calloc(<size_t>self._max_frames + 1, sizeof(double))
        self._state = <uint8_t*>calloc(<size_t>self._max_frames, 1)
        self._tag = <int64_t*>malloc(<size_t>self._max_frames * 2 * sizeof(int64_t))
        if self._hist == NULL or self._state == NULL or self._tag == NULL:
            raise MemoryError()
        self._clear_tags()
        self._objs = [None] * self._max_frames
        if decoder is not None:
            self._pend_cap = 120 // F + 1
            self._pend = <uint8_t*>malloc(<size_t>self._pend_cap * self._fb)
            self._scratch = <uint8_t*>malloc(<size_t>self._fb)
            if self._pend == NULL or self._scratch == NULL:
                raise MemoryError()
        self._last = bytes(self._fb)
        self._seq_bits = 16
        self._fresh = True
        self._win_valid = False
        self._lo_cur = BIG
        self._hi_cur = -BIG
        self._last_step = -BIG
        self._last_push_tick = -1
        self._bounds = []
        self._next_bound = INT64_MAX

    def __dealloc__(self):
        free(self._w_up)
        free(self._t_up)
        free(self._hist)
        free(self._state)
        free(self._tag)
        free(self._pend)
        free(self._scratch)

    # ================================================================ samples out

    cdef inline bytes _emit_real(self, const uint8_t* x):
        cdef bytes out = PyBytes_FromStringAndSize(NULL, self._fb)
        cdef uint8_t* o = <uint8_t*>PyBytes_AS_STRING(out)
        if self._continuous:
            memcpy(o, x, <size_t>self._fb)
        else:
            ac_jit_transition(<const uint8_t*>PyBytes_AS_STRING(self._last), x, self._fs,
                              self.channels, self._fs, self._t_up, self._h, o)
        return self._emitted(out, True)

    cdef inline bytes _emitted(self, bytes out, bint continuous):
        """Remember out as the last frame returned (the mirror source of what follows)."""
        self._last = out
        self._continuous = continuous
        return out

    cdef bytes _emit_fade(self):
        cdef bytes out = PyBytes_FromStringAndSize(NULL, self._fb)
        cdef const uint8_t* last = <const uint8_t*>PyBytes_AS_STRING(self._last)
        if ac_jit_is_silent(last, <size_t>self._fb):
            memset(PyBytes_AS_STRING(out), 0, <size_t>self._fb)
        else:
            ac_jit_fade(last, self._fs, self.channels, self._w_up, self._xf,
                        <uint8_t*>PyBytes_AS_STRING(out))
        return self._emitted(out, False)

    cdef bytes _emit_insert(self):
        cdef bytes out = PyBytes_FromStringAndSize(NULL, self._fb)
        ac_jit_mirror(<const uint8_t*>PyBytes_AS_STRING(self._last), self._fs, self.channels,
                      <uint8_t*>PyBytes_AS_STRING(out))
        return self._emitted(out, False)

    cdef bytes _emit_partial(self, const uint8_t* x, int p):
        cdef bytes out = PyBytes_FromStringAndSize(NULL, self._fb)
        cdef uint8_t* o = <uint8_t*>PyBytes_AS_STRING(out)
        cdef const uint8_t* last = <const uint8_t*>PyBytes_AS_STRING(self._last)
        if self._continuous:
            memcpy(o, x, <size_t>p * self.channels * 2)
        else:
            ac_jit_transition(last, x, self._fs, self.channels, p, self._t_up, self._h, o)
        ac_jit_tail(last, o, self._fs, self.channels, p, self._w_up, self._xf)
        return self._emitted(out, False)

    # ---- the decoder: C calls for an audiocore OpusDecoder, its Python methods otherwise.
    # Each writes PCM16LE into out and returns 1, or 0 when the decoder raised AudioCoreError
    # or ValueError or produced another length (counted in errors; the caller conceals).

    cdef int _py_into(self, object fn, object a, object b, int frames, uint8_t* out) except -1:
        cdef InBuf buf
        try:
            pcm = fn(a) if b is None else fn(a, b)
        except (AudioCoreError, ValueError):
            self._errors += 1
            return 0
        if not isinstance(pcm, (bytes, bytearray)):
            self._errors += 1
            return 0
        in_acquire(pcm, &buf)
        try:
            if buf.len != <Py_ssize_t>frames * self._fb:
                self._errors += 1
                return 0
            memcpy(out, buf.ptr, <size_t>buf.len)
        finally:
            in_release(&buf)
        return 1

    cdef int _decode_into(self, object packet, int frames, uint8_t* out) except -1:
        cdef int got
        if self._opus is None:
            return self._py_into(self._dec_decode, packet, None, frames, out)
        try:
            got = self._opus.c_decode(<const unsigned char*>PyBytes_AS_STRING(packet),
                                      PyBytes_GET_SIZE(packet), <short*>out,
                                      frames * self._fs, False)
        except (AudioCoreError, ValueError):
            self._errors += 1
            return 0
        if got != frames * self._fs:
            self._errors += 1
            return 0
        ac_jit_native_to_le(out, <size_t>frames * self._n)
        return 1

    cdef int _conceal_into(self, uint8_t* out) except -1:
        if self._opus is None:
            return self._py_into(self._dec_conceal, self._fs, None, 1, out)
        try:
            self._opus.c_conceal(<short*>out, self._fs)
        except (AudioCoreError, ValueError):
            self._errors += 1
            return 0
        ac_jit_native_to_le(out, <size_t>self._n)
        return 1

    cdef int _fec_into(self, object packet, uint8_t* out) except -1:
        if self._opus is None:
            return self._py_into(self._dec_fec, packet, self._fs, 1, out)
        try:
            self._opus.c_decode(<const unsigned char*>PyBytes_AS_STRING(packet),
                                PyBytes_GET_SIZE(packet), <short*>out, self._fs, True)
        except (AudioCoreError, ValueError):
            self._errors += 1
            return 0
        ac_jit_native_to_le(out, <size_t>self._n)
        return 1

    cdef bytes _conceal(self):
        """One frame standing for missing audio: decoder PLC first, then a fade to silence."""
        cdef bytes out
        if self.decoder is not None and self._started and self._plc_run <= self._plc_frames:
            self._plc_run += 1
            if not self._conceal_into(self._scratch):
                self._plc_run = self._plc_frames + 1
                return self._emit_fade()
            if self._plc_run <= self._plc_frames:
                return self._emit_real(self._scratch)
            # the last decoder frame fades to silence; silence follows
            ac_jit_fade_out(self._scratch, self._fs, self.channels, self._w_up, self._xf)
            out = self._emit_real(self._scratch)
            self._continuous = False
            return out
        return self._emit_fade()

    # ================================================================ estimator

    cdef inline void _sample(self, int64_t value) noexcept:
        if not self.adaptive:
            return
        if not self._tick_has or value > self._tick_max:
            self._tick_max = value
        self._tick_has = True

    cdef void _prior(self) noexcept:
        cdef int64_t b = self._L if self._mode == M_STREAM else self._L - 1
        if b > self._max_frames:
            b = self._max_frames
        if b < 0:
            b = 0
        self._hist[b] = 1.0
        self._total = 1.0
        self._nsamples = 1

    cdef void _fold(self) noexcept:
        cdef int64_t b, i, q, nb
        cdef double alpha, w, goal, acc, scale
        if not self._tick_has:
            return
        self._tick_has = False
        nb = self._max_frames + 1
        b = self._tick_max if self._tick_max < self._max_frames else self._max_frames
        # each new sample weighs 1/(n+1) of the total (a plain mean) until that falls to
        # 1 - FORGET, then exactly that (exponential forgetting)
        if self._nsamples < RAMP:
            w = self._total / self._nsamples
        else:
            w = self._total * STEADY
        self._hist[b] += w
        self._total += w
        self._nsamples += 1
        if self._total > 1e150:
            scale = 1.0 / self._total
            for i in range(nb):
                self._hist[i] = self._hist[i] * scale
            self._total = 1.0
        goal = QUANTILE * self._total
        acc = 0.0
        q = nb - 1
        for i in range(nb):
            acc += self._hist[i]
            if acc >= goal:
                q = i
                break
        if self._mode != M_STREAM:
            q += 1
        if q > self._max_frames - 1:
            q = self._max_frames - 1
        if q < self._min_frames:
            q = self._min_frames
        self._L = <int>q

    cdef inline void _expire(self) noexcept:
        while self._dq_len and self._dq_tick[self._dq_head] < self._tick - self._history:
            self._dq_head = (self._dq_head + 1) & (DEQUE_MAX - 1)
            self._dq_len -= 1

    cdef void _arrival(self, int64_t frame) noexcept:
        cdef int64_t d = self._tick - frame
        self._expire()
        while self._dq_len and self._dq_d[(self._dq_head + self._dq_len - 1) & (DEQUE_MAX - 1)] >= d:
            self._dq_len -= 1
        if self._dq_len == DEQUE_MAX:
            self._dq_head = (self._dq_head + 1) & (DEQUE_MAX - 1)
            self._dq_len -= 1
        cdef int i = (self._dq_head + self._dq_len) & (DEQUE_MAX - 1)
        self._dq_tick[i] = self._tick
        self._dq_d[i] = d
        self._dq_len += 1
        self._sample(d - self._dq_d[self._dq_head])

    # ================================================================ items

    cdef inline int64_t _position(self) noexcept:
        return self._pos if self._mode == M_STREAM else self._P

    cdef inline int _sync_item(self) except -1:
        if self._next_bound != INT64_MAX and self._position() >= self._next_bound:
            self._sync_item_slow()
        return 0

    cdef int _sync_item_slow(self) except -1:
        cdef int64_t pos = self._position()
        while self._bounds and pos >= self._next_bound:
            at, item = self._bounds.pop(0)
            self._item_start = at
            self.item = item
            self._next_bound = self._bounds[0][0] if self._bounds else INT64_MAX
        return 0

    # ================================================================ push

    def push(self, payload, seq=None, timestamp=None) -> bool:
        """Queue ``payload``; returns False when it was dropped (a duplicate, or late: older
        than the playout point), True when it was queued (possibly pushing out the oldest
        audio to stay within max_ms).

        Without ``seq`` and ``timestamp`` PCM payloads form a byte stream (any whole number
        of samples; rechunked into frames, never declared lost). With ``seq`` (a 16-bit
        counter, unwrapped, or 32-bit once a value above 65535 is seen) or ``timestamp`` (the
        sender's media time of the first sample, in ms) each payload is one packet of whole
        frames placed on the playout timeline. With a decoder, payloads are Opus packets,
        taken in arrival order when neither is given. A queue keeps the kind its first push
        had. The payload is copied (PCM) or referenced as bytes (Opus).
        """
        cdef InBuf b
        cdef int kind
        cdef int64_t s = 0, t = 0
        if timestamp is not None:
            kind = M_TS
            t = self._int64(timestamp, "timestamp", -(1 << 60), 1 << 60)
        elif seq is not None:
            kind = M_SEQ
        else:
            kind = M_STREAM if self.decoder is None else M_AUTO
        if seq is not None:
            s = self._int64(seq, "seq", 0, 1 << 32)
        if self._mode != M_NONE and self._mode != kind:
            raise ValueError(f"this queue is fed in {_MODE_NAMES[self._mode]} mode; a push "
                             f"{'with timestamp' if kind == M_TS else 'with seq' if kind == M_SEQ else 'without seq or timestamp'} cannot be mixed in")
        # PCM (2-D as (frames, channels) too) or, with a decoder, packets
        pcm_acquire(payload, &b, self.channels if self.decoder is None else 0)
        try:
            return self.c_push(b.ptr, b.len, payload, kind, s, t) == 1
        finally:
            in_release(&b)

    cdef int64_t _int64(self, object v, str name, int64_t lo, int64_t hi) except? -1:
        cdef int64_t r
        if not PyLong_CheckExact(v):
            v = PyNumber_Index(v)
        try:
            r = PyLong_AsLongLong(v)
        except OverflowError:
            raise ValueError(f"{name} must be in [{lo}, {hi}), not {v}") from None
        if r < lo or r >= hi:
            raise ValueError(f"{name} must be in [{lo}, {hi}), not {v}")
        return r

    cdef int c_push(self, const uint8_t* data, Py_ssize_t n, object payload, int kind,
                    int64_t seq, int64_t ts) except -1:
        if kind == M_STREAM:
            return self._push_stream(data, n)
        return self._push_packet(data, n, payload, kind, seq, ts)

    cdef int _push_stream(self, const uint8_t* data, Py_ssize_t n) except -1:
        cdef int64_t fb = self._fb, cap, held, k, nb, o, starved
        if n % (2 * self.channels):
            raise ValueError(f"a stream push must hold whole samples: {n} bytes is not a "
                             f"multiple of {2 * self.channels}")
        if self._mode == M_NONE:
            self._ring = RingBuffer(<Py_ssize_t>self._max_frames * self._fb, "error")
            self._mode = M_STREAM
            self._prior()
        held = self._ring._size
        if self._starving:
            self._starving = False
            starved = self._tick - self._starve_tick
            if starved <= self._spurt_gap:
                self._sample(self._L + starved)
        elif self._playing:
            k = self._L - held // fb
            self._sample(k if k > 0 else 0)
        cap = <int64_t>self._max_frames * fb
        if held + n > cap:
            if n >= cap:
                self._dropped += (held + fb - 1) // fb
                self._pos += held
                self._ring.c_skip(<Py_ssize_t>held)
                o = (n - cap + fb - 1) // fb * fb
                self._dropped += o // fb
                self._pos += o
                data += o
                n -= o
            else:
                k = (held + n - cap + fb - 1) // fb
                nb = k * fb if k * fb < held else held
                self._dropped += (nb + fb - 1) // fb
                self._pos += nb
                self._ring.c_skip(<Py_ssize_t>nb)
            if self._playing:
                self._continuous = False
            self._sync_item()
        self._ring.c_write(data, n)
        self._received += 1
        self._last_push_tick = self._tick
        return 1

    cdef inline int64_t _si(self, int64_t f) noexcept:
        """Slot of frame f, for P <= f < P + max_frames (no division: an offset from P's)."""
        cdef int64_t i = self._pi + (f - self._P)
        return i - self._max_frames if i >= self._max_frames else i

    cdef inline int64_t _ti(self, int64_t f) noexcept:
        """Tag of frame f, for P - max_frames <= f < P + max_frames."""
        cdef int64_t i = self._pti + (f - self._P), m2 = 2 * <int64_t>self._max_frames
        if i < 0:
            return i + m2
        return i - m2 if i >= m2 else i

    cdef inline void _set_P(self, int64_t p) noexcept:
        if p == self._P + 1:
            self._pi += 1
            if self._pi == self._max_frames:
                self._pi = 0
            self._pti += 1
            if self._pti == 2 * <int64_t>self._max_frames:
                self._pti = 0
        else:
            self._pi = _fmod(p, self._max_frames)
            self._pti = _fmod(p, 2 * <int64_t>self._max_frames)
        self._P = p

    cdef inline bint _has(self, int64_t f) noexcept:
        """Whether frame f holds audio (False outside the live window)."""
        return f >= self._P and f < self._P + self._max_frames \
            and self._state[self._si(f)] != S_EMPTY

    cdef void _clear_tags(self) noexcept:
        cdef int64_t i
        for i in range(2 * <int64_t>self._max_frames):
            self._tag[i] = -BIG * 4   # never a frame number

    cdef int _push_packet(self, const uint8_t* data, Py_ssize_t n, object payload, int kind,
                          int64_t seq, int64_t ts) except -1:
        cdef int64_t nframes, s48, samples, ext = 0, m, delta, start, end, mf, f, i, lim
        cdef int bits = 0
        cdef bint first
        cdef object pkt = None
        # ---- validation: nothing changes before this block is through
        if self.decoder is not None:
            s48 = packet_samples48(data, n)       # DecodeError naming the bad byte
            samples = s48 * self.rate // 48000
            if samples % self._fs:
                raise ValueError(f"an Opus packet of {s48 / 48:g} ms is not a whole number of "
                                 f"{self.frame_ms} ms frames")
            nframes = samples // self._fs
        elif n == self._fb:
            nframes = 1
        else:
            if n == 0 or n % self._fb:
                raise ValueError(f"a packet must be a whole number of {self.frame_ms} ms "
                                 f"frames ({self._fb} bytes each), not {n} bytes")
            nframes = n // self._fb
        if nframes > self._max_frames:
            raise ValueError(f"a packet of {nframes * self.frame_ms} ms does not fit in "
                             f"max_ms={self.max_ms}")
        if kind == M_SEQ:
            bits = 32 if seq > 0xFFFF else self._seq_bits
            if not self._has_ext:
                ext = seq
            else:
                m = <int64_t>1 << bits
                delta = (seq - self._ext_hi) & (m - 1)
                if delta >= m // 2:
                    delta -= m
                ext = self._ext_hi + delta
            if self._fpp and nframes != self._fpp:
                raise ValueError(f"this packet holds {nframes} frame(s), the stream's packets "
                                 f"{self._fpp}: pass timestamp= when packet durations vary")
        first = self._mode == M_NONE
        if kind == M_SEQ:
            start = 0 if first else (ext - self._ext0) * self._fpp
        elif kind == M_TS:
            start = 0 if first else ac_jit_floordiv(2 * (ts - self._ts0) + self.frame_ms,
                                                    2 * <int64_t>self.frame_ms)
        else:
            start = self._end if self._end > self._P else self._P
        if self.decoder is not None:
            pkt = payload if PyBytes_CheckExact(payload) else PyBytes_FromStringAndSize(<const char*>data, n)
        # ---- commit
        if first:
            self._mode = kind
            self._prior()
            if kind == M_SEQ:
                self._ext0 = ext
                self._fpp = <int>nframes
            elif kind == M_TS:
                self._ts0 = ts
        if kind == M_SEQ:
            self._seq_bits = bits
            if not self._has_ext or ext > self._ext_hi:
                self._ext_hi = ext
                self._has_ext = True
        end = start + nframes
        mf = self._max_frames
        if start < self._P and self._fresh \
                and end - (start if start < self._P else self._P) <= mf \
                and (self._end if self._end > end else end) - start <= mf:
            if self._item_start == self._P:
                self._item_start = start
            self._set_P(start)
        if start < self._P and self._P - mf <= start:
            lim = end if end < self._P else self._P
            f = start
            while f < lim and self._tag[self._ti(f)] == f:
                f += 1
            if f == lim:
                self._duplicate += 1
                return 0
        if start < self._P:
            if start < self._P - mf and self._has_far and self._far_late_end == start:
                self._resync(start)
            else:
                self._has_far = start < self._P - mf
                self._far_late_end = end
                self._arrival(start)
                self._late += 1
                return 0
        self._has_far = False
        if start >= self._P + mf:
            self._resync(start)
        for f in range(start, end):
            if self._has(f):
                self._duplicate += 1
                return 0
        self._arrival(start)
        if end > self._P + mf:
            self._drop_to(end - mf, False)
            if self._playing:
                self._continuous = False
        for f in range(start, end):
            self._tag[self._ti(f)] = f
        if self.decoder is not None:
            i = self._si(start)
            self._state[i] = S_START
            self._objs[i] = pkt
            for f in range(start + 1, end):
                self._state[self._si(f)] = S_CONT
        elif nframes == 1 and PyBytes_CheckExact(payload):
            # a frame of bytes is kept as it is, and returned as it is when played unaltered
            i = self._si(start)
            self._state[i] = S_START
            self._objs[i] = payload
        else:
            for f in range(nframes):
                i = self._si(start + f)
                self._state[i] = S_START if f == 0 else S_CONT
                self._objs[i] = PyBytes_FromStringAndSize(<const char*>data + f * self._fb,
                                                          self._fb)
        self._present += nframes
        if end > self._end:
            self._end = end
        self._received += 1
        self._sync_item()
        return 1

    cdef int _resync(self, int64_t start) except -1:
        cdef int64_t f
        self._dropped += self._present
        memset(self._state, 0, <size_t>self._max_frames)
        self._objs = [None] * self._max_frames
        self._present = 0
        self._clear_tags()
        self._pend_n = 0
        self._set_P(start)
        self._end = start
        self._playing = False
        self._fresh = True
        self._expanded = 0
        self._dq_len = 0
        self._has_far = False
        if self._dec_reset is not None:
            self._dec_reset()
        self._reset_windows()
        self._sync_item()
        return 0

    cdef inline void _free_slot(self, int64_t f) noexcept:
        cdef int64_t i = self._si(f)
        if self._state[i] != S_EMPTY:
            self._state[i] = S_EMPTY
            self._present -= 1
            self._objs[i] = None

    cdef int _drop_to(self, int64_t new_p, bint drained) except -1:
        """Advance the playout point to new_p, discarding what lies before it. With a
        decoder, the last WARM_PACKETS packets cut are decoded (the audio discarded) so that
        the decoder's history runs up to the audio played next."""
        cdef int64_t f, cnt = 0, g, nframes
        cdef int warm = 0
        if self.decoder is not None:
            f = new_p - 1
            while f >= self._P and warm < WARM_PACKETS:
                if self._state[self._si(f)] == S_START:
                    warm += 1
                f -= 1
            for g in range(f + 1, new_p):   # the last `warm` packets, oldest first
                if self._state[self._si(g)] == S_START:
                    nframes = 1
                    while g + nframes < new_p + self._max_frames and self._has(g + nframes) \
                            and self._state[self._si(g + nframes)] == S_CONT:
                        nframes += 1
                    self._decode_into(self._objs[self._si(g)], <int>nframes, self._pend)
            self._pend_n = 0
        for f in range(self._P, new_p):
            if self._state[self._si(f)] != S_EMPTY:
                cnt += 1
                self._free_slot(f)
        if drained:
            self._drained += new_p - self._P
        else:
            self._dropped += cnt
        self._set_P(new_p)
        if self._end < self._P:
            self._end = self._P
        self._sync_item()
        return 0

    # ================================================================ pop

    def pop(self) -> bytes:
        """Return the next frame (exactly ``frame_ms`` of PCM16LE): real audio, or
        concealment (decoder PLC or FEC, else a short fade to silence, then silence). Never
        blocks and never waits: one call is one tick of the playout clock."""
        return self.c_pop()

    cdef bytes c_pop(self):
        cdef bytes out
        self._fold()
        if self._mode == M_STREAM:
            out = self._pop_stream()
        elif self._mode != M_NONE:
            out = self._pop_packet()
        else:
            self._idle += 1
            out = self._emit_fade()
        self._tick += 1
        return out

    cdef bytes _take(self, int64_t n):
        """The oldest n bytes of the stream, as played."""
        cdef bytes out = PyBytes_FromStringAndSize(NULL, n)
        self._ring.c_peek(<uint8_t*>PyBytes_AS_STRING(out), <Py_ssize_t>n)
        self._ring.c_skip(<Py_ssize_t>n)
        self._pos += n
        self._played += 1
        return out

    cdef bytes _pop_stream(self):
        cdef int64_t fb = self._fb, held = self._ring._size, need
        cdef bytes out, part
        if not self._playing:
            need = (self._L if self._L > 1 else 1) * fb
            if held >= need or (held > 0 and self._last_push_tick < self._tick):
                self._playing = True
                self._started = True
            else:
                self._idle += 1
                return self._emit_fade()
        if held >= fb:
            out = self._take(fb)
            if self._continuous:
                self._last = out
            else:
                out = self._emit_real(<const uint8_t*>PyBytes_AS_STRING(out))
        else:
            self._playing = False
            self._starving = True
            self._starve_tick = self._tick
            if held:
                part = self._take(held)
                out = self._emit_partial(<const uint8_t*>PyBytes_AS_STRING(part),
                                         <int>(held // (2 * self.channels)))
            else:
                self._idle += 1
                out = self._emit_fade()
        self._sync_item()
        return out

    cdef void _reset_windows(self) noexcept:
        self._win_valid = False
        self._lo_cur = BIG
        self._hi_cur = -BIG
        self._win_n = 0
        self._over = 0

    cdef void _window(self, int64_t x) noexcept:
        if x < self._lo_cur:
            self._lo_cur = x
        if x > self._hi_cur:
            self._hi_cur = x
        self._win_n += 1
        if self._win_n >= self._win_len:
            self._over = self._over + 1 if self._lo_cur >= 2 else 0
            self._lo_prev = self._lo_cur
            self._hi_prev = self._hi_cur
            self._win_valid = True
            self._lo_cur = BIG
            self._hi_cur = -BIG
            self._win_n = 0

    cdef void _shift_windows(self, int64_t d) noexcept:
        if self._win_valid:
            self._lo_prev += d
            self._hi_prev += d
        if self._win_n:
            self._lo_cur += d
            self._hi_cur += d

    cdef inline bint _age(self, int64_t* age) noexcept:
        """Ticks since the frame at the playout point was due, judged by the fastest arrivals
        of the last HISTORY_MS; False when nothing arrived that recently."""
        self._expire()
        if not self._dq_len:
            return False
        age[0] = self._tick - (self._P + self._dq_d[self._dq_head])
        return True

    cdef int _content(self, const uint8_t** frame) except -1:
        """Point frame at the samples at P (decoding its packet when it starts there):
        1, or 0 when they cannot be had (a decode error, or the middle of a skipped packet)."""
        cdef int64_t i = self._si(self._P), k
        cdef int nframes
        if self.decoder is None:
            self._cur = <bytes>self._objs[i]
            frame[0] = <const uint8_t*>PyBytes_AS_STRING(self._cur)
            return 1
        self._cur = None
        if self._state[i] == S_START:
            nframes = 1
            while self._has(self._P + nframes) and \
                    self._state[self._si(self._P + nframes)] == S_CONT:
                nframes += 1
            if not self._decode_into(self._objs[i], nframes, self._pend):
                self._pend_n = 0
                return 0
            self._pend_n = nframes
            self._pend_start = self._P
            self._plc_run = 0
        k = self._P - self._pend_start
        if k < 0 or k >= self._pend_n:
            return 0
        frame[0] = self._pend + k * self._fb
        return 1

    cdef int _advance(self) except -1:
        self._free_slot(self._P)
        self._set_P(self._P + 1)
        self._fresh = False
        self._sync_item()
        return 0

    cdef bytes _pop_packet(self):
        cdef int64_t L = self._L, S, age = 0, x, k, new_p, lo, hi
        cdef int64_t quiet = <int64_t>QUIET * self._n
        cdef bint has_x, step_ok
        cdef const uint8_t* frame = NULL
        cdef bytes out
        S = self._end - self._P
        if S < 0:
            S = 0
        has_x = self._age(&age)
        if not self._playing:
            if S and ((age >= L - 1) if has_x else (S >= L)):
                self._playing = True
                self._started = True
                self._reset_windows()
            else:
                if self._started:
                    self._concealed += 1
                else:
                    self._idle += 1
                return self._conceal()
        x = age - (L - 1)
        if has_x:
            self._window(x)
            if S and x > (L + 1 if L + 1 > self._flush else self._flush):
                new_p = self._P + x
                if new_p > self._end - 1:
                    new_p = self._end - 1
                self._drop_to(new_p, True)
                self._fresh = False
                self._continuous = False
                self._expanded = 0
                self._pend_n = 0
                self._reset_windows()
                self._age(&age)
                x = age - (L - 1)
        while True:
            S = self._end - self._P
            if not self._has(self._P):
                self._concealed += 1
                if S <= 0:
                    self._expanded += 1
                    return self._conceal()
                k = 1
                while k < S and not self._has(self._P + k):
                    k += 1
                if self._expanded >= k:
                    # the frames concealed while waiting already stood in for this gap
                    self._concealed -= 1
                    self._expanded -= k
                    self._lost += k
                    while k:
                        self._advance()
                        k -= 1
                        x -= 1
                    continue
                if (x >= 0) if has_x else (S >= L):
                    self._lost += 1
                    self._expanded = 0
                    out = self._conceal_lost()
                    self._advance()
                    return out
                self._expanded += 1
                return self._conceal()
            if not self._content(&frame):
                self._lost += 1
                self._concealed += 1
                self._expanded = 0
                out = self._conceal()
                self._advance()
                return out
            step_ok = self._tick - self._last_step >= self._step
            if self._win_valid:
                lo = self._lo_prev if self._lo_prev < self._lo_cur else self._lo_cur
                hi = self._hi_prev if self._hi_prev > self._hi_cur else self._hi_cur
                if lo >= 1 and self._has(self._P + 1) and self._droppable(frame, lo, step_ok):
                    self._drop_one()
                    x -= 1
                    continue
                if hi <= -1 and step_ok and <int64_t>ac_jit_energy(
                        <const uint8_t*>PyBytes_AS_STRING(self._last), <size_t>self._n) < quiet:
                    self._last_step = self._tick
                    self._inserted += 1
                    self._shift_windows(1)
                    return self._emit_insert()
            self._played += 1
            self._plc_run = 0
            self._expanded = 0
            if self._continuous and self._cur is not None:
                out = self._cur         # the pushed frame itself: no copy
                self._last = out
            else:
                out = self._emit_real(frame)
            self._cur = None
            self._advance()
            return out

    cdef bint _droppable(self, const uint8_t* frame, int64_t lo, bint step_ok) noexcept:
        """Whether to drop the frame at P to cut an excess of lo frames that has lasted (see
        the reference): quiet frames first, then dips, then any frame."""
        cdef int64_t energy, around, e
        cdef const uint8_t* nxt
        if ac_jit_quiet(frame, <size_t>self._n, <uint64_t>QUIET * self._n):
            return True
        if not step_ok or lo < 2:
            return False
        energy = <int64_t>ac_jit_energy(frame, <size_t>self._n)
        if self._over >= 1:
            around = <int64_t>ac_jit_energy(<const uint8_t*>PyBytes_AS_STRING(self._last),
                                            <size_t>self._n)
            nxt = self._peek_next()
            if nxt != NULL:
                e = <int64_t>ac_jit_energy(nxt, <size_t>self._n)
                if e > around:
                    around = e
            if 4 * energy <= around:
                self._last_step = self._tick
                return True
        if lo >= 3 or self._over >= 3:
            self._last_step = self._tick
            return True
        return False

    cdef const uint8_t* _peek_next(self) noexcept:
        """The samples of the frame at P + 1 when at hand without decoding, else NULL."""
        cdef int64_t i = self._si(self._P + 1), k
        if self.decoder is None:
            return <const uint8_t*>PyBytes_AS_STRING(<bytes>self._objs[i])
        k = self._P + 1 - self._pend_start
        if self._state[i] == S_CONT and 0 <= k < self._pend_n:
            return self._pend + k * self._fb
        return NULL

    cdef int _drop_one(self) except -1:
        self._drained += 1
        self._continuous = False
        self._expanded = 0
        self._shift_windows(-1)
        self._advance()
        return 0

    cdef bytes _conceal_lost(self):
        cdef int64_t i
        if self.decoder is not None and self._has(self._P + 1):
            i = self._si(self._P + 1)
            if self._state[i] == S_START and self._fec_into(self._objs[i], self._scratch):
                self._recovered += 1
                self._plc_run = 0
                return self._emit_real(self._scratch)
        return self._conceal()

    # ================================================================ barge-in, items

    def clear(self, bint fade=True) -> int:
        """Drop everything queued at once (barge-in) and return the milliseconds of the
        current item played so far (``played_ms`` before the call); late packets of the
        dropped audio count as late.

        ``fade=True`` suits an output that keeps playing what it is given: the next pops fade
        out from the last frame returned, so the cut does not click. ``fade=False`` suits a
        sink that flushed its own playback (ACS StopAudio, Twilio clear): nothing of the old
        audio comes out again; the next pops are silence and new audio fades in from it."""
        cdef int64_t played = self.played_ms
        if not fade:
            self._last = bytes(self._fb)
            self._continuous = False
        self._bounds = []
        self._next_bound = INT64_MAX
        self.item = None
        if self._mode == M_STREAM:
            self._pos += self._ring._size
            self._ring.c_skip(self._ring._size)
            self._starving = False
        elif self._mode != M_NONE:
            memset(self._state, 0, <size_t>self._max_frames)
            self._objs = [None] * self._max_frames
            self._present = 0
            self._pend_n = 0
            if self._end > self._P:
                self._set_P(self._end)
            else:
                self._end = self._P
            self._fresh = False
            self._expanded = 0
            if self._dec_reset is not None:
                self._dec_reset()
            self._reset_windows()
        self._playing = False
        self._started = False
        self._item_start = self._position()
        return played

    def mark(self, item) -> None:
        """Start a new item (a response): audio pushed from now on belongs to ``item`` (any
        object, e.g. an item id). ``item`` becomes current when playout reaches it."""
        cdef int64_t at
        if self._mode == M_STREAM:
            at = self._pos + self._ring._size
        else:
            at = self._end if self._end > self._P else self._P
        if self._bounds and self._bounds[len(self._bounds) - 1][0] == at:
            self._bounds[len(self._bounds) - 1] = (at, item)
        else:
            self._bounds.append((at, item))
        self._next_bound = self._bounds[0][0]
        self._sync_item()

    @property
    def played_ms(self) -> int:
        """Milliseconds of the current ``item`` played so far: the position playout has
        reached inside it (audio played, concealment standing in for lost packets, audio
        skipped to reduce latency). Not counted: pre-roll, silence while waiting for late
        audio, anything after a clear()."""
        cdef int64_t d
        if self._mode == M_STREAM:
            return (self._pos - self._item_start) // (2 * self.channels) * 1000 // self.rate
        d = self._P - self._item_start
        return (d if d > 0 else 0) * self.frame_ms

    @property
    def buffered_ms(self) -> int:
        """Milliseconds queued ahead of the playout point (packet modes: the span from the
        playout point to the newest packet, gaps included)."""
        cdef int64_t d
        if self._mode == M_STREAM:
            return self._ring._size // (2 * self.channels) * 1000 // self.rate
        d = self._end - self._P
        return (d if d > 0 else 0) * self.frame_ms

    @property
    def target_ms(self) -> int:
        """The current target in ms (packet modes: the longest an on-time packet waits;
        stream mode: the audio gathered before playout starts)."""
        return self._L * self.frame_ms

    @property
    def frame_bytes(self) -> int:
        """Bytes of each popped frame."""
        return self._fb

    @property
    def mode(self):
        """None until the first push, then "stream", "seq", "timestamp" or "auto"."""
        return _MODE_NAMES[self._mode]

    @property
    def playing(self) -> bool:
        """Whether playout is under way (False while gathering the target first)."""
        return self._playing

    @property
    def stats(self) -> dict:
        """Counters since creation (see docs/jitter.md): pushes ``received``, ``late``,
        ``duplicate``; frames ``played``, ``concealed``, ``lost``, ``recovered`` (by FEC),
        ``inserted``, ``idle``, ``dropped`` (over max_ms), ``drained`` (to cut latency);
        decoder ``errors``; and the current ``target_ms``."""
        return {
            "received": self._received, "played": self._played,
            "concealed": self._concealed, "lost": self._lost, "recovered": self._recovered,
            "inserted": self._inserted, "idle": self._idle, "late": self._late,
            "duplicate": self._duplicate, "dropped": self._dropped, "drained": self._drained,
            "errors": self._errors, "target_ms": self._L * self.frame_ms,
        }

    def __repr__(self) -> str:
        return (f"JitterQueue({self.rate}, frame_ms={self.frame_ms}, channels={self.channels}, "
                f"mode={self.mode!r}) target {self.target_ms} ms, buffered {self.buffered_ms} ms")

    def __reduce__(self):
        raise TypeError("JitterQueue cannot be pickled")
