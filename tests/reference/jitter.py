"""A plain-Python model of ``audiocore.JitterQueue``: the same decisions and the same integer
sample arithmetic, written to be read (lists, no tricks). The kernel must equal it frame for
frame and in every figure it reports; the acceptance properties themselves are checked by the
simulations in tests/test_jitter_sim.py against computations that do not come from here.

Time: each ``pop()`` is one tick of ``frame_ms``; a push between pop n-1 and pop n arrived at
tick n. Positions are in frames (packet modes) or bytes (stream mode).
"""

from __future__ import annotations

import math
from typing import Any

import operator

from audiocore import AudioCoreError, DecodeError
from reference import opus_packet

# Tuning, shared with the kernel (src/audiocore/_ext/jitter.pyx).
QUIET = 128               # a frame is quiet when its mean |sample| is below this
FORGET = 0.99             # histogram forgetting factor per sample (one sample per tick)
QUANTILE = 0.95           # target = this quantile of the relative arrival delay
HISTORY_MS = 2000         # relative delay is measured against the fastest packet of this span
WINDOW_MS = 500           # a level must persist this long before the queue acts on it
STEP_MS = 100             # at most one non-quiet drop or one insertion per this span
FLUSH_MS = 200            # excess beyond max(target + frame, this) is dropped at once
XFADE_MS = 10             # fades and crossfades (capped at one frame)
PLC_MS = 100              # decoder concealment this long, then a fade to silence
SPURT_GAP_MS = 500        # stream mode: a refill later than this starts a new talk spurt
DEQUE_MAX = 256           # entries of the running-minimum window of arrival delays
RAMP = 99                 # samples after which 1/(n+1) < 1 - FORGET
WARM_PACKETS = 2          # packets decoded (and discarded) when a cut skips Opus audio
STEADY = (1.0 - FORGET) / FORGET

EMPTY, START, CONT = 0, 1, 2
BIG = 1 << 40


def opus_samples48(packet: bytes) -> int:
    """Duration of an Opus packet in 48 kHz samples (tests/reference/opus_packet.py); a packet
    breaking RFC 6716's framing rules raises DecodeError, as the kernel does."""
    try:
        return opus_packet.samples48(packet)
    except opus_packet.Malformed as exc:
        raise DecodeError(f"invalid Opus packet: {exc}") from None


def _s16(b: bytes) -> list[int]:
    return [int.from_bytes(b[i : i + 2], "little", signed=True) for i in range(0, len(b), 2)]


def _b16(x: list[int]) -> bytes:
    return b"".join(v.to_bytes(2, "little", signed=True) for v in x)


def _raised_cosine(n: int) -> list[int]:
    """Q15 weights rising from near 0 to near 1 over n samples (half a cosine period)."""
    return [round(32768 * 0.5 * (1 - math.cos(math.pi * (k + 1) / (n + 1)))) for k in range(n)]


def _mix(a: int, b: int, w_up: int) -> int:
    """(a fading out, b fading in) with weights (32768 - w_up, w_up), rounded, floor shift."""
    return (a * (32768 - w_up) + b * w_up + 16384) >> 15


class ModelJitterQueue:
    def __init__(self, rate: int, *, frame_ms: int = 20, channels: int = 1, target_ms: int = 60,
                 min_ms: int = 20, max_ms: int = 1000, adaptive: bool = True,
                 decoder: Any = None) -> None:
        if rate <= 0 or frame_ms <= 0 or channels <= 0:
            raise ValueError("rate, frame_ms and channels must be positive")
        if rate * frame_ms % 1000:
            raise ValueError("frame_ms must be a whole number of samples")
        if not 0 <= min_ms <= target_ms <= max_ms - frame_ms:
            raise ValueError("need 0 <= min_ms <= target_ms <= max_ms - frame_ms")
        self.rate, self.F, self.ch = rate, frame_ms, channels
        self.fs = rate * frame_ms // 1000
        self.n = self.fs * channels
        self.fb = 2 * self.n
        self.max_frames = max_ms // frame_ms
        self.min_frames = -(-min_ms // frame_ms)
        self.L = -(-target_ms // frame_ms)
        self.adaptive = adaptive
        self.decoder = decoder
        F = frame_ms
        self.window = max(1, WINDOW_MS // F)
        self.step = max(1, STEP_MS // F)
        self.flush = max(1, FLUSH_MS // F)
        self.history = max(1, HISTORY_MS // F)
        self.plc_frames = max(1, PLC_MS // F)
        self.spurt_gap = max(1, SPURT_GAP_MS // F)
        # fades to silence take xf samples; a transition fades the old continuation out over
        # h samples, then the new audio in over the next h (no crossfade: two phases of one
        # tone mixed would step further than the tone itself)
        self.xf = min(rate * XFADE_MS // 1000, self.fs)
        self.h = max(1, self.xf // 2)
        self.w_up = _raised_cosine(self.xf)
        self.t_up = _raised_cosine(self.h)
        # histogram of relative delay (frames), prior: the initial target
        self.hist = [0.0] * (self.max_frames + 1)
        self.total = 0.0
        self.nsamples = 0
        self.rescales = 0
        self.tick_has = False
        self.tick_max = 0
        self.deque: list[tuple[int, int]] = []
        self.tick = 0
        self.mode: str | None = None
        # output continuity
        self.last = [0] * self.n
        self.continuous = False
        self.plc_run = 0
        # packet state
        self.P = 0
        self.end = 0
        self.slots: dict[int, tuple[int, Any]] = {}   # frame -> (state, data)
        self.seen: set[int] = set()                    # frames received (recent ones matter)
        self.pend: list[list[int]] = []
        self.pend_start = 0
        self.fpp = 0
        self.seq_bits = 16
        self.ext_hi: int | None = None
        self.ext0 = 0
        self.ts0 = 0
        self.playing = False
        self.started = False
        self.fresh = True
        self.far_late_end: int | None = None
        # excess = age of the playout point - target, in frames; its lowest and highest
        # values over the last complete window and the current one
        self.lo_prev: int | None = None
        self.hi_prev: int | None = None
        self.lo_cur = BIG
        self.hi_cur = -BIG
        self.win_n = 0
        self.over = 0                    # consecutive windows whose excess stayed >= 2
        self.expanded = 0                # frames concealed in place (playout point held)
        self.last_step = -BIG
        # stream state
        self.buf = bytearray()
        self.pos = 0                     # stream: bytes consumed
        self.last_push_tick = -1
        self.starving = False
        self.starve_tick = 0
        # items
        self.bounds: list[tuple[int, Any]] = []
        self.item: Any = None
        self.item_start = 0
        self.st = dict(received=0, played=0, concealed=0, lost=0, recovered=0, inserted=0,
                       idle=0, late=0, duplicate=0, dropped=0, drained=0, errors=0)

    # ------------------------------------------------------------------ samples out

    def _mirror(self) -> list[int]:
        ch, fs, last = self.ch, self.fs, self.last
        return [last[(fs - 1 - k) * ch + c] for k in range(fs) for c in range(ch)]

    def _emit(self, out: list[int], continuous: bool) -> bytes:
        self.last = out
        self.continuous = continuous
        return _b16(out)

    def _transition(self, x: list[int], p: int) -> list[int]:
        """x (p sample frames) entered from a discontinuity: the mirror of the last output
        fades out over h samples, then x fades in over the next h."""
        mir, ch, h = self._mirror(), self.ch, self.h
        out = list(x)
        for k in range(min(2 * h, p)):
            for c in range(ch):
                i = k * ch + c
                out[i] = _mix(mir[i], 0, self.t_up[k]) if k < h else _mix(0, x[i], self.t_up[k - h])
        return out

    def _emit_real(self, x: list[int]) -> bytes:
        if self.continuous:
            return self._emit(list(x), True)
        return self._emit(self._transition(x, self.fs), True)

    def _emit_fade(self) -> bytes:
        if not any(self.last):
            return self._emit([0] * self.n, False)
        mir, ch = self._mirror(), self.ch
        out = [0] * self.n
        for k in range(self.xf):
            for c in range(ch):
                out[k * ch + c] = _mix(mir[k * ch + c], 0, self.w_up[k])
        return self._emit(out, False)

    def _emit_insert(self) -> bytes:
        return self._emit(self._mirror(), False)

    def _emit_partial(self, x: list[int]) -> bytes:
        ch = self.ch
        p = len(x) // ch
        out = list(x) if self.continuous else self._transition(x, p)
        seq = self.last + out
        total = len(seq) // ch
        for k in range(self.fs - p):
            for c in range(ch):
                v = seq[(total - 1 - k) * ch + c]
                out.append(_mix(v, 0, self.w_up[k]) if k < self.xf else 0)
        return self._emit(out, False)

    def _conceal(self) -> bytes:
        """One frame standing for missing audio: decoder PLC first, then a fade to silence."""
        dec = self.decoder
        if dec is not None and self.started and self.plc_run <= self.plc_frames:
            self.plc_run += 1
            x = self._call(dec.conceal, self.fs, frames=1)
            if x is None:
                self.plc_run = self.plc_frames + 1
                return self._emit_fade()
            if self.plc_run <= self.plc_frames:
                return self._emit_real(x)
            # the last decoder frame fades to silence; silence follows
            ch = self.ch
            for k in range(self.fs):
                for c in range(ch):
                    i = k * ch + c
                    x[i] = _mix(x[i], 0, self.w_up[k]) if k < self.xf else 0
            out = self._emit_real(x)
            self.continuous = False
            return out
        return self._emit_fade()

    def _call(self, fn: Any, *args: Any, frames: int) -> list[int] | None:
        """A decoder call that must return ``frames`` frames of PCM; None (and counted) when
        the decoder raises AudioCoreError/ValueError or returns another length."""
        try:
            pcm = fn(*args)
        except (AudioCoreError, ValueError):
            self.st["errors"] += 1
            return None
        if not isinstance(pcm, (bytes, bytearray)) or len(pcm) != frames * self.fb:
            self.st["errors"] += 1
            return None
        return _s16(bytes(pcm))

    # ------------------------------------------------------------------ estimator

    def _sample(self, value: int) -> None:
        if not self.adaptive:
            return
        self.tick_max = max(self.tick_max, value) if self.tick_has else value
        self.tick_has = True

    def _prior(self) -> None:
        """Seed the histogram with the initial target as one sample (mode known now)."""
        b = self.L if self.mode == "stream" else self.L - 1
        self.hist[max(0, min(b, self.max_frames))] = 1.0
        self.total = 1.0
        self.nsamples = 1

    def _fold(self) -> None:
        if not self.tick_has:
            return
        self.tick_has = False
        b = min(self.tick_max, self.max_frames)
        # the new sample weighs 1/(n+1) of the total (a plain mean) until that falls below
        # 1 - FORGET, then 1 - FORGET (exponential forgetting)
        if self.nsamples < RAMP:
            w = self.total / self.nsamples
        else:
            w = self.total * STEADY
        self.hist[b] += w
        self.total += w
        self.nsamples += 1
        if self.total > 1e150:
            scale = 1.0 / self.total
            self.hist = [h * scale for h in self.hist]
            self.total = 1.0
            self.rescales += 1
        goal = QUANTILE * self.total
        acc = 0.0
        q = len(self.hist) - 1
        for i, h in enumerate(self.hist):
            acc += h
            if acc >= goal:
                q = i
                break
        if self.mode != "stream":
            q += 1   # a packet q ticks late is played by the pop q + 1 ticks after the fastest
        self.L = max(self.min_frames, min(q, self.max_frames - 1))

    def _arrival(self, frame: int) -> None:
        d = self.tick - frame
        dq = self.deque
        while dq and dq[0][0] < self.tick - self.history:
            dq.pop(0)
        while dq and dq[-1][1] >= d:
            dq.pop()
        if len(dq) == DEQUE_MAX:
            dq.pop(0)
        dq.append((self.tick, d))
        self._sample(d - dq[0][1])

    # ------------------------------------------------------------------ items

    def _position(self) -> int:
        return self.pos if self.mode == "stream" else self.P

    def _sync_item(self) -> None:
        pos = self._position()
        while self.bounds and pos >= self.bounds[0][0]:
            self.item_start, self.item = self.bounds.pop(0)

    @property
    def played_ms(self) -> int:
        if self.mode == "stream":
            return (self.pos - self.item_start) // (2 * self.ch) * 1000 // self.rate
        return max(0, self.P - self.item_start) * self.F

    def mark(self, item: Any) -> None:
        if self.mode == "stream":
            at = self.pos + len(self.buf)
        else:
            at = max(self.end, self.P)
        if self.bounds and self.bounds[-1][0] == at:
            self.bounds[-1] = (at, item)
        else:
            self.bounds.append((at, item))
        self._sync_item()

    @property
    def buffered_ms(self) -> int:
        if self.mode == "stream":
            return len(self.buf) // (2 * self.ch) * 1000 // self.rate
        return max(0, self.end - self.P) * self.F

    @property
    def stats(self) -> dict[str, int]:
        return dict(self.st, target_ms=self.L * self.F)

    # ------------------------------------------------------------------ push

    def push(self, payload: Any, seq: int | None = None, timestamp: int | None = None) -> bool:
        data = memoryview(payload).tobytes()
        if seq is not None:
            seq = operator.index(seq)
        if timestamp is not None:
            timestamp = operator.index(timestamp)
        if timestamp is not None:
            kind = "timestamp"
        elif seq is not None:
            kind = "seq"
        else:
            kind = "auto" if self.decoder is not None else "stream"
        if self.mode is not None and self.mode != kind:
            raise ValueError(f"mixed pushes: this queue is fed in {self.mode} mode")
        if kind == "stream":
            return self._push_stream(data)
        return self._push_packet(data, kind, seq, timestamp)

    def _push_stream(self, data: bytes) -> bool:
        if len(data) % (2 * self.ch):
            raise ValueError("stream payload must hold whole samples")
        if self.mode is None:
            self.mode = "stream"
            self._prior()
        fb = self.fb
        if self.starving:
            self.starving = False
            starved = self.tick - self.starve_tick
            if starved <= self.spurt_gap:
                self._sample(self.L + starved)
        elif self.playing:
            self._sample(max(0, self.L - len(self.buf) // fb))
        cap = self.max_frames * fb
        held, n = len(self.buf), len(data)
        if held + n > cap:
            if n >= cap:
                self.st["dropped"] += -(-held // fb)
                self.pos += held
                self.buf.clear()
                o = -(-(n - cap) // fb) * fb
                self.st["dropped"] += o // fb
                self.pos += o
                data = data[o:]
            else:
                k = -(-(held + n - cap) // fb)
                nb = min(k * fb, held)
                self.st["dropped"] += -(-nb // fb)
                self.pos += nb
                del self.buf[:nb]
            if self.playing:
                self.continuous = False
            self._sync_item()
        self.buf += data
        self.st["received"] += 1
        self.last_push_tick = self.tick
        return True

    def _unwrap(self, seq: int) -> tuple[int, int]:
        if not 0 <= seq < 1 << 32:
            raise ValueError("seq must be in [0, 2**32)")
        bits = 32 if seq > 0xFFFF else self.seq_bits
        if self.ext_hi is None:
            return seq, bits
        m = 1 << bits
        delta = (seq - self.ext_hi) % m
        if delta >= m // 2:
            delta -= m
        return self.ext_hi + delta, bits

    def _push_packet(self, data: bytes, kind: str, seq: int | None, ts: int | None) -> bool:
        # ---- validation (no state changes)
        if self.decoder is not None:
            s48 = opus_samples48(data)
            samples = s48 * self.rate // 48000
            if s48 * self.rate % 48000 or samples % self.fs:
                raise ValueError("Opus packet is not a whole number of frames")
            nframes = samples // self.fs
        else:
            if not data or len(data) % self.fb:
                raise ValueError("packet must be a whole number of frames")
            nframes = len(data) // self.fb
        if nframes > self.max_frames:
            raise ValueError("packet longer than max_ms")
        ext = bits = 0
        if kind == "seq":
            assert seq is not None
            ext, bits = self._unwrap(seq)
            if self.fpp and nframes != self.fpp:
                raise ValueError("packets differ in duration")
        first = self.mode is None
        if kind == "seq":
            if first:
                start = 0
            else:
                start = (ext - self.ext0) * self.fpp
        elif kind == "timestamp":
            assert ts is not None
            if first:
                start = 0
            else:
                start = (2 * (ts - self.ts0) + self.F) // (2 * self.F)
        else:
            start = max(self.end, self.P)
        # ---- commit
        if first:
            self.mode = kind
            self._prior()
            if kind == "seq":
                self.ext0 = ext
                self.fpp = nframes
            elif kind == "timestamp":
                self.ts0 = ts  # type: ignore[assignment]
        if kind == "seq":
            self.seq_bits = bits
            if self.ext_hi is None or ext > self.ext_hi:
                self.ext_hi = ext
        end = start + nframes
        mf = self.max_frames
        if start < self.P and self.fresh and end - min(start, self.P) <= mf \
                and max(self.end, end) - start <= mf:
            self._move_back(start)
        if start < self.P and self.P - mf <= start \
                and all(f in self.seen for f in range(start, min(end, self.P))):
            self.st["duplicate"] += 1
            return False
        if start < self.P:
            if start < self.P - mf and self.far_late_end == start:
                self._resync(start)
            else:
                self.far_late_end = end if start < self.P - mf else None
                self._arrival(start)
                self.st["late"] += 1
                return False
        self.far_late_end = None
        if start >= self.P + mf:
            self._resync(start)
        for f in range(start, end):
            if f in self.slots:
                self.st["duplicate"] += 1
                return False
        self._arrival(start)
        if end > self.P + mf:
            self._drop_to(end - mf, "dropped")
            if self.playing:
                self.continuous = False
        self.seen.update(range(start, end))
        if self.decoder is not None:
            self.slots[start] = (START, data)
            for f in range(start + 1, end):
                self.slots[f] = (CONT, None)
        else:
            for i in range(nframes):
                self.slots[start + i] = (START if i == 0 else CONT,
                                         data[i * self.fb : (i + 1) * self.fb])
        self.end = max(self.end, end)
        self.st["received"] += 1
        self._sync_item()
        return True

    def _move_back(self, start: int) -> None:
        if self.item_start == self.P:
            self.item_start = start
        self.P = start

    def _resync(self, start: int) -> None:
        self.st["dropped"] += sum(1 for f in self.slots if f >= self.P)
        self.slots.clear()
        self.seen.clear()
        self.pend = []
        self.P = self.end = start
        self.playing = False
        self.fresh = True
        self.expanded = 0
        self.deque = []
        self.far_late_end = None
        if self.decoder is not None:
            self.decoder.reset()
        self._reset_windows()
        self._sync_item()

    def _drop_to(self, new_p: int, counter: str) -> None:
        """Advance the playout point to new_p, discarding what lies before it. With a
        decoder, the last WARM_PACKETS packets cut are decoded (and the audio discarded) so
        that the decoder's history runs up to the audio played next."""
        if self.decoder is not None:
            starts = [f for f in range(self.P, new_p) if self.slots.get(f, (EMPTY,))[0] == START]
            for f in starts[-WARM_PACKETS:]:
                nframes = 1
                while self.slots.get(f + nframes, (EMPTY,))[0] == CONT:
                    nframes += 1
                self._call(self.decoder.decode, self.slots[f][1], frames=nframes)
            self.pend = []
        n = 0
        for f in range(self.P, new_p):
            if self.slots.pop(f, None) is not None:
                n += 1
        self.st[counter] += n if counter == "dropped" else new_p - self.P
        self.P = new_p
        self.end = max(self.end, self.P)
        self._sync_item()

    # ------------------------------------------------------------------ pop

    def pop(self) -> bytes:
        self._fold()
        if self.mode in ("seq", "timestamp", "auto"):
            out = self._pop_packet()
        elif self.mode == "stream":
            out = self._pop_stream()
        else:
            self.st["idle"] += 1
            out = self._emit_fade()
        self.tick += 1
        return out

    def _pop_stream(self) -> bytes:
        fb = self.fb
        held = len(self.buf)
        if not self.playing:
            if held >= max(1, self.L) * fb or (held > 0 and self.last_push_tick < self.tick):
                self.playing = True
                self.started = True
            else:
                self.st["idle"] += 1
                return self._emit_fade()
        if held >= fb:
            x = _s16(bytes(self.buf[:fb]))
            del self.buf[:fb]
            self.pos += fb
            self.st["played"] += 1
            out = self._emit_real(x)
        else:
            self.playing = False
            self.starving = True
            self.starve_tick = self.tick
            if held:
                x = _s16(bytes(self.buf))
                self.buf.clear()
                self.pos += held
                self.st["played"] += 1
                out = self._emit_partial(x)
            else:
                self.st["idle"] += 1
                out = self._emit_fade()
        self._sync_item()
        return out

    def _reset_windows(self) -> None:
        self.lo_prev = self.hi_prev = None
        self.lo_cur, self.hi_cur = BIG, -BIG
        self.win_n = 0
        self.over = 0

    def _window(self, x: int) -> None:
        self.lo_cur = min(self.lo_cur, x)
        self.hi_cur = max(self.hi_cur, x)
        self.win_n += 1
        if self.win_n >= self.window:
            self.over = self.over + 1 if self.lo_cur >= 2 else 0
            self.lo_prev, self.hi_prev = self.lo_cur, self.hi_cur
            self.lo_cur, self.hi_cur = BIG, -BIG
            self.win_n = 0

    def _shift_windows(self, d: int) -> None:
        if self.lo_prev is not None and self.hi_prev is not None:
            self.lo_prev += d
            self.hi_prev += d
        if self.win_n:
            self.lo_cur += d
            self.hi_cur += d

    def _age(self) -> int | None:
        """Ticks since the frame at the playout point was due to arrive, judged by the
        fastest arrivals of the last HISTORY_MS; None when nothing arrived that recently."""
        dq = self.deque
        while dq and dq[0][0] < self.tick - self.history:
            dq.pop(0)
        if not dq:
            return None
        return self.tick - (self.P + dq[0][1])

    def _content(self) -> list[int] | None:
        """Samples of the frame at P (decoding its packet when it starts there), or None when
        the slot's audio cannot be had (a decode error, or the middle of a packet skipped)."""
        state, data = self.slots[self.P]
        if self.decoder is None:
            return _s16(data)
        if state == START:
            nframes = 1
            while self.slots.get(self.P + nframes, (EMPTY,))[0] == CONT:
                nframes += 1
            pcm = self._call(self.decoder.decode, data, frames=nframes)
            if pcm is None:
                self.pend = []
                return None
            self.pend = [pcm[i * self.n : (i + 1) * self.n] for i in range(nframes)]
            self.pend_start = self.P
            self.plc_run = 0
        k = self.P - self.pend_start
        if not 0 <= k < len(self.pend):
            return None
        return self.pend[k]

    def _advance(self) -> None:
        self.slots.pop(self.P, None)
        self.P += 1
        self.fresh = False
        self._sync_item()

    def _pop_packet(self) -> bytes:
        L = self.L
        S = max(0, self.end - self.P)
        age = self._age()
        if not self.playing:
            if S and (S >= L if age is None else age >= L - 1):
                self.playing = True
                self.started = True
                self._reset_windows()
            else:
                self.st["concealed" if self.started else "idle"] += 1
                return self._conceal()
        x = None if age is None else age - (L - 1)
        if x is not None:
            self._window(x)
            if S and x > max(L + 1, self.flush):
                self._drop_to(min(self.P + x, self.end - 1), "drained")
                self.fresh = False
                self.continuous = False
                self.expanded = 0
                self.pend = []
                self._reset_windows()
                x = self._age() - (L - 1)  # type: ignore[operator]
        while True:
            S = self.end - self.P
            if self.P not in self.slots:
                self.st["concealed"] += 1
                if S <= 0:
                    self.expanded += 1
                    return self._conceal()
                k = 1
                while self.P + k not in self.slots:
                    k += 1
                if self.expanded >= k:
                    # the frames concealed while waiting already stood in for this gap
                    self.st["concealed"] -= 1
                    self.expanded -= k
                    self.st["lost"] += k
                    for _ in range(k):
                        self._advance()
                    if x is not None:
                        x -= k
                    continue
                if S >= L if x is None else x >= 0:
                    self.st["lost"] += 1
                    self.expanded = 0
                    out = self._conceal_lost()
                    self._advance()
                    return out
                self.expanded += 1
                return self._conceal()
            frame = self._content()
            if frame is None:
                self.st["lost"] += 1
                self.st["concealed"] += 1
                self.expanded = 0
                out = self._conceal()
                self._advance()
                return out
            lo = None if self.lo_prev is None else min(self.lo_prev, self.lo_cur)
            hi = None if self.hi_prev is None else max(self.hi_prev, self.hi_cur)
            step_ok = self.tick - self.last_step >= self.step
            if lo is not None and lo >= 1 and self.P + 1 in self.slots \
                    and self._droppable(frame, lo, step_ok):
                self._drop_one()
                if x is not None:
                    x -= 1
                continue
            if hi is not None and hi <= -1 and step_ok \
                    and sum(map(abs, self.last)) < QUIET * self.n:
                self.last_step = self.tick
                self.st["inserted"] += 1
                self._shift_windows(1)
                return self._emit_insert()
            self.st["played"] += 1
            self.plc_run = 0
            self.expanded = 0
            out = self._emit_real(frame)
            self._advance()
            return out

    def _droppable(self, frame: list[int], lo: int, step_ok: bool) -> bool:
        """Whether to drop the frame at P to cut an excess of lo frames that has lasted:
        quiet frames go first and freely; then, at most one per STEP_MS, a frame much
        quieter than its neighbours (the last frame played, the next one queued) once the
        excess has been 2 for a whole window; any frame when it is 3, or has been 2 for 3
        windows."""
        energy = sum(map(abs, frame))
        if energy < QUIET * self.n:
            return True
        if not step_ok or lo < 2:
            return False
        if self.over >= 1:
            nxt = self._peek_next()
            around = max(sum(map(abs, self.last)), sum(map(abs, nxt)) if nxt else 0)
            if 4 * energy <= around:
                self.last_step = self.tick
                return True
        if lo >= 3 or self.over >= 3:
            self.last_step = self.tick
            return True
        return False

    def _peek_next(self) -> list[int] | None:
        """Samples of the frame at P + 1 when they are at hand without decoding."""
        state, data = self.slots[self.P + 1]
        if self.decoder is None:
            return _s16(data)
        k = self.P + 1 - self.pend_start
        return self.pend[k] if state == CONT and 0 <= k < len(self.pend) else None

    def _drop_one(self) -> None:
        self.st["drained"] += 1
        self.continuous = False
        self.expanded = 0
        self._shift_windows(-1)
        self._advance()

    def _conceal_lost(self) -> bytes:
        dec = self.decoder
        nxt = self.slots.get(self.P + 1)
        if dec is not None and nxt is not None and nxt[0] == START:
            x = self._call(dec.decode_fec, nxt[1], self.fs, frames=1)
            if x is not None:
                self.st["recovered"] += 1
                self.plc_run = 0
                return self._emit_real(x)
        return self._conceal()

    # ------------------------------------------------------------------ clear

    def clear(self, fade: bool = True) -> int:
        played = self.played_ms
        if not fade:  # forget the last frame: nothing of the old audio comes out again
            self.last = [0] * self.n
            self.continuous = False
        self.bounds = []
        self.item = None
        if self.mode == "stream":
            self.pos += len(self.buf)
            self.buf.clear()
            self.starving = False
        elif self.mode is not None:
            self.slots.clear()
            self.pend = []
            self.P = self.end = max(self.end, self.P)
            self.fresh = False
            self.expanded = 0
            if self.decoder is not None:
                self.decoder.reset()
            self._reset_windows()
        self.playing = False
        self.started = False
        self.item_start = self._position()
        return played
