"""The resumable download's control record (``<dest>.part.ctrl``): what is durable, encoded and checked.

On-disk format, version 1 (all integers big-endian)::

    offset  size  field
    0       8     MAGIC  b"\\x89RIOCTL\\n"
    8       2     format version (u16), currently 1
    10      4     body length n (u32)
    14      n     body: UTF-8 JSON, keys sorted, no whitespace (the one canonical encoding)
    14+n    32    SHA-256 of bytes [0, 14+n)

The body is ``{"etag", "generation", "last_modified", "segments", "total", "url"}`` and each
segment is ``{"cursor", "start", "stop", "tail_sha256"}``. Nothing in it grows with the number of
blocks written: a segment is a cursor, not a list of blocks, and there are at most MAX_SEGMENTS.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from dataclasses import dataclass
from typing import NoReturn, TypeVar

from rangeio._core.ranges import ByteRange
from rangeio.errors import RangeioError

# A non-ASCII first byte and a trailing newline (the PNG trick): a file that went through a text
# mode copy, or a text file that happens to sit at the path, is refused at the first 8 bytes.
MAGIC = b"\x89RIOCTL\n"
VERSION = 1
TAIL_BYTES = 64 * 1024
MAX_SEGMENTS = 64
# Offsets stay far below 2**63 so that sums of them never leave a signed 64-bit range.
MAX_OFFSET = 2**62
MAX_URL_CHARS = 8192
MAX_VALIDATOR_CHARS = 1024
# Checked on the raw input before anything is parsed. The bounds above keep every valid record
# well inside it: 8192 + 2 * 1024 characters of at most 4 UTF-8 bytes, plus 64 segments of < 200.
MAX_RECORD_BYTES = 64 * 1024

_HEADER = struct.Struct(">8sHI")
_CHECKSUM_BYTES = 32
_TAIL_HEX = re.compile(r"[0-9a-f]{64}")
# C0 controls and DEL have no business in a URL or header value; lone surrogates cannot be
# written as UTF-8 at all. Anything else (obs-text included) is kept as the server sent it.
_BAD_TEXT = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
_MAX_INT_DIGITS = 19
_T = TypeVar("_T", int, str)
_RECORD_KEYS = frozenset({"etag", "generation", "last_modified", "segments", "total", "url"})
_SEGMENT_KEYS = frozenset({"cursor", "start", "stop", "tail_sha256"})


class ControlRecordError(RangeioError, ValueError):
    """The control record is corrupt, truncated, of another version, or describes an impossible
    state. The only safe reaction is to discard it (and the ``.part`` it describes)."""


@dataclass(frozen=True, slots=True)
class Segment:
    """Bytes ``[start, cursor)`` of ``[start, stop)`` are durable in the ``.part`` file.

    ``stop`` is None only when the total length is unknown (read until EOF). ``tail_sha256`` is
    the hex SHA-256 of ``tail_range(segment)``, the last up-to-TAIL_BYTES durable bytes, so that a
    resume can re-read and check the block most likely to be torn; "" when nothing is durable.
    """

    start: int
    cursor: int
    stop: int | None
    tail_sha256: str = ""


@dataclass(frozen=True, slots=True)
class ControlRecord:
    """Everything a resume needs: which remote version (url + validators) and which bytes are done.

    ``etag`` is in header form (``"abc"`` or ``W/"abc"``). ``generation`` is bumped by the writer on
    every checkpoint, so a writer that alternates between two files can pick the newer valid one.
    The format version lives in the envelope, not here: a decoded record is always current.
    """

    url: str
    total: int | None
    etag: str | None = None
    last_modified: str | None = None
    segments: tuple[Segment, ...] = ()
    generation: int = 0


def durable_bytes(record: ControlRecord) -> int:
    """How many bytes of the download are already on disk."""
    return sum(s.cursor - s.start for s in record.segments)


def is_complete(record: ControlRecord) -> bool:
    """Whether every byte of a known-length download is durable.

    With an unknown total only EOF can say the download is done, never the record.
    """
    if record.total is None:
        return False
    # Segments are disjoint and inside [0, total), so full length means full coverage.
    return (
        all(s.cursor == s.stop for s in record.segments) and durable_bytes(record) == record.total
    )


def tail_range(segment: Segment) -> ByteRange:
    """The bytes whose hash is ``segment.tail_sha256``: the last up-to-TAIL_BYTES before the cursor."""
    return ByteRange(max(segment.start, segment.cursor - TAIL_BYTES), segment.cursor)


def tail_digest(tail: bytes) -> str:
    """The ``tail_sha256`` value for the bytes of ``tail_range`` ("" for none)."""
    if len(tail) > TAIL_BYTES:
        raise ValueError(f"a tail is at most {TAIL_BYTES} bytes, got {len(tail)}")
    return hashlib.sha256(tail).hexdigest() if tail else ""


# -- encoding ----------------------------------------------------------------------------------


def encode(record: ControlRecord) -> bytes:
    """The on-disk bytes of ``record``; raises ControlRecordError (a ValueError) for any record
    that ``decode`` would refuse, so a writer can never produce an unreadable checkpoint."""
    validate(record)
    return _seal(_body(record))


def _body(record: ControlRecord) -> bytes:
    document = {
        "etag": record.etag,
        "generation": record.generation,
        "last_modified": record.last_modified,
        "segments": [
            {"cursor": s.cursor, "start": s.start, "stop": s.stop, "tail_sha256": s.tail_sha256}
            for s in record.segments
        ],
        "total": record.total,
        "url": record.url,
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def _seal(body: bytes) -> bytes:
    if _HEADER.size + len(body) + _CHECKSUM_BYTES > MAX_RECORD_BYTES:
        _fail(f"the record would be larger than {MAX_RECORD_BYTES} bytes")
    framed = _HEADER.pack(MAGIC, VERSION, len(body)) + body
    return framed + hashlib.sha256(framed).digest()


# -- decoding ----------------------------------------------------------------------------------


def decode(data: bytes | bytearray) -> ControlRecord:
    """The record in ``data``; raises ControlRecordError, and nothing else, for any corruption."""
    body = _unseal(data)
    document = _parse_json(body)
    record = _record_from(document)
    validate(record)
    # One record, one encoding: anything else was not written by `encode`, checksum or not.
    if _body(record) != body:
        _fail("the body is not in canonical form")
    return record


def _unseal(data: bytes | bytearray) -> bytes:
    # Every check here is on lengths and fixed offsets, before any parsing, so hostile input
    # costs at most one SHA-256 over MAX_RECORD_BYTES.
    if not isinstance(data, (bytes, bytearray)):
        _fail(f"expected bytes, got {type(data).__name__}")
    if len(data) > MAX_RECORD_BYTES:
        _fail(f"{len(data)} bytes is more than a control record can hold ({MAX_RECORD_BYTES})")
    data = bytes(data)
    if len(data) < _HEADER.size + _CHECKSUM_BYTES:
        _fail(f"truncated: {len(data)} bytes")
    magic, version, length = _HEADER.unpack_from(data)
    if magic != MAGIC:
        _fail("not a rangeio control record (bad magic)")
    if version != VERSION:
        _fail(f"unsupported control record version {version} (this rangeio reads {VERSION})")
    if len(data) != _HEADER.size + length + _CHECKSUM_BYTES:
        _fail(f"length mismatch: the header says a {length}-byte body, the record has {len(data)}")
    framed, checksum = data[:-_CHECKSUM_BYTES], data[-_CHECKSUM_BYTES:]
    if hashlib.sha256(framed).digest() != checksum:
        _fail("checksum mismatch")
    return framed[_HEADER.size :]


def _parse_json(body: bytes) -> object:
    try:
        text = body.decode("utf-8")
        return json.loads(
            text,
            object_pairs_hook=_unique_keys,
            parse_int=_bounded_int,
            parse_float=_no_float,
            parse_constant=_no_float,
        )
    except ControlRecordError:
        raise
    # RecursionError: deeply nested arrays. Both can only come from a buggy writer, as the
    # checksum matched; either way the record is unusable.
    except (ValueError, RecursionError) as e:
        raise ControlRecordError(f"the body is not valid JSON: {e}") from None


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    document = dict(pairs)
    if len(document) != len(pairs):
        _fail("duplicate key in the body")
    return document


def _bounded_int(text: str) -> int:
    # Refused before int() runs: a 60 KiB digit string would otherwise cost quadratic time.
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        _fail(f"integer with more than {_MAX_INT_DIGITS} digits")
    return int(text)


def _no_float(text: str) -> NoReturn:
    _fail(f"non-integer number {text[:20]!r}")


def _record_from(document: object) -> ControlRecord:
    fields = _fields(document, _RECORD_KEYS, "the record")
    segments = fields["segments"]
    if not isinstance(segments, list):
        _fail("segments is not a list")
    if len(segments) > MAX_SEGMENTS:
        _fail(f"{len(segments)} segments, more than {MAX_SEGMENTS}")
    return ControlRecord(
        url=_typed(fields["url"], str, "url"),
        total=_typed_or_none(fields["total"], int, "total"),
        etag=_typed_or_none(fields["etag"], str, "etag"),
        last_modified=_typed_or_none(fields["last_modified"], str, "last_modified"),
        segments=tuple(_segment_from(s, i) for i, s in enumerate(segments)),
        generation=_typed(fields["generation"], int, "generation"),
    )


def _segment_from(document: object, index: int) -> Segment:
    where = f"segment {index}"
    fields = _fields(document, _SEGMENT_KEYS, where)
    return Segment(
        start=_typed(fields["start"], int, f"{where} start"),
        cursor=_typed(fields["cursor"], int, f"{where} cursor"),
        stop=_typed_or_none(fields["stop"], int, f"{where} stop"),
        tail_sha256=_typed(fields["tail_sha256"], str, f"{where} tail_sha256"),
    )


def _fields(document: object, keys: frozenset[str], what: str) -> dict[str, object]:
    if not isinstance(document, dict):
        _fail(f"{what} is not an object")
    if document.keys() != keys:
        missing, extra = sorted(keys - document.keys()), sorted(document.keys() - keys)
        _fail(f"{what} has missing keys {missing} / unknown keys {extra}")
    return document


def _typed(value: object, kind: type[_T], what: str) -> _T:
    # `type(...) is`, not isinstance: JSON true/false are bools, and bool is an int subclass.
    if type(value) is not kind:
        _fail(f"{what} is {type(value).__name__}, not {kind.__name__}")
    return value


def _typed_or_none(value: object, kind: type[_T], what: str) -> _T | None:
    return None if value is None else _typed(value, kind, what)


# -- what the format can hold ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fit:
    """What a writer may store of a download's record. ``record`` is the record to write, with
    the validators the format cannot hold left out, or None when no record may be written: the
    download then runs without resuming (each attempt starts again at byte 0). ``reason`` says
    what was left out and why, for the log ("" when the record fits as it is)."""

    record: ControlRecord | None
    reason: str = ""


def fit(record: ControlRecord) -> Fit:
    """Fit ``record``'s text fields to the format's caps (MAX_URL_CHARS, MAX_VALIDATOR_CHARS, no
    control characters). Servers send what they like; a download must not fail over it.

    - A URL the record cannot hold: no record. The URL is what ties ``.part`` to its download,
      and the format has no other way to name it.
    - An ETag or Last-Modified it cannot hold is left out when the other validator still pins
      the version: the resume's If-Range carries that one, and the answer is compared on it.
    - When leaving a validator out leaves none: no record. The server does tell its versions
      apart by a validator, so a resume pinned by the size alone could splice two versions of
      one length. (A server that sends no validator at all is resumed on the size, as before:
      there nothing was lost.)

    Sizes and offsets are not fitted: ``meaning_of`` (`_core/download.py`) refuses a size over MAX_OFFSET before any
    record exists, and encode() still refuses anything else the format cannot hold.
    """
    if _text_problem(record.url, MAX_URL_CHARS) is not None:
        return Fit(None, f"the URL {_text_problem(record.url, MAX_URL_CHARS)}")
    dropped: list[str] = []
    etag, last_modified = record.etag, record.last_modified
    if etag is not None and (problem := _text_problem(etag, MAX_VALIDATOR_CHARS)) is not None:
        dropped.append(f"the ETag {problem}")
        etag = None
    if (
        last_modified is not None
        and (problem := _text_problem(last_modified, MAX_VALIDATOR_CHARS)) is not None
    ):
        dropped.append(f"Last-Modified {problem}")
        last_modified = None
    if not dropped:
        return Fit(record)
    reason = "; ".join(dropped)
    if etag is None and last_modified is None:
        return Fit(None, f"{reason}, and no other validator pins the version")
    kept = "the ETag" if etag is not None else "Last-Modified"
    return Fit(
        ControlRecord(
            record.url, record.total, etag, last_modified, record.segments, record.generation
        ),
        f"{reason}: the record keeps {kept} only",
    )


def resumable_bytes(record: ControlRecord | None) -> int:
    """How many bytes a later attempt can resume from once ``record`` is written (0 when no
    record may be written, see ``fit``)."""
    if record is None or fit(record).record is None:
        return 0
    return durable_bytes(record)


# -- validation --------------------------------------------------------------------------------


def validate(record: ControlRecord) -> None:
    """Raise ControlRecordError unless ``record`` describes a possible download state."""
    if type(record) is not ControlRecord:
        _fail(f"expected a ControlRecord, got {type(record).__name__}")
    _check_text(record.url, MAX_URL_CHARS, "url", allow_none=False)
    if not record.url:
        _fail("url is empty")
    _check_text(record.etag, MAX_VALIDATOR_CHARS, "etag")
    _check_text(record.last_modified, MAX_VALIDATOR_CHARS, "last_modified")
    _check_offset(record.generation, "generation")
    total = record.total
    if total is not None:
        _check_offset(total, "total")
    segments = record.segments
    if type(segments) is not tuple:
        _fail("segments is not a tuple")
    if len(segments) > MAX_SEGMENTS:
        _fail(f"{len(segments)} segments, more than {MAX_SEGMENTS}")
    previous_stop: int | None = 0
    for i, segment in enumerate(segments):
        _check_segment(segment, i, total)
        if previous_stop is None:
            _fail(f"segment {i} follows a segment that runs to EOF")
        if segment.start < previous_stop:
            _fail(
                f"segment {i} starts at {segment.start}, before the previous stop {previous_stop}"
            )
        previous_stop = segment.stop


def _check_segment(segment: object, index: int, total: int | None) -> None:
    where = f"segment {index}"
    if type(segment) is not Segment:
        _fail(f"{where} is {type(segment).__name__}, not Segment")
    start, cursor, stop = segment.start, segment.cursor, segment.stop
    _check_offset(start, f"{where} start")
    _check_offset(cursor, f"{where} cursor")
    if cursor < start:
        _fail(f"{where}: cursor {cursor} is before start {start}")
    if stop is None:
        # A known total pins every end; an open end there would let the cursor run past it.
        if total is not None:
            _fail(f"{where} has no stop although the total ({total}) is known")
    else:
        _check_offset(stop, f"{where} stop")
        if stop <= start:
            _fail(f"{where} is empty or reversed: [{start}, {stop})")
        if cursor > stop:
            _fail(f"{where}: cursor {cursor} is past stop {stop}")
        if total is not None and stop > total:
            _fail(f"{where}: stop {stop} is past the total {total}")
    tail = segment.tail_sha256
    if type(tail) is not str:
        _fail(f"{where} tail_sha256 is {type(tail).__name__}, not str")
    if cursor == start:
        if tail:
            _fail(f"{where} has a tail hash but no durable bytes")
    elif not _TAIL_HEX.fullmatch(tail):
        _fail(f"{where} tail_sha256 is not 64 lower-case hex digits")


def _check_offset(value: object, what: str) -> None:
    if type(value) is not int:
        _fail(f"{what} is {type(value).__name__}, not int")
    if not 0 <= value <= MAX_OFFSET:
        _fail(f"{what} {value} is outside [0, 2**62]")


def _check_text(value: object, max_chars: int, what: str, *, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if type(value) is not str:
        _fail(f"{what} is {type(value).__name__}, not str")
    problem = _text_problem(value, max_chars)
    if problem is not None:
        _fail(f"{what} {problem}")


def _text_problem(value: str, max_chars: int) -> str | None:
    """Why ``value`` cannot be stored in a text field of at most ``max_chars``, or None."""
    if len(value) > max_chars:
        return f"is longer than {max_chars} characters"
    if _BAD_TEXT.search(value):
        return "contains a control character or a lone surrogate"
    return None


def _fail(message: str) -> NoReturn:
    raise ControlRecordError(f"bad control record: {message}")
