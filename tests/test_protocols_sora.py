"""Sora audio streaming: body framing split at every byte, header checks, result lines."""

from __future__ import annotations

import json
import random
import struct

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from audiocore import ProtocolError
from audiocore.protocols import sora
from reference import sora as ref


def _body(rng: random.Random, n: int) -> tuple[bytes, list[tuple[int, int, bytes]]]:
    """A body of ``n`` packets, some empty, and the packets a reader yields: the non-empty
    ones (the reference drops zero-length payloads silently, PROTOCOLS.md section 7)."""
    packets = [(1_700_000_000_000_000 + 20_000 * i, i, rng.randbytes(rng.choice([0, 1, 3, 19, 20, 21, 120, 300]))) for i in range(n)]
    body = b"".join(struct.pack(">QQI", t, s, len(p)) + p for t, s, p in packets)
    return body, [p for p in packets if p[2]]


def _tuples(pkts: list[sora.Packet]) -> list[tuple[int | None, int, bytes]]:
    return [(p.timestamp_us, p.sequence, p.payload) for p in pkts]


def test_every_split_point_of_a_body() -> None:
    body, packets = _body(random.Random(7), 12)
    for cut in range(len(body) + 1):
        p = sora.BodyParser()
        assert _tuples(p.feed(body[:cut]) + p.feed(body[cut:])) == packets, cut
        assert p.pending == 0


def test_every_pair_of_split_points_of_a_short_body() -> None:
    body, packets = _body(random.Random(8), 3)
    for a in range(len(body) + 1):
        for b in range(a, len(body) + 1):
            p = sora.BodyParser()
            assert _tuples(p.feed(body[:a]) + p.feed(body[a:b]) + p.feed(body[b:])) == packets


def test_byte_by_byte_and_bounded_memory() -> None:
    body, packets = _body(random.Random(9), 8)
    p = sora.BodyParser(max_payload=300)
    got = []
    for i in range(len(body)):
        got += p.feed(body[i : i + 1])
        assert p.pending < sora.HEADER_BYTES + 300
    assert _tuples(got) == packets


@settings(max_examples=200)
@given(st.binary(max_size=400), st.lists(st.integers(0, 400), max_size=6), st.integers(1, 200))
@example(bytes(19) + b"\x02\x00", [20], 1)  # header refused before the last read is fed
def test_arbitrary_bytes_read_like_the_reference(body: bytes, cuts: list[int], max_payload: int) -> None:
    """Whatever is fed, split however: the packets of the plain reading, or its error."""
    p = sora.BodyParser(max_payload=max_payload)
    got: list[sora.Packet] = []
    bounds = sorted({min(c, len(body)) for c in cuts} | {0, len(body)})
    try:
        expected, rest = ref.packets(body, max_payload)
    except ref.RefError as fault:
        # every packet before the bad header comes out (from feed, or on the error), then
        # the parser refuses the rest of the body
        fed = 0
        with pytest.raises(sora.BodyError) as info:
            for a, b in zip(bounds, bounds[1:]):
                fed = b
                got += p.feed(body[a:b])
        assert _tuples(got + info.value.packets) == fault.packets
        # the parser keeps the bad header only, and raises again; the error may come before
        # the later reads are fed at all
        assert p.pending == sora.HEADER_BYTES and fed - fault.offset >= sora.HEADER_BYTES
        with pytest.raises(sora.BodyError) as again:
            p.feed(b"more")
        assert again.value.packets == []
        return
    for a, b in zip(bounds, bounds[1:]):
        got += p.feed(body[a:b])
        assert p.pending < sora.HEADER_BYTES + max_payload
    assert _tuples(got) == expected and p.pending == len(rest)


def test_length_limits_and_state_after_an_error() -> None:
    good = sora.packet_bytes(1, 1, b"abc")
    too_long = struct.pack(">QQI", 2, 2, 0x1000000)
    p = sora.BodyParser(max_payload=0x1000000 + 5)
    with pytest.raises(ProtocolError) as info:
        p.feed(too_long)
    assert info.value.field == "length" and "0xFFFFFF" in str(info.value)
    p = sora.BodyParser(max_payload=10)
    p.feed(good[:5])
    with pytest.raises(sora.BodyError) as bad:
        p.feed(good[5:] + struct.pack(">QQI", 3, 3, 11))
    assert isinstance(bad.value, ProtocolError) and bad.value.field == "length"
    assert _tuples(bad.value.packets) == [(1, 1, b"abc")]  # the good packet before the fault
    assert p.pending == 20  # the bad header stays: the body is not usable past it
    with pytest.raises(sora.BodyError):
        p.feed(good)
    assert sora.BodyParser(max_payload=0xFFFFFF).feed(struct.pack(">QQI", 0, 0, 0xFFFFFF)) == []
    with pytest.raises(ValueError):
        sora.BodyParser(max_payload=0)
    with pytest.raises(ValueError):
        sora.packet_bytes(0, 0, bytes(0x1000000))


def test_feeding_after_an_error_keeps_raising_in_bounded_memory() -> None:
    p = sora.BodyParser(max_payload=100)
    bad = struct.pack(">QQI", 1, 1, 101)
    with pytest.raises(sora.BodyError):
        p.feed(bad + bytes(5000))
    for _ in range(200):
        with pytest.raises(sora.BodyError) as again:
            p.feed(bytes(5000))
        assert again.value.field == "length" and "101 exceeds max_payload 100" in str(again.value)
        assert again.value.packets == [] and p.pending == sora.HEADER_BYTES


def test_raw_mode_takes_each_read_as_a_packet() -> None:
    p = sora.BodyParser(header_mode=False, max_payload=100)
    assert _tuples(p.feed(b"\xfc\xff\xfe")) == [(None, 0, b"\xfc\xff\xfe")]
    assert p.feed(b"") == []
    assert _tuples(p.feed(memoryview(b"xy"))) == [(None, 1, b"xy")]
    with pytest.raises(ProtocolError):
        p.feed(bytes(101))
    assert _tuples(p.feed(b"z")) == [(None, 2, b"z")]
    p.reset()
    assert p.feed(b"q")[0].sequence == 0
    assert sora.SILENCE_PACKET == bytes([252, 255, 254])


def test_headers() -> None:
    h = sora.parse_headers({"Sora-Channel-Id": "ch", "sora-session-id": "se", "sora-connection-id": "co",
                            "sora-audio-streaming-language-code": "ja-JP", "content-type": "x"})
    assert h == sora.StreamHeaders("ch", "se", "co", "ja-JP")
    h2 = sora.parse_headers([(b":method", b"POST"), (b"sora-audio-streaming-language-code", b"en-US"),
                             (b"sora-channel-id", b"c"), (b"sora-channel-id", b"c")])
    assert h2 == sora.StreamHeaders("c", None, None, "en-US")
    for bad in ([], [("sora-audio-streaming-language-code", "")], [("sora-channel-id", "c")]):
        with pytest.raises(ProtocolError) as info:
            sora.parse_headers(bad)
        assert info.value.field == "sora-audio-streaming-language-code"
    with pytest.raises(ProtocolError) as info:
        sora.parse_headers([("sora-audio-streaming-language-code", "ja-JP"), ("sora-channel-id", "a"), ("Sora-Channel-Id", "b")])
    assert info.value.field == "sora-channel-id"
    with pytest.raises(ProtocolError):
        sora.parse_headers([(b"sora-audio-streaming-language-code", b"\xff")])


def test_result_lines() -> None:
    for line, obj in [
        (sora.aws_result("hello"), {"type": "aws", "message": "hello"}),
        (sora.aws_result("h", channel_id="ch_0", is_partial=True, result_id="r1"),
         {"type": "aws", "message": "h", "channel_id": "ch_0", "is_partial": True, "result_id": "r1"}),
        (sora.gcp_result("こんにちは", is_final=False, stability=0.5), {"type": "gcp", "message": "こんにちは", "is_final": False, "stability": 0.5}),
        (sora.error_result("SERVER-DISCONNECTED"), {"type": "error", "reason": "SERVER-DISCONNECTED"}),
        (sora.test_result(1234), {"channel_id": "ch_0", "message": "n: 1234", "type": "test"}),
    ]:
        assert isinstance(line, bytes) and line.endswith(b"\n") and line.count(b"\n") == 1
        assert json.loads(line) == obj


@given(st.lists(st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1), st.binary(max_size=50)), max_size=8))
def test_round_trip(packets: list[tuple[int, int, bytes]]) -> None:
    body = b"".join(sora.packet_bytes(*p) for p in packets)
    parser = sora.BodyParser()
    assert _tuples(parser.feed(body)) == [p for p in packets if p[2]]
    assert parser.empty == sum(not p[2] for p in packets)


def test_empty_payloads_are_dropped_silently() -> None:
    """Suzu sends nothing for a zero-length payload (its handlers act on n > 0 only): no
    packet, no error, the packets around it unchanged, whatever the split."""
    body = sora.packet_bytes(1, 0, b"\xfc\xff\xfe") + sora.packet_bytes(2, 1, b"") + sora.packet_bytes(3, 2, b"x")
    for cut in range(len(body) + 1):
        parser = sora.BodyParser()
        got = parser.feed(body[:cut]) + parser.feed(body[cut:])
        assert _tuples(got) == [(1, 0, b"\xfc\xff\xfe"), (3, 2, b"x")] and parser.empty == 1 and not parser.pending


@pytest.mark.parametrize("size", [1 << 22, 0xFFFFFF])
def test_reassembly_is_linear_in_the_packet_size(size: int) -> None:
    """A packet of up to 0xFFFFFF bytes fed in 16 KiB reads (HTTP/2 frames): the memory the
    parser allocates across all the feeds, measured by tracemalloc as each feed's peak over
    what was held before it, stays within three times the packet (it appends to one buffer
    and copies out once). Joining what was held with each read allocated ~size^2 / 32 KiB:
    8 GB for 16 MiB."""
    import tracemalloc

    body = sora.packet_bytes(7, 9, random.Random(size).randbytes(size))
    reads = [body[i : i + 16384] for i in range(0, len(body), 16384)]
    parser = sora.BodyParser(True, sora.MAX_LENGTH)
    got: list[sora.Packet] = []
    allocated = 0
    tracemalloc.start()
    try:
        for read in reads:
            before, _ = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            got += parser.feed(read)
            _, peak = tracemalloc.get_traced_memory()
            allocated += peak - before
    finally:
        tracemalloc.stop()
    assert len(got) == 1 and got[0].payload == body[sora.HEADER_BYTES :] and (got[0].timestamp_us, got[0].sequence) == (7, 9)
    assert allocated <= 3 * size, allocated
