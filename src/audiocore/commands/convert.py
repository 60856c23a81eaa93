"""``audiocore convert``: between WAV, raw PCM, Ogg Opus and G.711, at any rate."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from audiocore._ext.resample import MAX_RATE, MIN_RATE

if TYPE_CHECKING:
    from audiocore.commands._progress import Progress

HELP = "convert audio: wav / raw PCM / Ogg Opus / mu-law / A-law, any rate (--rate)"

_EPILOG = """\
formats (from the extension, or --in-format / --format):
  wav                .wav                      16-bit PCM WAV; rate and channels from the file
  raw                .raw .pcm .s16            PCM16LE, no header: input needs --in-rate (and --channels)
  opus               .opus .ogg .oga           Ogg Opus, mono or stereo; pre-skip and end trimming honoured
  ulaw / alaw        .ul .ulaw .mulaw .mu / .al .alaw   G.711 bytes, no header: input is 8000 Hz
                                               mono unless --in-rate / --channels say otherwise

The output rate is --rate, else the input's (an Ogg Opus file's original input rate).
Opus output is encoded at the output rate when libopus takes it (8/12/16/24/48 kHz), else at
48 kHz with the rate recorded in OpusHead. Resampling takes rates from 8000 to 192000 Hz.

Outputs are written under a temporary name and replace OUT only on success: on a failure or
Ctrl-C an existing OUT is left as it was. Damaged input (a bad Ogg page, lost pages, a
truncated Ogg or WAV file) fails unless --lenient, which converts what can be read and says
on stderr what was skipped.

examples:
  audiocore convert call.wav call.opus --bitrate 24000
  audiocore convert call.opus call.ul --rate 8000
  audiocore convert rec.raw rec.wav --in-rate 16000
  audiocore convert a.wav b.wav c.wav --to out/ --format opus     (many files: out/a.opus ...)
"""


def _int_in(low: int, high: int, what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is outside {low}-{high}{what}")
        return value
    return parse


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="audiocore convert", description="Convert audio files; a progress bar on stderr when it is a terminal.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", metavar="FILE", help="IN OUT, or IN... with --to DIR")
    p.add_argument("--to", metavar="DIR", help="convert every FILE into DIR (name kept, extension of --format)")
    p.add_argument("--format", choices=["wav", "raw", "opus", "ulaw", "alaw"], help="output format")
    p.add_argument("--in-format", choices=["wav", "raw", "opus", "ulaw", "alaw"], help="input format")
    p.add_argument("--rate", type=_int_in(MIN_RATE, MAX_RATE, " Hz (the resampler's range)"),
                   help=f"output sample rate in Hz, {MIN_RATE}-{MAX_RATE} (default: the input's)")
    p.add_argument("--in-rate", type=_int_in(1, MAX_RATE, " Hz"), help="input rate of raw PCM / G.711 (Hz)")
    p.add_argument("--channels", type=_int_in(1, 255, ""), help="input channels of raw PCM / G.711 (default 1)")
    p.add_argument("--bitrate", type=_int_in(500, 512000, " bits/s (libopus's range)"),
                   help="Opus bitrate in bits/s, 500-512000 (default: libopus's choice)")
    p.add_argument("--frame-ms", type=float, default=20, choices=[2.5, 5, 10, 20, 40, 60],
                   help="Opus packet duration (default 20)")
    p.add_argument("--lenient", action="store_true",
                   help="convert what can be read of a damaged input and say what was skipped "
                   "(default: fail)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="force the progress bar on or off (default: on when stderr is a terminal)")
    return p


_SUFFIX = {"wav": ".wav", "raw": ".raw", "opus": ".opus", "ulaw": ".ul", "alaw": ".al"}


def main(argv: list[str]) -> int:
    from audiocore.commands._progress import Progress

    args = _parser().parse_args(argv)
    if args.to:
        if not args.format:
            print("audiocore convert: --to needs --format", file=sys.stderr)
            return 2
        out_dir = Path(args.to)
        if out_dir.exists() and not out_dir.is_dir():
            print(f"audiocore convert: --to {out_dir}: not a directory", file=sys.stderr)
            return 2
        jobs = [(Path(f), out_dir / (Path(f).stem + _SUFFIX[args.format])) for f in args.files]
    else:
        if len(args.files) != 2:
            print("audiocore convert: give IN OUT, or several inputs with --to DIR", file=sys.stderr)
            return 2
        jobs = [(Path(args.files[0]), Path(args.files[1]))]
    total = sum(p.stat().st_size for p, _ in jobs if p.is_file())
    overall = Progress(total, f"{len(jobs)} files", enabled=args.progress) if len(jobs) > 1 else None
    failures = 0
    try:
        if args.to:
            out_dir.mkdir(parents=True, exist_ok=True)
        for src_path, dst_path in jobs:
            if not _convert_one(src_path, dst_path, args, overall):
                failures += 1
    except OSError as exc:  # the --to directory cannot be made
        print(f"audiocore convert: {exc}", file=sys.stderr)
        return 1
    finally:
        if overall is not None:
            overall.close()
    return 1 if failures else 0


def _convert_one(src_path: Path, dst_path: Path, args: argparse.Namespace, overall: Progress | None) -> bool:
    """Convert one file; False (and a line on stderr) when it failed. ``dst_path`` is
    replaced only on success."""
    from audiocore.commands._atomic import replacing
    from audiocore.commands._audio import (
        OPUS_RATES,
        AudioFileError,
        OpusSource,
        convert_file,
        format_of,
        open_sink,
        open_source,
    )
    from audiocore.commands._progress import Progress

    if src_path.resolve() == dst_path.resolve():
        print(f"audiocore convert: {src_path}: input and output are the same file", file=sys.stderr)
        return False
    try:
        source = open_source(src_path, format_of(src_path, args.in_format), args.in_rate, args.channels,
                             lenient=args.lenient)
        try:
            out_fmt = format_of(dst_path, args.format)
            rate = args.rate or source.nominal_rate
            # the rates the PCM flows at, checked before anything is written
            sink_rate = (rate if rate in OPUS_RATES else 48000) if out_fmt == "opus" else rate
            source_rate = (sink_rate if sink_rate in OPUS_RATES else 48000) if isinstance(source, OpusSource) \
                else source.rate
            if source_rate != sink_rate and not (MIN_RATE <= source_rate <= MAX_RATE
                                                 and MIN_RATE <= sink_rate <= MAX_RATE):
                odd = source_rate if not MIN_RATE <= source_rate <= MAX_RATE else sink_rate
                raise AudioFileError(f"{src_path}: resampling {source_rate} Hz to {sink_rate} Hz is needed, "
                                     f"and {odd} Hz is outside the resampler's {MIN_RATE}-{MAX_RATE} Hz"
                                     + ("" if args.rate else " (choose an output rate with --rate)"))
            source.rate = source_rate
            bar = overall or Progress(source.size, src_path.name,
                                      enabled=args.progress if args.progress is not None
                                      else (None if source.size > (1 << 22) else False))
            try:
                with replacing(dst_path) as temp:
                    sink = open_sink(temp, out_fmt, rate, source.channels, bitrate=args.bitrate,
                                     frame_ms=args.frame_ms)
                    try:
                        convert_file(source, sink, bar)
                    except BaseException:
                        sink.abort()
                        raise
                    sink.close()
            finally:
                if bar is not overall:
                    bar.close()
        finally:
            source.close()
    except (AudioFileError, OSError, ValueError) as exc:
        print(f"audiocore convert: {exc}", file=sys.stderr)
        return False
    for line in source.damage[:5]:  # --lenient: what was skipped
        print(f"audiocore convert: warning: skipped damaged input: {line}", file=sys.stderr)
    if len(source.damage) > 5:
        print(f"audiocore convert: warning: {src_path}: and {len(source.damage) - 5} more problems",
              file=sys.stderr)
    return True
