"""``audiocore dump2ogg``: the Sora gateway's ``/dump`` JSON lines back into Ogg Opus."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from audiocore import DecodeError, OggOpusWriter, b64decode, opus_packet_samples

HELP = "turn the Sora gateway's /dump JSON lines into Ogg Opus file(s)"

#: Longest line read (bytes): a 0xFFFFFF-byte packet in base64, and the other fields.
MAX_LINE = 24 << 20


class DumpError(ValueError):
    """A line of a dump that is not a dump record; ``line`` (1-based) and ``field`` say where."""

    def __init__(self, message: str, line: int, field: str | None = None) -> None:
        super().__init__(f"line {line}: " + (f"{field}: " if field else "") + message)
        self.line = line
        self.field = field


@dataclass(frozen=True, slots=True)
class DumpRecord:
    """One ``/dump`` line: the Opus ``payload`` and who sent it."""

    timestamp: int | None
    channel_id: str
    connection_id: str
    language_code: str
    sample_rate: int
    channel_count: int
    payload: bytes


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def parse_record(text: str | bytes, line: int = 1) -> DumpRecord:
    """One dump line, checked: a JSON object with ``payload`` (base64, required),
    ``channel_id``/``connection_id``/``language_code`` (strings), ``sample_rate`` (1-384000)
    and ``channel_count`` (1 or 2) (integers; absent: 48000 and 1), ``timestamp`` (integer
    ms). Unknown keys are ignored. Raises :class:`DumpError`."""
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise DumpError(f"not JSON ({exc})", line) from None
    if not isinstance(obj, dict):
        raise DumpError("not a JSON object", line)

    def string(key: str) -> str:
        value = obj.get(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise DumpError("not a string", line, key)
        return value

    def integer(key: str, default: int | None, low: int, high: int) -> int | None:
        value = obj.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise DumpError(f"not an integer in [{low}, {high}]", line, key)
        return value

    payload = obj.get("payload")
    if not isinstance(payload, str):
        raise DumpError("missing, or not a base64 string", line, "payload")
    try:
        data = b64decode(payload)
    except (DecodeError, ValueError) as exc:
        raise DumpError(f"bad base64 ({exc})", line, "payload") from None
    return DumpRecord(
        integer("timestamp", None, -(1 << 62), 1 << 62), string("channel_id"), string("connection_id"),
        string("language_code"), integer("sample_rate", 48000, 1, 384000) or 48000,
        integer("channel_count", 1, 1, 2) or 1, data,
    )


def read_records(f: IO[bytes]) -> Iterator[DumpRecord]:
    """The records of a dump file, line by line (blank lines skipped)."""
    for number, raw in enumerate(iter(lambda: f.readline(MAX_LINE + 1), b""), 1):
        if len(raw) > MAX_LINE:
            raise DumpError(f"longer than {MAX_LINE} bytes", number)
        if raw.strip():
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise DumpError("not UTF-8", number) from None
            yield parse_record(text, number)


def _name(record: DumpRecord) -> str:
    from audiocore.gateway.recognizers import safe_name

    return safe_name(f"{record.channel_id}-{record.connection_id}", 200) + ".ogg"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="audiocore dump2ogg",
        description="Write the Opus packets of a /dump file (JSON lines) as Ogg Opus: one file "
        "when the dump holds one connection (or --connection-id picks one), or one file per "
        "connection with --split DIR ({channel_id}-{connection_id}.ogg). Silence fillers stay.")
    parser.add_argument("dump", help="the JSON lines file ('-': standard input)")
    parser.add_argument("out", nargs="?", help="the Ogg Opus file to write")
    parser.add_argument("--connection-id", help="only this connection's packets")
    parser.add_argument("--split", metavar="DIR", help="one file per connection in DIR")
    parser.add_argument("--page-ms", type=float, default=0,
                        help="pages of at least this many ms (default 0: one page per packet, as the gateway pages)")
    parser.add_argument("--skip-bad", action="store_true", help="skip packets that are not valid Opus (default: stop)")
    args = parser.parse_args(argv)
    if bool(args.out) == bool(args.split):
        parser.error("give OUT, or --split DIR")
    if args.split and Path(args.split).exists() and not Path(args.split).is_dir():
        parser.error(f"--split {args.split}: not a directory")

    from audiocore.commands._atomic import Outputs
    from audiocore.commands._extras import missing_gateway

    if args.split and (status := missing_gateway("dump2ogg --split")) is not None:
        return status  # the files are named as the gateway names its own

    # Every file is written under a temporary name and renamed over its target only when the
    # whole dump was read: on a failure or Ctrl-C no output changes.
    outputs = Outputs()
    writers: dict[str, tuple[OggOpusWriter, IO[bytes], Path]] = {}
    counts: dict[str, int] = {}
    skipped = 0
    source: IO[bytes] | None = None
    done = False
    try:
        source = sys.stdin.buffer if args.dump == "-" else open(args.dump, "rb")  # noqa: SIM115
        for number, record in enumerate(read_records(source), 1):
            key = record.connection_id
            if args.connection_id is not None and key != args.connection_id:
                continue
            if not args.split and not args.connection_id and writers and key not in writers:
                ids = sorted({*writers, key})
                raise DumpError(f"the dump holds several connections ({', '.join(map(repr, ids))}): "
                                "pick one with --connection-id or write each with --split DIR", number)
            try:
                opus_packet_samples(record.payload)
            except DecodeError as exc:
                if args.skip_bad:
                    skipped += 1
                    continue
                raise DumpError(f"not an Opus packet ({exc}); --skip-bad skips such packets",
                                number, "payload") from None
            entry = writers.get(key)
            if entry is None:
                if args.split:
                    Path(args.split).mkdir(parents=True, exist_ok=True)
                path = Path(args.split) / _name(record) if args.split else Path(args.out)
                writer = OggOpusWriter(record.channel_count, input_rate=record.sample_rate, pre_skip=3840,
                                       max_page_ms=args.page_ms or None)
                f: IO[bytes] = open(outputs.add(path), "wb")  # noqa: SIM115 - closed below
                entry = writers[key] = (writer, f, path)
                f.write(writer.headers())
            entry[1].write(entry[0].write(record.payload))
            counts[key] = counts.get(key, 0) + 1
        for writer, f, _ in writers.values():
            f.write(writer.close())
            f.close()
        done = True
    except (DumpError, OSError) as exc:
        print(f"audiocore dump2ogg: {exc}", file=sys.stderr)
        return 1
    finally:
        if source is not None and source is not sys.stdin.buffer:
            source.close()
        for _, f, _ in writers.values():
            f.close()
        if not done:
            outputs.discard()
    if not writers:
        print("audiocore dump2ogg: no packets" + (f" for connection {args.connection_id!r}" if args.connection_id else ""),
              file=sys.stderr)
        return 1
    try:
        outputs.commit()
    except OSError as exc:
        print(f"audiocore dump2ogg: {exc}", file=sys.stderr)
        return 1
    for key, (_, _, path) in writers.items():
        print(f"{path}: {counts[key]} packets (connection {key!r})")
    if skipped:
        print(f"audiocore dump2ogg: skipped {skipped} packets that are not Opus", file=sys.stderr)
    return 0
