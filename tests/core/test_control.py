"""The control record codec: exact round trips, and every corruption refused with ControlRecordError.

Invalid fields are built by editing the JSON body and sealing it again with a correct checksum,
so it is the field validation that has to refuse them, not the checksum.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rangeio._core import control
from rangeio._core.control import (
    MAGIC,
    MAX_OFFSET,
    MAX_RECORD_BYTES,
    MAX_SEGMENTS,
    MAX_URL_CHARS,
    MAX_VALIDATOR_CHARS,
    TAIL_BYTES,
    VERSION,
    ControlRecord,
    ControlRecordError,
    Segment,
    decode,
    durable_bytes,
    encode,
    is_complete,
    tail_digest,
    tail_range,
    validate,
)
from rangeio._core.ranges import ByteRange
from rangeio.errors import RangeioError

SETTINGS = settings(max_examples=200, deadline=None)
HEADER_SIZE = 14
CHECKSUM_SIZE = 32
TAIL_A = hashlib.sha256(b"a" * 100).hexdigest()
TAIL_B = hashlib.sha256(b"b" * 300).hexdigest()
BASE = ControlRecord(
    url="https://example.com/data/file.bin?sig=abc%2F",
    total=1000,
    etag='W/"v1-\u00e9"',
    last_modified="Wed, 21 Oct 2015 07:28:00 GMT",
    segments=(
        Segment(0, 100, 400, TAIL_A),
        Segment(400, 400, 700, ""),
        Segment(700, 1000, 1000, TAIL_B),
    ),
    generation=7,
)

# -- the format, written out independently of the module ---------------------------------------


def canonical(document: object, *, ensure_ascii: bool = False) -> bytes:
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=ensure_ascii)
    return text.encode("utf-8", "surrogatepass")


def seal(
    body: bytes, *, magic: bytes = MAGIC, version: int = VERSION, length: int | None = None
) -> bytes:
    framed = magic + struct.pack(">HI", version, len(body) if length is None else length) + body
    return framed + hashlib.sha256(framed).digest()


def document_of(record: ControlRecord) -> dict[str, Any]:
    body = encode(record)[HEADER_SIZE:-CHECKSUM_SIZE]
    document: dict[str, Any] = json.loads(body)
    return document


def test_the_format_is_the_documented_one() -> None:
    data = encode(BASE)
    assert data[:8] == b"\x89RIOCTL\n"
    assert struct.unpack(">HI", data[8:14]) == (1, len(data) - HEADER_SIZE - CHECKSUM_SIZE)
    assert data[-CHECKSUM_SIZE:] == hashlib.sha256(data[:-CHECKSUM_SIZE]).digest()
    document = document_of(BASE)
    assert document == {
        "etag": 'W/"v1-\u00e9"',
        "generation": 7,
        "last_modified": "Wed, 21 Oct 2015 07:28:00 GMT",
        "segments": [
            {"cursor": 100, "start": 0, "stop": 400, "tail_sha256": TAIL_A},
            {"cursor": 400, "start": 400, "stop": 700, "tail_sha256": ""},
            {"cursor": 1000, "start": 700, "stop": 1000, "tail_sha256": TAIL_B},
        ],
        "total": 1000,
        "url": "https://example.com/data/file.bin?sig=abc%2F",
    }
    # The test's own sealing reproduces the module's bytes, so the edits below are faithful.
    assert seal(canonical(document)) == data


def test_error_type() -> None:
    assert issubclass(ControlRecordError, RangeioError)
    assert issubclass(ControlRecordError, ValueError)


# -- valid records -----------------------------------------------------------------------------

CONTROL_CHARS = "".join(chr(i) for i in range(32)) + "\x7f"
text_chars = st.characters(exclude_categories=["Cs"], exclude_characters=CONTROL_CHARS)
urls = st.text(text_chars, min_size=1, max_size=80)
validators = st.none() | st.text(text_chars, max_size=40)
HEX64 = st.text("0123456789abcdef", min_size=64, max_size=64)
# Small values find the edge cases, large ones the 2**62 bound; 2**56 keeps sums in range.
lengths = st.integers(1, 50) | st.integers(1, 2**56)
gaps = st.integers(0, 50) | st.integers(0, 2**56)


@st.composite
def segments_in(draw: st.DrawFn, total_known: bool, max_segments: int) -> list[Segment]:
    out: list[Segment] = []
    pos = 0
    for _ in range(draw(st.integers(0, max_segments))):
        start = pos + draw(gaps)
        stop = start + draw(lengths)
        cursor = draw(st.integers(start, stop))
        tail = "" if cursor == start else draw(HEX64)
        out.append(Segment(start, cursor, stop, tail))
        pos = stop
    if not total_known and draw(st.booleans()):
        # A download of unknown length ends with a segment that runs to EOF.
        start = pos + draw(gaps)
        cursor = start + draw(st.integers(0, 50) | st.integers(0, 2**56))
        out.append(Segment(start, cursor, None, "" if cursor == start else draw(HEX64)))
    return out


@st.composite
def records(draw: st.DrawFn, max_segments: int = 6) -> ControlRecord:
    total_known = draw(st.booleans())
    segments = draw(segments_in(total_known, max_segments))
    total = None
    if total_known:
        end = segments[-1].stop if segments else 0
        assert end is not None
        total = end + draw(st.integers(0, 50) | st.integers(0, 2**56))
    return ControlRecord(
        url=draw(urls),
        total=total,
        etag=draw(validators),
        last_modified=draw(validators),
        segments=tuple(segments),
        generation=draw(st.integers(0, 10) | st.integers(0, MAX_OFFSET)),
    )


@SETTINGS
@given(records())
def test_round_trip(record: ControlRecord) -> None:
    data = encode(record)
    assert len(data) <= MAX_RECORD_BYTES
    assert decode(data) == record
    assert encode(decode(data)) == data
    assert decode(bytearray(data)) == record


@SETTINGS
@given(records())
def test_is_complete_means_every_byte_is_durable(record: ControlRecord) -> None:
    assert is_complete(record) == (
        record.total is not None and durable_bytes(record) == record.total
    )
    assert durable_bytes(record) == sum(s.cursor - s.start for s in record.segments)


def test_the_largest_record_fits() -> None:
    # Every bound at its maximum, with 4-byte UTF-8 characters and 19-digit numbers.
    wide = "\U0010fffd"
    step = MAX_OFFSET // MAX_SEGMENTS
    record = ControlRecord(
        url=wide * MAX_URL_CHARS,
        total=MAX_OFFSET,
        etag=wide * MAX_VALIDATOR_CHARS,
        last_modified=wide * MAX_VALIDATOR_CHARS,
        segments=tuple(
            Segment(i * step, i * step + step - 1, i * step + step, "f" * 64) for i in range(64)
        ),
        generation=MAX_OFFSET,
    )
    data = encode(record)
    assert len(data) <= MAX_RECORD_BYTES
    assert decode(data) == record


def test_edge_records_round_trip() -> None:
    for record in [
        ControlRecord("u", None),
        ControlRecord("u", 0),
        ControlRecord("u", None, segments=(Segment(0, 0, None),)),
        ControlRecord("u", None, segments=(Segment(5, 9, None, TAIL_A),)),
        ControlRecord("u", MAX_OFFSET, segments=(Segment(0, MAX_OFFSET, MAX_OFFSET, TAIL_A),)),
        ControlRecord("u", 10, segments=(Segment(0, 5, 5, TAIL_A), Segment(5, 5, 10))),
    ]:
        assert decode(encode(record)) == record


# -- helpers -----------------------------------------------------------------------------------


def test_durable_bytes_and_is_complete() -> None:
    assert durable_bytes(BASE) == 100 + 0 + 300
    assert not is_complete(BASE)
    done = ControlRecord(
        "u", 1000, segments=(Segment(0, 600, 600, TAIL_A), Segment(600, 1000, 1000, TAIL_B))
    )
    assert durable_bytes(done) == 1000 and is_complete(done)
    gap = ControlRecord(
        "u", 1000, segments=(Segment(0, 500, 500, TAIL_A), Segment(600, 1000, 1000, TAIL_B))
    )
    assert not is_complete(gap)
    assert is_complete(ControlRecord("u", 0))
    assert not is_complete(ControlRecord("u", None, segments=(Segment(0, 10, None, TAIL_A),)))


def test_tail_range_and_digest() -> None:
    assert tail_range(Segment(100, 100, 500)) == ByteRange(100, 100)
    assert tail_range(Segment(100, 300, 500)) == ByteRange(100, 300)
    big = Segment(10, 10 + 3 * TAIL_BYTES, None)
    assert tail_range(big) == ByteRange(10 + 2 * TAIL_BYTES, 10 + 3 * TAIL_BYTES)
    assert tail_digest(b"") == ""
    assert tail_digest(b"a" * 100) == TAIL_A
    assert tail_digest(b"x" * TAIL_BYTES) == hashlib.sha256(b"x" * TAIL_BYTES).hexdigest()
    with pytest.raises(ValueError):
        tail_digest(b"x" * (TAIL_BYTES + 1))


# -- byte-level corruption ---------------------------------------------------------------------


def test_every_single_bit_and_byte_flip_is_refused() -> None:
    data = encode(BASE)
    for i in range(len(data)):
        for mask in (1, 2, 4, 8, 16, 32, 64, 128, 0xFF):
            corrupt = bytearray(data)
            corrupt[i] ^= mask
            with pytest.raises(ControlRecordError):
                decode(bytes(corrupt))


@SETTINGS
@given(records(), st.data())
def test_a_flip_anywhere_in_any_record_is_refused(
    record: ControlRecord, data: st.DataObject
) -> None:
    encoded = bytearray(encode(record))
    i = data.draw(st.integers(0, len(encoded) - 1))
    encoded[i] ^= data.draw(st.integers(1, 255))
    with pytest.raises(ControlRecordError):
        decode(bytes(encoded))


def test_every_truncation_is_refused() -> None:
    data = encode(BASE)
    for n in range(len(data)):
        with pytest.raises(ControlRecordError):
            decode(data[:n])


@pytest.mark.parametrize("extra", [b"\x00", b"\n", b"x" * 100, b"__SELF__"])
def test_appended_garbage_is_refused(extra: bytes) -> None:
    data = encode(BASE)
    with pytest.raises(ControlRecordError, match="length mismatch"):
        decode(data + (data if extra == b"__SELF__" else extra))


@SETTINGS
@given(st.binary(max_size=400))
def test_random_bytes_are_refused(data: bytes) -> None:
    with pytest.raises(ControlRecordError):
        decode(data)
    with pytest.raises(ControlRecordError):
        decode(MAGIC + data)


@SETTINGS
@given(st.binary(max_size=400))
def test_a_sealed_random_body_is_refused(body: bytes) -> None:
    # A correct checksum over garbage: the JSON and field checks have to do the refusing.
    with pytest.raises(ControlRecordError):
        decode(seal(body))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


@SETTINGS
@given(records(max_segments=3), st.data())
def test_a_sealed_edit_is_refused_or_exactly_valid(
    record: ControlRecord, data: st.DataObject
) -> None:
    """Replace one field (top level or in a segment) with any JSON value: decode either refuses
    with ControlRecordError or returns a record that encodes back to the same bytes."""
    document = document_of(record)
    target: dict[str, Any] = document
    in_segment = data.draw(st.booleans())
    if record.segments and in_segment:
        target = document["segments"][data.draw(st.integers(0, len(record.segments) - 1))]
    key = data.draw(st.sampled_from(sorted(target)))
    target[key] = data.draw(json_values)
    sealed = seal(canonical(document, ensure_ascii=True))
    try:
        decoded = decode(sealed)
    except ControlRecordError:
        return
    assert encode(decoded) == seal(canonical(document))


def test_oversized_input_is_refused_before_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    def must_not_parse(body: bytes) -> object:
        raise AssertionError("parsed an oversized record")

    monkeypatch.setattr(control, "_parse_json", must_not_parse)
    document = document_of(BASE)
    document["url"] = "x" * MAX_RECORD_BYTES
    huge = seal(canonical(document))
    with pytest.raises(ControlRecordError, match="more than a control record can hold"):
        decode(huge)
    with pytest.raises(ControlRecordError, match="more than a control record can hold"):
        decode(b"\x00" * (10 * 1024 * 1024))


def test_non_bytes_input_is_refused() -> None:
    with pytest.raises(ControlRecordError):
        decode(encode(BASE).decode("latin-1"))  # type: ignore[arg-type]
    with pytest.raises(ControlRecordError):
        decode(None)  # type: ignore[arg-type]


# -- the envelope, with a correct checksum -----------------------------------------------------


def test_envelope_fields_are_checked_even_with_a_good_checksum() -> None:
    body = canonical(document_of(BASE))
    assert decode(seal(body)) == BASE
    with pytest.raises(ControlRecordError, match="bad magic"):
        decode(seal(body, magic=b"\x89RIOCTX\n"))
    with pytest.raises(ControlRecordError, match="version 2"):
        decode(seal(body, version=2))
    with pytest.raises(ControlRecordError, match="version 0"):
        decode(seal(body, version=0))
    for length in (0, len(body) - 1, len(body) + 1, 2**32 - 1):
        with pytest.raises(ControlRecordError, match="length mismatch"):
            decode(seal(body, length=length))


# -- every invalid field, sealed correctly -----------------------------------------------------

Edit = Callable[[dict[str, Any]], None]


def setter(key: str, value: object) -> Edit:
    def edit(document: dict[str, Any]) -> None:
        document[key] = value

    return edit


def seg_setter(index: int, key: str, value: object) -> Edit:
    def edit(document: dict[str, Any]) -> None:
        document["segments"][index][key] = value

    return edit


def delete(key: str) -> Edit:
    def edit(document: dict[str, Any]) -> None:
        del document[key]

    return edit


def seg_delete(index: int, key: str) -> Edit:
    def edit(document: dict[str, Any]) -> None:
        del document["segments"][index][key]

    return edit


def open_last_segment(document: dict[str, Any]) -> None:
    document["segments"][-1]["stop"] = None


def open_first_segment_unknown_total(document: dict[str, Any]) -> None:
    document["total"] = None
    document["segments"][0]["stop"] = None


def swap_segments(document: dict[str, Any]) -> None:
    segs = document["segments"]
    segs[0], segs[1] = segs[1], segs[0]


def overlap_segments(document: dict[str, Any]) -> None:
    document["segments"][1]["start"] = 399
    document["segments"][1]["cursor"] = 399


def too_many_segments(document: dict[str, Any]) -> None:
    document["total"] = 10 * (MAX_SEGMENTS + 1)
    document["segments"] = [
        {"cursor": 10 * i, "start": 10 * i, "stop": 10 * i + 10, "tail_sha256": ""}
        for i in range(MAX_SEGMENTS + 1)
    ]


FIELD_CASES: list[tuple[str, Edit, str]] = [
    # the record object
    ("missing url", delete("url"), "missing keys"),
    ("missing segments", delete("segments"), "missing keys"),
    ("unknown key", setter("created", 0), "unknown keys"),
    ("url int", setter("url", 5), "url is int"),
    ("url null", setter("url", None), "url is NoneType"),
    ("url empty", setter("url", ""), "url is empty"),
    ("url too long", setter("url", "u" * (MAX_URL_CHARS + 1)), "url is longer"),
    ("url newline", setter("url", "https://a/\nb"), "control character"),
    ("url nul", setter("url", "https://a/\x00"), "control character"),
    ("url del", setter("url", "https://a/\x7f"), "control character"),
    ("url lone surrogate", setter("url", "https://a/\ud800"), "lone surrogate"),
    ("etag int", setter("etag", 1), "etag is int"),
    ("etag list", setter("etag", ["x"]), "etag is list"),
    ("etag too long", setter("etag", '"' + "e" * MAX_VALIDATOR_CHARS + '"'), "etag is longer"),
    ("etag control", setter("etag", '"a\tb"'), "etag contains a control"),
    ("last_modified bool", setter("last_modified", False), "last_modified is bool"),
    ("last_modified control", setter("last_modified", "Wed\r\n"), "last_modified contains"),
    ("total negative", setter("total", -1), "total -1 is outside"),
    ("total too big", setter("total", MAX_OFFSET + 1), "is outside"),
    ("total 19 digits", setter("total", 10**18 * 9), "is outside"),
    ("total 20 digits", setter("total", 10**19), "more than 19 digits"),
    ("total huge", setter("total", 10**200), "more than 19 digits"),
    ("total float", setter("total", 1000.0), "non-integer number"),
    ("total NaN", setter("total", float("nan")), "non-integer number"),
    ("total infinity", setter("total", float("inf")), "non-integer number"),
    ("total bool", setter("total", True), "total is bool"),
    ("total string", setter("total", "1000"), "total is str"),
    ("generation negative", setter("generation", -5), "generation -5 is outside"),
    ("generation null", setter("generation", None), "generation is NoneType"),
    ("generation float", setter("generation", 1.5), "non-integer number"),
    ("segments object", setter("segments", {}), "segments is not a list"),
    ("segments null", setter("segments", None), "segments is not a list"),
    ("too many segments", too_many_segments, "65 segments, more than 64"),
    # one segment
    (
        "segment is a list",
        setter("segments", [[0, 100, 400, TAIL_A]]),
        "segment 0 is not an object",
    ),
    ("segment missing key", seg_delete(1, "cursor"), "segment 1 has missing keys"),
    (
        "segment unknown key",
        seg_setter(0, "blocks", []),
        "segment 0 has missing keys \\[\\] / unknown keys",
    ),
    ("start negative", seg_setter(0, "start", -1), "segment 0 start -1 is outside"),
    ("start string", seg_setter(0, "start", "0"), "segment 0 start is str"),
    ("start null", seg_setter(0, "start", None), "segment 0 start is NoneType"),
    ("cursor before start", seg_setter(2, "cursor", 699), "cursor 699 is before start 700"),
    ("cursor past stop", seg_setter(0, "cursor", 401), "cursor 401 is past stop 400"),
    ("cursor too big", seg_setter(0, "cursor", MAX_OFFSET + 1), "cursor .* is outside"),
    ("cursor bool", seg_setter(1, "cursor", False), "cursor is bool"),
    ("stop past total", seg_setter(2, "stop", 1001), "stop 1001 is past the total 1000"),
    ("stop equals start", seg_setter(1, "stop", 400), "empty or reversed"),
    ("stop before start", seg_setter(1, "stop", 300), "empty or reversed"),
    ("stop float", seg_setter(1, "stop", 700.0), "non-integer number"),
    ("open stop with a known total", open_last_segment, "no stop although the total"),
    (
        "open segment not last",
        open_first_segment_unknown_total,
        "follows a segment that runs to EOF",
    ),
    ("segments unsorted", swap_segments, "before the previous stop"),
    ("segments overlap", overlap_segments, "starts at 399, before the previous stop 400"),
    ("tail short", seg_setter(0, "tail_sha256", TAIL_A[:63]), "not 64 lower-case hex"),
    ("tail long", seg_setter(0, "tail_sha256", TAIL_A + "0"), "not 64 lower-case hex"),
    ("tail upper case", seg_setter(0, "tail_sha256", TAIL_A.upper()), "not 64 lower-case hex"),
    ("tail not hex", seg_setter(0, "tail_sha256", "g" * 64), "not 64 lower-case hex"),
    ("tail non-ascii digits", seg_setter(0, "tail_sha256", "\u0661" * 64), "not 64 lower-case hex"),
    (
        "tail trailing newline",
        seg_setter(0, "tail_sha256", TAIL_A[:63] + "\n"),
        "not 64 lower-case hex",
    ),
    ("tail empty with data", seg_setter(0, "tail_sha256", ""), "not 64 lower-case hex"),
    ("tail without data", seg_setter(1, "tail_sha256", TAIL_A), "tail hash but no durable bytes"),
    ("tail null", seg_setter(0, "tail_sha256", None), "tail_sha256 is NoneType"),
    ("tail int", seg_setter(0, "tail_sha256", 0), "tail_sha256 is int"),
    # the document as a whole
    ("empty object", lambda d: d.clear(), "missing keys"),
]


@pytest.mark.parametrize(
    ("edit", "fragment"), [c[1:] for c in FIELD_CASES], ids=[c[0] for c in FIELD_CASES]
)
def test_every_invalid_field_is_refused(edit: Edit, fragment: str) -> None:
    document = document_of(BASE)
    edit(document)
    # ensure_ascii: the lone surrogate can only be written escaped; for the other cases it only
    # changes how non-ASCII is spelled, which the field checks meet before the canonical check.
    with pytest.raises(ControlRecordError, match=fragment) as caught:
        decode(seal(canonical(document, ensure_ascii=True)))
    assert "checksum" not in str(caught.value)


def test_field_cases_start_from_a_valid_document() -> None:
    """Control: the unedited document, sealed the same way, is accepted."""
    assert decode(seal(canonical(document_of(BASE)))) == BASE


def move_url_first(body: bytes) -> bytes:
    url = json.dumps(BASE.url).encode()
    moved = body.replace(b',"url":' + url + b"}", b"}").replace(b"{", b'{"url":' + url + b",", 1)
    assert json.loads(moved) == json.loads(body)
    return moved


RAW_BODY_CASES: list[tuple[str, Callable[[bytes], bytes], str]] = [
    ("invalid utf-8", lambda b: b.replace(b"example", b"ex\xffample"), "not valid JSON"),
    ("not json", lambda b: b[:-1], "not valid JSON"),
    ("trailing data", lambda b: b + b"{}", "not valid JSON"),
    ("trailing space", lambda b: b + b" ", "canonical"),
    (
        "duplicate key",
        lambda b: b.replace(b'{"etag"', b'{"url":"https://x/","etag"', 1),
        "duplicate key",
    ),
    (
        "duplicate segment key",
        lambda b: b.replace(b'{"cursor":100,', b'{"cursor":1,"cursor":100,', 1),
        "duplicate key",
    ),
    ("top level array", lambda b: b"[" + b + b"]", "the record is not an object"),
    ("top level number", lambda b: b"12", "the record is not an object"),
    ("empty body", lambda b: b"", "not valid JSON"),
    ("deep nesting", lambda b: b"[" * 30_000 + b"]" * 30_000, "not valid JSON"),
    ("NaN literal", lambda b: b.replace(b'"total":1000', b'"total":NaN'), "non-integer number"),
    ("exponent", lambda b: b.replace(b'"total":1000', b'"total":1e3'), "non-integer number"),
    ("negative zero", lambda b: b.replace(b'"generation":7', b'"generation":-0'), "canonical"),
    ("spaces", lambda b: b.replace(b",", b", "), "canonical"),
    ("keys unsorted", lambda b: move_url_first(b), "canonical"),
    ("escaped non-ascii", lambda b: b.replace("\u00e9".encode(), b"\\u00e9"), "canonical"),
    ("escaped slash", lambda b: b.replace(b"data/file", b"data\\/file"), "canonical"),
]


@pytest.mark.parametrize(
    ("mangle", "fragment"), [c[1:] for c in RAW_BODY_CASES], ids=[c[0] for c in RAW_BODY_CASES]
)
def test_every_malformed_body_is_refused(mangle: Callable[[bytes], bytes], fragment: str) -> None:
    body = canonical(document_of(BASE))
    mangled = mangle(body)
    assert mangled != body, "the case must change the body"
    with pytest.raises(ControlRecordError, match=fragment) as caught:
        decode(seal(mangled))
    assert "checksum" not in str(caught.value)


# -- encode refuses what decode would ----------------------------------------------------------

INVALID_RECORDS: list[tuple[str, ControlRecord]] = [
    ("empty url", ControlRecord("", 10)),
    ("url type", ControlRecord(b"https://x/", 10)),  # type: ignore[arg-type]
    ("negative total", ControlRecord("u", -1)),
    ("total bool", ControlRecord("u", True)),
    ("generation too big", ControlRecord("u", 1, generation=MAX_OFFSET + 1)),
    ("segments as a list", ControlRecord("u", 10, segments=[Segment(0, 0, 10)])),  # type: ignore[arg-type]
    ("segment type", ControlRecord("u", 10, segments=((0, 0, 10, ""),))),  # type: ignore[arg-type]
    ("cursor before start", ControlRecord("u", 10, segments=(Segment(5, 3, 10, TAIL_A),))),
    ("cursor past stop", ControlRecord("u", 10, segments=(Segment(0, 11, 10, TAIL_A),))),
    ("stop past total", ControlRecord("u", 10, segments=(Segment(0, 0, 11),))),
    ("open stop, known total", ControlRecord("u", 10, segments=(Segment(0, 0, None),))),
    ("bad tail", ControlRecord("u", 10, segments=(Segment(0, 5, 10, "abc"),))),
    ("tail on empty", ControlRecord("u", 10, segments=(Segment(0, 0, 10, TAIL_A),))),
    ("overlap", ControlRecord("u", 10, segments=(Segment(0, 0, 6), Segment(5, 5, 10)))),
    ("etag control", ControlRecord("u", 10, etag='"a\x00"')),
    ("surrogate", ControlRecord("u\udcff", 10)),
    (
        "too many segments",
        ControlRecord(
            "u", None, segments=tuple(Segment(i, i, i + 1) for i in range(MAX_SEGMENTS + 1))
        ),
    ),
]


@pytest.mark.parametrize(
    "record", [c[1] for c in INVALID_RECORDS], ids=[c[0] for c in INVALID_RECORDS]
)
def test_encode_refuses_invalid_records(record: ControlRecord) -> None:
    with pytest.raises(ValueError) as caught:
        encode(record)
    assert isinstance(caught.value, ControlRecordError)
    with pytest.raises(ControlRecordError):
        validate(record)


def test_max_segments_is_allowed_one_more_is_not() -> None:
    ok = ControlRecord("u", None, segments=tuple(Segment(i, i, i + 1) for i in range(MAX_SEGMENTS)))
    assert decode(encode(ok)) == ok
    with pytest.raises(ValueError, match="65 segments"):
        encode(
            ControlRecord(
                "u", None, segments=(*ok.segments, Segment(MAX_SEGMENTS, MAX_SEGMENTS, None))
            )
        )


def test_validate_refuses_a_non_record() -> None:
    with pytest.raises(ControlRecordError):
        validate(object())  # type: ignore[arg-type]
