"""``audiocore convert``: between WAV, raw PCM, Ogg Opus and G.711, at any rate."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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
48 kHz with the rate recorded in OpusHead.

examples:
  audiocore convert call.wav call.opus --bitrate 24000
  audiocore convert call.opus call.ul --rate 8000
  audiocore convert rec.raw rec.wav --in-rate 16000
  audiocore convert a.wav b.wav c.wav --to out/ --format opus     (many files: out/a.opus ...)
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="audiocore convert", description="Convert audio files; a progress bar on stderr when it is a terminal.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", metavar="FILE", help="IN OUT, or IN... with --to DIR")
    p.add_argument("--to", metavar="DIR", help="convert every FILE into DIR (name kept, extension of --format)")
    p.add_argument("--format", choices=["wav", "raw", "opus", "ulaw", "alaw"], help="output format")
    p.add_argument("--in-format", choices=["wav", "raw", "opus", "ulaw", "alaw"], help="input format")
    p.add_argument("--rate", type=int, help="output sample rate in Hz (default: the input's)")
    p.add_argument("--in-rate", type=int, help="input rate of raw PCM / G.711 (Hz)")
    p.add_argument("--channels", type=int, help="input channels of raw PCM / G.711 (default 1)")
    p.add_argument("--bitrate", type=int, help="Opus bitrate in bits/s (default: libopus's choice)")
    p.add_argument("--frame-ms", type=float, default=20, choices=[2.5, 5, 10, 20, 40, 60],
                   help="Opus packet duration (default 20)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="force the progress bar on or off (default: on when stderr is a terminal)")
    return p


_SUFFIX = {"wav": ".wav", "raw": ".raw", "opus": ".opus", "ulaw": ".ul", "alaw": ".al"}


def main(argv: list[str]) -> int:
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

    args = _parser().parse_args(argv)
    if args.to:
        if not args.format:
            print("audiocore convert: --to needs --format", file=sys.stderr)
            return 2
        out_dir = Path(args.to)
        out_dir.mkdir(parents=True, exist_ok=True)
        jobs = [(Path(f), out_dir / (Path(f).stem + _SUFFIX[args.format])) for f in args.files]
    else:
        if len(args.files) != 2:
            print("audiocore convert: give IN OUT, or several inputs with --to DIR", file=sys.stderr)
            return 2
        jobs = [(Path(args.files[0]), Path(args.files[1]))]
    if args.rate is not None and not 1000 <= args.rate <= 192000:
        print(f"audiocore convert: --rate {args.rate} is outside 1000-192000", file=sys.stderr)
        return 2
    total = sum(p.stat().st_size for p, _ in jobs if p.is_file())
    overall = Progress(total, f"{len(jobs)} files", enabled=args.progress) if len(jobs) > 1 else None
    failures = 0
    for src_path, dst_path in jobs:
        if src_path.resolve() == dst_path.resolve():
            print(f"audiocore convert: {src_path}: input and output are the same file", file=sys.stderr)
            failures += 1
            continue
        try:
            source = open_source(src_path, format_of(src_path, args.in_format), args.in_rate, args.channels)
            try:
                out_fmt = format_of(dst_path, args.format)
                rate = args.rate or source.nominal_rate
                sink = open_sink(dst_path, out_fmt, rate, source.channels, bitrate=args.bitrate,
                                 frame_ms=args.frame_ms)
                if isinstance(source, OpusSource):  # decode straight at the rate needed if libopus can
                    source.rate = sink.rate if sink.rate in OPUS_RATES else 48000
                bar = overall or Progress(source.size, src_path.name,
                                          enabled=args.progress if args.progress is not None
                                          else (None if source.size > (1 << 22) else False))
                try:
                    convert_file(source, sink, bar)
                finally:
                    if bar is not overall:
                        bar.close()
                    sink.close()  # also after a failure: what was converted stays, finished
            finally:
                source.close()
        except (AudioFileError, OSError, ValueError) as exc:
            print(f"audiocore convert: {exc}", file=sys.stderr)
            failures += 1
    if overall is not None:
        overall.close()
    return 1 if failures else 0
