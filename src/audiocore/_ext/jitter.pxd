# The JitterQueue type, for cimport by kernels that feed or drain a playout queue in C
# (a fused protocol path, say). c_push / c_pop behave exactly as push / pop.

from libc.stdint cimport int32_t, int64_t, uint8_t

from audiocore._ext.opus cimport OpusDecoder
from audiocore._ext.ring cimport RingBuffer


cdef class JitterQueue:
    # configuration
    cdef readonly int rate
    cdef readonly int frame_ms
    cdef readonly int channels
    cdef readonly int min_ms
    cdef readonly int max_ms
    cdef readonly bint adaptive
    cdef readonly object decoder
    cdef object _dec_decode, _dec_conceal, _dec_fec, _dec_reset
    cdef OpusDecoder _opus                # the decoder, when it is audiocore's (C calls)
    cdef uint8_t* _scratch                # one frame from the decoder (PLC, FEC)
    cdef int _fs, _n, _fb                 # samples per channel, samples, bytes per frame
    cdef int _max_frames, _min_frames, _L
    cdef int _win_len, _step, _flush, _history, _plc_frames, _spurt_gap
    cdef int _xf, _h
    cdef int32_t* _w_up                   # fade weights, _xf of them
    cdef int32_t* _t_up                   # transition weights, _h of them
    # delay estimator
    cdef double* _hist
    cdef double _total
    cdef int64_t _nsamples
    cdef bint _tick_has
    cdef int64_t _tick_max
    cdef int64_t _dq_tick[256]
    cdef int64_t _dq_d[256]
    cdef int _dq_head, _dq_len
    cdef int64_t _tick
    cdef int _mode
    # output continuity
    cdef bytes _last                      # the last frame returned
    cdef bint _continuous
    cdef int _plc_run
    # packet store: frames [_P, _P + _max_frames) live in slots (frame mod max_frames);
    # _tag remembers which recent frames were received (frame mod 2 max_frames)
    cdef int64_t _P, _end
    cdef int64_t _pi, _pti                # _P's slot and tag indices
    cdef uint8_t* _state
    cdef int64_t* _tag
    cdef list _objs                       # per slot: the frame's bytes (PCM) or packet (Opus)
    cdef bytes _cur                       # the PCM frame _content found at P
    cdef int64_t _present
    cdef uint8_t* _pend
    cdef int _pend_cap, _pend_n
    cdef int64_t _pend_start
    cdef int _fpp, _seq_bits
    cdef bint _has_ext
    cdef int64_t _ext_hi, _ext0, _ts0
    cdef bint _playing, _started, _fresh
    cdef bint _has_far
    cdef int64_t _far_late_end
    cdef bint _win_valid
    cdef int64_t _lo_prev, _hi_prev, _lo_cur, _hi_cur
    cdef int _win_n, _over
    cdef int64_t _expanded, _last_step
    # stream store
    cdef RingBuffer _ring
    cdef int64_t _pos, _last_push_tick, _starve_tick
    cdef bint _starving
    # playout tracker
    cdef list _bounds
    cdef int64_t _next_bound
    cdef readonly object item
    cdef int64_t _item_start
    # counters
    cdef int64_t _received, _played, _concealed, _lost, _recovered, _inserted, _idle
    cdef int64_t _late, _duplicate, _dropped, _drained, _errors

    cdef int c_push(self, const uint8_t* data, Py_ssize_t n, object payload, int kind,
                    int64_t seq, int64_t ts) except -1
    cdef bytes c_pop(self)

    # private steps (see jitter.pyx)
    cdef bytes _emit_real(self, const uint8_t* x)
    cdef bytes _emitted(self, bytes out, bint continuous)
    cdef bytes _emit_fade(self)
    cdef bytes _emit_insert(self)
    cdef bytes _emit_partial(self, const uint8_t* x, int p)
    cdef int _py_into(self, object fn, object a, object b, int frames, uint8_t* out) except -1
    cdef int _decode_into(self, object packet, int frames, uint8_t* out) except -1
    cdef int _conceal_into(self, uint8_t* out) except -1
    cdef int _fec_into(self, object packet, uint8_t* out) except -1
    cdef bytes _conceal(self)
    cdef void _sample(self, int64_t value) noexcept
    cdef void _prior(self) noexcept
    cdef void _fold(self) noexcept
    cdef void _expire(self) noexcept
    cdef void _arrival(self, int64_t frame) noexcept
    cdef int64_t _position(self) noexcept
    cdef int _sync_item(self) except -1
    cdef int _sync_item_slow(self) except -1
    cdef int64_t _int64(self, object v, str name, int64_t lo, int64_t hi) except? -1
    cdef int _push_stream(self, const uint8_t* data, Py_ssize_t n) except -1
    cdef int64_t _si(self, int64_t f) noexcept
    cdef int64_t _ti(self, int64_t f) noexcept
    cdef bint _has(self, int64_t f) noexcept
    cdef void _clear_tags(self) noexcept
    cdef int _push_packet(self, const uint8_t* data, Py_ssize_t n, object payload, int kind, int64_t seq, int64_t ts) except -1
    cdef int _resync(self, int64_t start) except -1
    cdef void _free_slot(self, int64_t f) noexcept
    cdef void _set_P(self, int64_t p) noexcept
    cdef int _drop_to(self, int64_t new_p, bint drained) except -1
    cdef bytes _take(self, int64_t n)
    cdef bytes _pop_stream(self)
    cdef void _reset_windows(self) noexcept
    cdef void _window(self, int64_t x) noexcept
    cdef void _shift_windows(self, int64_t d) noexcept
    cdef bint _age(self, int64_t* age) noexcept
    cdef int _content(self, const uint8_t** frame) except -1
    cdef int _advance(self) except -1
    cdef bytes _pop_packet(self)
    cdef bint _droppable(self, const uint8_t* frame, int64_t lo, bint step_ok) noexcept
    cdef const uint8_t* _peek_next(self) noexcept
    cdef int _drop_one(self) except -1
    cdef bytes _conceal_lost(self)
