"""Ogg Opus paging: write per packet and read per page, beside a straightforward pure-Python
writer and reader (audiocore.bench.ogg_peer), one page per 20 ms packet as a gateway streams them.

- write: ``OggOpusWriter.write(packet)`` vs ``PyOggOpusWriter.write(packet)`` -> page bytes.
- read: a fresh reader fed a 10 s stream one page per ``feed`` call (500 audio pages, then
  the 2 header pages in the first call), for audiocore's ``OggOpusReader`` and
  ``PyOggOpusReader``; per page is the time shown divided by the number of feeds.
"""

from __future__ import annotations

import audiocore
from audiocore.bench._frames import speech_packets
from audiocore.bench.harness import Case, Impl
from audiocore.bench.ogg_peer import PyOggOpusReader, PyOggOpusWriter

SERIAL = 0x5EED


def _pages(packets: list[bytes]) -> list[bytes]:
    w = audiocore.OggOpusWriter(serial=SERIAL)
    return [w.headers()] + [w.write(p) for p in packets]


def cases() -> list[Case]:
    packets = speech_packets()[:500]
    packet = packets[100]
    pages = _pages(packets)

    def check() -> None:
        ours, peer = audiocore.OggOpusWriter(serial=SERIAL), PyOggOpusWriter(SERIAL)
        assert ours.headers() == peer.headers()
        for p in packets:
            assert ours.write(p) == peer.write(p)
        assert ours.close() == peer.close()
        a, b = audiocore.OggOpusReader(), PyOggOpusReader()
        for page in pages:
            assert [(x.data, x.granule) for x in a.feed(page)] == [
                (y.data, y.granule) for y in b.feed(page)]

    writer = audiocore.OggOpusWriter(serial=SERIAL)
    writer.headers()
    peer_writer = PyOggOpusWriter(SERIAL)
    peer_writer.headers()

    def read_ours(pages: list[bytes]) -> None:
        reader = audiocore.OggOpusReader()
        for page in pages:
            reader.feed(page)

    def read_peer(pages: list[bytes]) -> None:
        reader = PyOggOpusReader()
        for page in pages:
            reader.feed(page)

    return [
        Case(
            "ogg", f"Ogg write 1 page per packet ({len(packet)} B)",
            Impl("audiocore", writer.write, (packet,)),
            [Impl("pure-Python writer", peer_writer.write, (packet,))],
            targets={"pure-Python writer": 20.0},
            check=check,
        ),
        Case(
            "ogg", f"Ogg read {len(pages)} pages, 1 per feed",
            Impl("audiocore", read_ours, (pages,)),
            [Impl("pure-Python reader", read_peer, (pages,))],
            targets={"pure-Python reader": 20.0},
            check=check,
            note=f"per page: divide by {len(pages)} (the first feed holds both header pages)",
        ),
    ]
