"""``audiocore inspect``: the facts of an Ogg Opus or WAV file, and the problems found."""

from __future__ import annotations

import argparse
import json
import struct
import sys
import wave
from collections import Counter
from pathlib import Path
from typing import Any

HELP = "facts of an Ogg Opus or WAV file: streams, header fields, packets, duration, problems"

_SNIFF = 1 << 16  # bytes searched for the first Ogg page


def _pages(data: bytes) -> tuple[list[dict[str, int]], list[str]]:
    """Page headers in file order (capture pattern found by scanning), and the problems seen
    at the page level (CRC, gaps in page sequence, junk between pages)."""
    from audiocore import ogg_crc32

    pages: list[dict[str, int]] = []
    problems: list[str] = []
    seq: dict[int, int] = {}
    pos = 0
    while True:
        found = data.find(b"OggS", pos)
        if found < 0:
            if pos < len(data):
                problems.append(f"{len(data) - pos} bytes after the last page at offset {pos}")
            break
        if found > pos:
            problems.append(f"{found - pos} bytes that are not a page at offset {pos}")
        if found + 27 > len(data) or found + 27 + data[found + 26] > len(data):
            problems.append(f"truncated page at offset {found}")
            break
        nseg = data[found + 26]
        body = sum(data[found + 27 : found + 27 + nseg])
        end = found + 27 + nseg + body
        if end > len(data):
            problems.append(f"truncated page at offset {found}")
            break
        page = bytearray(data[found:end])
        crc = struct.unpack_from("<I", page, 22)[0]
        struct.pack_into("<I", page, 22, 0)
        if ogg_crc32(bytes(page)) != crc:
            problems.append(f"CRC mismatch in the page at offset {found}")
            pos = found + 1
            continue
        granule, serial, number = struct.unpack_from("<qII", data, found + 6)
        flags = data[found + 5]
        if serial in seq and number != seq[serial] + 1:
            problems.append(f"stream {serial:08x}: page {number} follows page {seq[serial]} (pages lost?)")
        seq[serial] = number
        pages.append({"offset": found, "flags": flags, "granule": granule, "serial": serial, "size": end - found,
                      "segments": nseg})
        pos = end
    return pages, problems


def _histogram(values: list[float] | list[int]) -> dict[str, int]:
    return {str(k): v for k, v in sorted(Counter(values).items())}


def _size_buckets(sizes: list[int]) -> dict[str, int]:
    edges = [16, 32, 64, 128, 256, 512, 1024, 2048, 4096]
    out: Counter[str] = Counter()
    for s in sizes:
        low = 0
        for e in edges:
            if s < e:
                out[f"{low}-{e - 1}"] += 1
                break
            low = e
        else:
            out[f">={edges[-1]}"] += 1
    keys = sorted(out, key=lambda k: int(k.split("-")[0].lstrip(">=")))
    return {k: out[k] for k in keys}


def inspect_ogg(data: bytes) -> dict[str, Any]:
    """Facts of an Ogg (Opus) file's bytes."""
    from audiocore import DecodeError, OggOpusReader, opus_packet_samples

    pages, problems = _pages(data)
    reader = OggOpusReader()
    streams: dict[int, dict[str, Any]] = {}
    packets: list[Any] = []
    head_by_serial: dict[int, Any] = {}
    for page in pages:  # page by page, so each chained stream's OpusHead and OpusTags are seen
        try:
            packets += reader.feed(data[page["offset"] : page["offset"] + page["size"]])
        except DecodeError as exc:
            problems.append(f"reader: {exc}")
        if reader.head is not None and reader.serial is not None:
            head_by_serial[reader.serial] = (reader.head, reader.tags)
    packets += reader.feed(b"")
    by_serial: dict[int, list[Any]] = {}
    for p in packets:
        by_serial.setdefault(p.serial, []).append(p)
    pages_by_serial: dict[int, list[dict[str, int]]] = {}  # in order of first appearance
    for pg in pages:
        pages_by_serial.setdefault(pg["serial"], []).append(pg)
    for serial, own_pages in pages_by_serial.items():
        info: dict[str, Any] = {"serial": f"{serial:08x}", "pages": len(own_pages)}
        stream_problems: list[str] = []
        if not own_pages[0]["flags"] & 0x02:
            stream_problems.append("first page has no BOS flag")
        if not own_pages[-1]["flags"] & 0x04:
            stream_problems.append("last page has no EOS flag")
        plist = by_serial.get(serial, [])
        info["packets"] = len(plist)
        if serial in head_by_serial:
            head, tags = head_by_serial[serial]
            info.update(type="opus", channels=head.channels, pre_skip=head.pre_skip, input_rate=head.input_rate,
                        output_gain_db=round(head.output_gain / 256, 3), mapping_family=head.mapping_family)
            if tags is not None:
                info.update(vendor=tags.vendor, tags=list(tags.comments))
        elif plist:
            info["type"] = "opus (header not seen: stream joined mid-way?)"
        else:
            info["type"] = "not Opus"
        durations: list[float] = []
        sizes = [len(p.data) for p in plist]
        total48 = 0
        for p in plist:
            try:
                n = opus_packet_samples(p.data)
            except DecodeError as exc:
                stream_problems.append(f"invalid Opus packet ({exc})")
                continue
            durations.append(n / 48)
            total48 += n
        granules = [pg["granule"] for pg in own_pages if pg["granule"] != -1]
        audio_granules = granules[2:] if serial in head_by_serial else granules
        for a, b in zip(audio_granules, audio_granules[1:], strict=False):
            if b < a:
                stream_problems.append(f"granule decreases ({a} -> {b})")
                break
        if plist:
            last = audio_granules[-1] if audio_granules else total48
            pre_skip = info.get("pre_skip", 0)
            duration = (last - pre_skip) / 48000
            if last - pre_skip < 0:
                stream_problems.append(f"negative duration: end granule {last} < pre-skip {pre_skip}")
            payload = sum(sizes)
            file_bytes = sum(pg["size"] for pg in own_pages)
            info.update(
                duration_s=round(duration, 6), samples_48k=last - pre_skip, decoded_samples_48k=total48,
                packet_ms=_histogram(durations), packet_bytes={"min": min(sizes), "max": max(sizes),
                                                               "mean": round(payload / len(sizes), 1)},
                packet_size_histogram=_size_buckets(sizes),
                bitrate_bps=round(payload * 8 / duration) if duration > 0 else None,
                bitrate_with_overhead_bps=round(file_bytes * 8 / duration) if duration > 0 else None,
                overhead_percent=round(100 * (file_bytes - payload) / file_bytes, 2) if file_bytes else None,
            )
            if total48 < last:
                stream_problems.append(f"end granule {last} is beyond the {total48} samples the packets hold")
        info["problems"] = stream_problems
        streams[serial] = info
    if reader.skipped_pages:
        problems.append(f"{reader.skipped_pages} pages of streams that are not Opus were skipped")
    return {"container": "ogg", "size": len(data), "pages": len(pages), "streams": list(streams.values()),
            "problems": problems}


def _dbfs(level: float) -> float | None:
    """A level of 16-bit samples in dB relative to full scale (32768); None for silence."""
    import math

    return round(20 * math.log10(level / 32768), 2) if level > 0 else None


def inspect_wav(path: Path) -> dict[str, Any]:
    """Facts of a WAV file; ``peak_dbfs``/``rms_dbfs`` (16-bit PCM with samples) are None when
    every sample is 0 (silence: minus infinity)."""
    import numpy as np

    problems = []
    with wave.open(str(path), "rb") as w:
        if not w.getframerate():
            raise ValueError("WAV header with a sample rate of 0")
        frames = w.getnframes()
        info: dict[str, Any] = {"container": "wav", "size": path.stat().st_size, "format": "PCM",
                                "channels": w.getnchannels(), "sample_rate": w.getframerate(),
                                "bits": 8 * w.getsampwidth(), "frames": frames,
                                "duration_s": round(frames / w.getframerate(), 6)}
        data = w.readframes(frames)
        held = len(data) // (w.getsampwidth() * w.getnchannels())
        if held < frames:
            problems.append(f"truncated: the header says {frames} frames, the file holds {held}")
        if w.getsampwidth() == 2 and held:
            pcm = np.frombuffer(data[: held * 2 * w.getnchannels()], "<i2").astype(np.float64)
            info["peak_dbfs"] = _dbfs(float(np.abs(pcm).max()))
            info["rms_dbfs"] = _dbfs(float(np.sqrt(np.mean(pcm**2))))
    info["problems"] = problems
    return info


def _text(key: str, value: Any) -> str:
    """A fact as the text report shows it: no Python None."""
    if value is None:
        return "-inf (silent)" if key.endswith("_dbfs") else "n/a"
    if isinstance(value, dict):
        return ", ".join(f"{a}: {b}" for a, b in value.items())
    return str(value)


def _print(facts: dict[str, Any], name: str) -> None:
    print(f"{name}: {facts['container']}, {facts['size']} bytes")
    if facts["container"] == "wav":
        for k in ("format", "channels", "sample_rate", "bits", "frames", "duration_s", "peak_dbfs", "rms_dbfs"):
            if k in facts:
                print(f"  {k}: {_text(k, facts[k])}")
        for p in facts["problems"]:
            print(f"  PROBLEM: {p}")
        if not facts["problems"]:
            print("  no problems found")
        return
    print(f"  pages: {facts['pages']}")
    for s in facts["streams"]:
        print(f"  stream {s['serial']} ({s['type']}):")
        for k, v in s.items():
            if k in ("serial", "type", "problems"):
                continue
            print(f"    {k}: {_text(k, v)}")
        for p in s["problems"]:
            print(f"    PROBLEM: {p}")
    for p in facts["problems"]:
        print(f"  PROBLEM: {p}")
    if not facts["problems"] and not any(s["problems"] for s in facts["streams"]):
        print("  no problems found")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="audiocore inspect", description=HELP)
    parser.add_argument("files", nargs="+", metavar="FILE")
    parser.add_argument("--json", action="store_true", help="one JSON object per file on stdout")
    args = parser.parse_args(argv)
    status = 0
    for name in args.files:
        path = Path(name)
        try:
            with open(path, "rb") as f:
                start = f.read(_SNIFF)
            if start[:4] == b"RIFF" and start[8:12] == b"WAVE":
                facts = inspect_wav(path)
            elif b"OggS" in start:  # junk before the first page is one of the problems reported
                facts = inspect_ogg(path.read_bytes())
            else:
                raise ValueError(f"neither Ogg nor WAV (no Ogg page in the first {_SNIFF >> 10} KiB)")
        except (OSError, ValueError, EOFError, wave.Error) as exc:
            print(f"audiocore inspect: {name}: {exc}", file=sys.stderr)
            status = 1
            continue
        if args.json:
            print(json.dumps({"file": name, **facts}))
        else:
            _print(facts, name)
        if facts["problems"] or any(s.get("problems") for s in facts.get("streams", [])):
            status = max(status, 3)
    return status
