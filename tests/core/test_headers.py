"""Range / Content-Range / Content-Length codecs: exact parses, round trips, strict refusals."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rangeio._core.headers import (
    ContentRange,
    RangeSpec,
    fold_headers,
    format_content_range,
    format_range,
    parse_content_length,
    parse_content_range,
    parse_range,
)
from rangeio._core.ranges import ByteRange
from rangeio.errors import HeaderParseError

SETTINGS = settings(max_examples=200, deadline=None)
BIG = "9" * 25


# -- RangeSpec ------------------------------------------------------------------------------


def test_rangespec_constructors_validate() -> None:
    with pytest.raises(ValueError):
        RangeSpec.closed(5, 5)
    with pytest.raises(ValueError):
        RangeSpec.closed(-1, 5)
    with pytest.raises(ValueError):
        RangeSpec.open_ended(-1)
    with pytest.raises(ValueError):
        RangeSpec.suffix(0)
    assert RangeSpec.of(ByteRange(3, 9)) == RangeSpec.closed(3, 9)
    assert RangeSpec.suffix(4).is_suffix
    assert not RangeSpec.open_ended(4).is_suffix
    assert repr(RangeSpec.closed(0, 10)) == "RangeSpec(bytes=0-9)"


@pytest.mark.parametrize(
    ("spec", "text"),
    [
        (RangeSpec.closed(0, 500), "0-499"),
        (RangeSpec.closed(7, 8), "7-7"),
        (RangeSpec.open_ended(9500), "9500-"),
        (RangeSpec.suffix(500), "-500"),
    ],
)
def test_rangespec_header_value(spec: RangeSpec, text: str) -> None:
    assert spec.header_value() == text


@pytest.mark.parametrize(
    ("spec", "size", "expected"),
    [
        (RangeSpec.closed(0, 10), 100, ByteRange(0, 10)),
        (RangeSpec.closed(90, 200), 100, ByteRange(90, 100)),
        (RangeSpec.closed(100, 200), 100, None),
        (RangeSpec.open_ended(40), 100, ByteRange(40, 100)),
        (RangeSpec.open_ended(100), 100, None),
        (RangeSpec.suffix(10), 100, ByteRange(90, 100)),
        (RangeSpec.suffix(1000), 100, ByteRange(0, 100)),
        (RangeSpec.suffix(1), 0, None),
        (RangeSpec.open_ended(0), 0, None),
        (RangeSpec.closed(0, 1), 0, None),
    ],
)
def test_rangespec_resolve(spec: RangeSpec, size: int, expected: ByteRange | None) -> None:
    assert spec.resolve(size) == expected


# -- Range ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bytes=0-499", [RangeSpec.closed(0, 500)]),
        ("bytes=0-0", [RangeSpec.closed(0, 1)]),
        ("bytes=9500-", [RangeSpec.open_ended(9500)]),
        ("bytes=-500", [RangeSpec.suffix(500)]),
        (
            "bytes=0-99,200-,-5",
            [RangeSpec.closed(0, 100), RangeSpec.open_ended(200), RangeSpec.suffix(5)],
        ),
        (" bytes = 0-1 , 5 - 6\t", [RangeSpec.closed(0, 2), RangeSpec.closed(5, 7)]),
        ("BYTES=1-2", [RangeSpec.closed(1, 3)]),
        ("Bytes=-3", [RangeSpec.suffix(3)]),
        ("bytes=0-1,,2-3,", [RangeSpec.closed(0, 2), RangeSpec.closed(2, 4)]),
        ("bytes=" + "9" * 19 + "-", [RangeSpec.open_ended(int("9" * 19))]),
        ("bytes=0007-0009", [RangeSpec.closed(7, 10)]),
    ],
)
def test_parse_range(text: str, expected: list[RangeSpec]) -> None:
    assert parse_range(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "bytes",
        "bytes=",
        "bytes= , ,",
        "bytes 0-1",
        "items=0-1",
        "bytesx=0-1",
        "bytes=-",
        "bytes=abc",
        "bytes=5-4",
        "bytes=-0",
        "bytes=-00",
        "bytes=-1-2",
        "bytes=1-2-3",
        "bytes=1--2",
        "bytes=-5-",
        "bytes=+1-2",
        "bytes=1.5-2",
        "bytes=0x1-2",
        "bytes=-1-",
        "bytes=\u0661-\u0662",  # Arabic-Indic digits are digits to str.isdigit, not to HTTP
        f"bytes={BIG}-",
        f"bytes=0-{BIG}",
        f"bytes=-{BIG}",
        "bytes=0-1;2-3",
        "bytes=0-1,x",
        "bytes=0-1,\u00a0",  # a no-break space is not HTTP whitespace, so this is garbage
        "bytes=\u20030-1",
    ],
)
def test_parse_range_refuses(text: str) -> None:
    with pytest.raises(HeaderParseError):
        parse_range(text)


spec_strategy = st.one_of(
    st.builds(
        lambda a, n: RangeSpec.closed(a, a + n), st.integers(0, 10**18), st.integers(1, 10**18)
    ),
    st.builds(RangeSpec.open_ended, st.integers(0, 10**19 - 1)),
    st.builds(RangeSpec.suffix, st.integers(1, 10**19 - 1)),
)


@SETTINGS
@given(st.lists(spec_strategy, min_size=1, max_size=6))
def test_range_round_trip(specs: list[RangeSpec]) -> None:
    text = format_range(specs)
    assert text.startswith("bytes=")
    assert parse_range(text) == specs
    if len(specs) == 1:
        assert format_range(specs[0]) == text


def test_format_range_needs_a_range() -> None:
    with pytest.raises(ValueError):
        format_range([])


# -- Content-Range --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bytes 0-499/1234", ContentRange(ByteRange(0, 500), 1234)),
        ("bytes 1233-1233/1234", ContentRange(ByteRange(1233, 1234), 1234)),
        ("bytes 0-499/*", ContentRange(ByteRange(0, 500), None)),
        ("bytes */1234", ContentRange(None, 1234)),
        ("bytes */0", ContentRange(None, 0)),
        ("BYTES 0-0/1", ContentRange(ByteRange(0, 1), 1)),
        ("  bytes  3-4 / 10 ", ContentRange(ByteRange(3, 5), 10)),
        ("bytes 0-0/" + "9" * 19, ContentRange(ByteRange(0, 1), int("9" * 19))),
    ],
)
def test_parse_content_range(text: str, expected: ContentRange) -> None:
    assert parse_content_range(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "bytes",
        "bytes */*",
        "bytes 5-4/10",
        "bytes 0-10/10",
        "bytes 10-10/10",
        "bytes 0-0/0",
        "bytes -1-2/3",
        "bytes 0-1",
        "bytes=0-1/2",
        "0-1/2",
        "bytes0-1/2",
        "bytes 0-1/2 x",
        "bytes 0-/10",
        "bytes -5/10",
        "bytes */",
        "bytes */-1",
        "bytes a-b/c",
        "items 0-1/2",
        f"bytes 0-1/{BIG}",
        f"bytes {BIG}-{BIG}/*",
        f"bytes */{BIG}",
        "bytes 0-1/2, bytes 0-1/2",
        "bytes \u0660-\u0661/\u0662",
    ],
)
def test_parse_content_range_refuses(text: str) -> None:
    with pytest.raises(HeaderParseError):
        parse_content_range(text)


@st.composite
def content_ranges(draw: st.DrawFn) -> tuple[ByteRange | None, int | None]:
    total = draw(st.one_of(st.none(), st.integers(0, 10**18)))
    if total == 0 or draw(st.booleans()) and total is not None:
        return None, total
    limit = 10**18 if total is None else total
    start = draw(st.integers(0, limit - 1))
    stop = draw(st.integers(start + 1, limit))
    return ByteRange(start, stop), total


@SETTINGS
@given(content_ranges())
def test_content_range_round_trip(pair: tuple[ByteRange | None, int | None]) -> None:
    r, total = pair
    text = format_content_range(r, total)
    assert parse_content_range(text) == ContentRange(r, total)


def test_format_content_range() -> None:
    assert format_content_range(ByteRange(0, 500), 1234) == "bytes 0-499/1234"
    assert format_content_range(ByteRange(0, 500), None) == "bytes 0-499/*"
    assert format_content_range(None, 1234) == "bytes */1234"


# -- never anything but HeaderParseError ----------------------------------------------------

header_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet="bytes=-,0123456789 */\t\n\u00a0\u0661xB", max_size=40),
    st.builds(lambda t: "bytes=" + t, st.text(alphabet="0123456789-, \t9", max_size=60)),
    st.builds(lambda t: "bytes " + t, st.text(alphabet="0123456789-/* \t", max_size=60)),
)


@SETTINGS
@given(header_text)
def test_parse_range_only_raises_header_parse_error(text: str) -> None:
    try:
        specs = parse_range(text)
    except HeaderParseError:
        return
    assert specs
    # Whatever is accepted is a valid list of specs that survives a round trip.
    assert parse_range(format_range(specs)) == specs


@SETTINGS
@given(header_text)
def test_parse_content_range_only_raises_header_parse_error(text: str) -> None:
    try:
        cr = parse_content_range(text)
    except HeaderParseError:
        return
    assert cr.range is not None or cr.total is not None
    if cr.range is not None and cr.total is not None:
        assert cr.range.stop <= cr.total
    assert parse_content_range(format_content_range(cr.range, cr.total)) == cr


@SETTINGS
@given(st.one_of(st.text(max_size=30), st.text(alphabet="0123456789, \t-+\u00a0", max_size=30)))
def test_parse_content_length_only_raises_header_parse_error(text: str) -> None:
    try:
        n = parse_content_length(text)
    except HeaderParseError:
        return
    assert n is not None and n >= 0
    assert str(n) in text


# -- Content-Length -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, None),
        ("0", 0),
        ("42", 42),
        (" 42\t", 42),
        ("42, 42", 42),
        ("42,42,42", 42),
        ("007", 7),
        ("9" * 19, int("9" * 19)),
    ],
)
def test_parse_content_length(text: str | None, expected: int | None) -> None:
    assert parse_content_length(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "42, 43",
        "42,",
        ",42",
        "-1",
        "+5",
        "1e3",
        "4 2",
        "abc",
        BIG,
        "\u0664\u0662",
        "\u00a042",
    ],
)
def test_parse_content_length_refuses(text: str) -> None:
    with pytest.raises(HeaderParseError):
        parse_content_length(text)


# -- fold_headers ---------------------------------------------------------------------------


def test_fold_headers_lowercases_and_joins() -> None:
    folded = fold_headers([("Content-Type", "a"), ("ETag", '"x"'), ("content-type", "b")])
    assert folded == {"content-type": "a, b", "etag": '"x"'}
    assert fold_headers({"Content-Length": "5"}) == {"content-length": "5"}
    assert fold_headers([]) == {}
