"""The multipart/byteranges parser: exact parts, strict framing, bounded memory, any chunking."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rangeio._core.multipart import MAX_PART_HEADER_BYTES, MultipartParser
from rangeio._core.ranges import ByteRange
from rangeio.errors import ProtocolError, RemoteChangedError

DATA = bytes(range(256)) * 40
BOUNDARY = "THIS_STRING_SEPARATES"


def body(
    ranges: list[ByteRange], total: int = len(DATA), *, preamble: bytes = b"", close: bool = True
) -> bytes:
    out = bytearray(preamble)
    for r in ranges:
        out += f"\r\n--{BOUNDARY}\r\nContent-Type: application/octet-stream\r\n".encode()
        out += f"Content-Range: bytes {r.start}-{r.stop - 1}/{total}\r\n\r\n".encode()
        out += DATA[r.start : r.stop]
    if close:
        out += f"\r\n--{BOUNDARY}--\r\n".encode()
    return bytes(out)


def parse(raw: bytes, requested: list[ByteRange], chunk: int = 7, total: int | None = len(DATA)):
    parser = MultipartParser(BOUNDARY, requested, total)
    for i in range(0, len(raw), chunk):
        parser.feed(raw[i : i + chunk])
    return parser.end()


def test_parts_are_exact() -> None:
    wanted = [ByteRange(0, 10), ByteRange(500, 1500), ByteRange(9000, 10240)]
    parts = parse(body(wanted), wanted)
    assert [(p.range, p.data) for p in parts] == [(r, DATA[r.start : r.stop]) for r in wanted]


@settings(max_examples=100, deadline=None)
@given(
    cuts=st.lists(st.integers(0, len(DATA)), min_size=2, max_size=12, unique=True),
    chunk=st.integers(1, 300),
)
def test_any_chunking(cuts: list[int], chunk: int) -> None:
    cuts.sort()
    wanted = [ByteRange(a, b) for a, b in zip(cuts[::2], cuts[1::2]) if b > a]
    if not wanted:
        return
    parts = parse(body(wanted, preamble=b"ignored preamble"), wanted, chunk=chunk)
    assert [p.data for p in parts] == [DATA[r.start : r.stop] for r in wanted]


def test_epilogue_is_ignored() -> None:
    wanted = [ByteRange(0, 5), ByteRange(100, 105)]
    assert len(parse(body(wanted) + b"epilogue junk", wanted)) == 2


def test_missing_close_delimiter() -> None:
    wanted = [ByteRange(0, 5), ByteRange(100, 105)]
    with pytest.raises(ProtocolError, match="ended early"):
        parse(body(wanted, close=False), wanted)


def test_part_longer_than_its_range() -> None:
    wanted = [ByteRange(0, 5), ByteRange(100, 105)]
    raw = body(wanted).replace(DATA[0:5], DATA[0:5] + b"XX", 1)
    with pytest.raises(ProtocolError, match="longer"):
        parse(raw, wanted)


def test_part_not_requested() -> None:
    with pytest.raises(ProtocolError, match="not asked"):
        parse(body([ByteRange(0, 5), ByteRange(200, 205)]), [ByteRange(0, 5), ByteRange(100, 105)])


def test_more_parts_than_requested() -> None:
    wanted = [ByteRange(0, 5), ByteRange(100, 105)]
    with pytest.raises(ProtocolError, match="more parts"):
        parse(body(wanted + wanted), wanted)


def test_total_changed() -> None:
    wanted = [ByteRange(0, 5), ByteRange(100, 105)]
    with pytest.raises(RemoteChangedError):
        parse(body(wanted, total=len(DATA) + 1), wanted)


def test_no_boundary_is_bounded() -> None:
    parser = MultipartParser(BOUNDARY, [ByteRange(0, 5), ByteRange(9, 10)], None)
    with pytest.raises(ProtocolError, match="no boundary"):
        for _ in range(100):
            parser.feed(b"x" * 1024)


def test_huge_part_headers_are_bounded() -> None:
    parser = MultipartParser(BOUNDARY, [ByteRange(0, 5), ByteRange(9, 10)], None)
    parser.feed(f"\r\n--{BOUNDARY}\r\nX-Junk: ".encode())
    with pytest.raises(ProtocolError, match="too large"):
        parser.feed(b"a" * (MAX_PART_HEADER_BYTES + 10))


def test_part_without_content_range() -> None:
    raw = f"--{BOUNDARY}\r\nContent-Type: text/plain\r\n\r\nhello\r\n--{BOUNDARY}--".encode()
    with pytest.raises(ProtocolError, match="without Content-Range"):
        parse(raw, [ByteRange(0, 5), ByteRange(9, 10)])


@pytest.mark.parametrize(
    "second",
    [ByteRange(0, 10), ByteRange(5, 15)],
    ids=["repeated with the same bytes", "overlapping"],
)
def test_parts_must_be_disjoint(second: ByteRange) -> None:
    wanted = [ByteRange(0, 20), ByteRange(100, 110)]
    with pytest.raises(ProtocolError, match="overlaps"):
        parse(body([ByteRange(0, 10), second]), wanted)


def test_adjacent_parts_are_fine() -> None:
    wanted = [ByteRange(0, 20), ByteRange(100, 110)]
    parts = parse(body([ByteRange(0, 10), ByteRange(10, 20)]), wanted)
    assert [p.data for p in parts] == [DATA[0:10], DATA[10:20]]
