"""What a download does with what the control record cannot hold, and with a bare 416: pure rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rangeio._core import control
from rangeio._core.control import (
    MAX_OFFSET,
    MAX_URL_CHARS,
    MAX_VALIDATOR_CHARS,
    ControlRecord,
    Segment,
    fit,
    resumable_bytes,
)
from rangeio._core.download import Complete, Reset, Restart, Resume, read_answer
from rangeio._core.headers import RangeSpec
from rangeio._core.identity import ETag, Identity
from rangeio.errors import ProtocolError

URL = "https://example.com/f"
DATE = "Tue, 01 Jul 2025 10:00:00 GMT"
LONG_ETAG = '"' + "e" * MAX_VALIDATOR_CHARS + '"'
TAB_ETAG = '"ab\tcd"'


def record(**fields: object) -> ControlRecord:
    base: dict[str, object] = {
        "url": URL,
        "total": 1000,
        "etag": '"v1"',
        "last_modified": DATE,
        "segments": (Segment(0, 0, 1000),),
    }
    base.update(fields)
    return ControlRecord(**base)  # type: ignore[arg-type]


def test_a_record_that_fits_is_kept_as_it_is() -> None:
    r = record()
    assert fit(r) == control.Fit(r, "")


@pytest.mark.parametrize("etag", [LONG_ETAG, TAB_ETAG, '"a\x01b"'])
def test_an_unstorable_etag_is_left_out_when_last_modified_pins_the_version(etag: str) -> None:
    fitted = fit(record(etag=etag))
    assert fitted.record == record(etag=None)
    assert "ETag" in fitted.reason and "keeps Last-Modified" in fitted.reason


def test_an_unstorable_last_modified_is_left_out_when_the_etag_pins_the_version() -> None:
    fitted = fit(record(last_modified="x" * (MAX_VALIDATOR_CHARS + 1)))
    assert fitted.record == record(last_modified=None)


@pytest.mark.parametrize(
    "fields",
    [
        {"etag": LONG_ETAG, "last_modified": None},
        {"etag": TAB_ETAG, "last_modified": "bad\tdate"},
        {"etag": None, "last_modified": "y" * (MAX_VALIDATOR_CHARS + 1)},
    ],
)
def test_nothing_is_written_when_no_validator_would_be_left(fields: dict[str, object]) -> None:
    fitted = fit(record(**fields))
    assert fitted.record is None and "no other validator" in fitted.reason
    assert resumable_bytes(record(**fields, segments=(Segment(0, 10, 1000, "a" * 64),))) == 0


@pytest.mark.parametrize("url", [URL + "?" + "q" * MAX_URL_CHARS, URL + "\t"])
def test_an_unstorable_url_means_no_record(url: str) -> None:
    fitted = fit(record(url=url))
    assert fitted.record is None and "URL" in fitted.reason


def test_a_server_without_validators_still_resumes_on_the_size() -> None:
    r = record(etag=None, last_modified=None, segments=(Segment(0, 10, 1000, "a" * 64),))
    assert fit(r).record == r and resumable_bytes(r) == 10


_text = st.text(st.characters(codec="utf-8"), max_size=MAX_VALIDATOR_CHARS + 50)


@given(
    etag=st.none() | _text,
    last_modified=st.none() | _text,
    url_tail=st.text(max_size=20) | st.just("u" * MAX_URL_CHARS),
)
def test_whatever_fit_returns_can_be_written_and_read_back(
    etag: str | None, last_modified: str | None, url_tail: str
) -> None:
    fitted = fit(record(url=URL + url_tail, etag=etag, last_modified=last_modified))
    if fitted.record is not None:
        assert control.decode(control.encode(fitted.record)) == fitted.record
        assert fitted.record.url == URL + url_tail  # the URL is never altered, only refused
        assert fitted.record.etag in (etag, None)
        assert fitted.record.last_modified in (last_modified, None)


# -- sizes the record cannot hold ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        (200, {"content-length": str(MAX_OFFSET + 1)}),
        (
            206,
            {
                "content-range": f"bytes 0-{MAX_OFFSET}/{MAX_OFFSET + 1}",
                "content-length": str(MAX_OFFSET + 1),
            },
        ),
        (
            206,
            {
                "content-range": f"bytes 0-{MAX_OFFSET}/*",
                "content-length": str(MAX_OFFSET + 1),
            },
        ),
    ],
)
def test_a_size_over_2_62_is_a_protocol_error(status: int, headers: dict[str, str]) -> None:
    spec = RangeSpec.open_ended(0) if status == 206 else None
    with pytest.raises(ProtocolError, match="2\\*\\*62"):
        read_answer(spec, status, headers, None, 0, now=0.0)


def test_a_size_of_exactly_2_62_is_accepted() -> None:
    answer = read_answer(None, 200, {"content-length": str(MAX_OFFSET)}, None, 0, now=0.0)
    assert isinstance(answer, Restart) and answer.length == MAX_OFFSET


# -- 416 to a resume ---------------------------------------------------------------------------


def pinned(size: int | None, etag: str | None = '"v1"') -> Identity:
    return Identity(ETag.parse(etag), DATE, size)


def resume_416(headers: dict[str, str], identity: Identity | None, cursor: int) -> object:
    return read_answer(RangeSpec.open_ended(cursor), 416, headers, identity, cursor, now=0.0)


def test_a_bare_416_when_the_record_says_every_byte_is_here_completes() -> None:
    assert resume_416({}, pinned(1000), 1000) == Complete(1000)
    assert resume_416({"etag": '"v1"'}, pinned(1000), 1000) == Complete(1000)


@pytest.mark.parametrize(
    ("identity", "cursor", "fragment"),
    [
        (pinned(1000), 400, "record's total is 1000"),
        (pinned(None), 400, "record's total is unknown"),
        (None, 0, "record's total is unknown"),
    ],
)
def test_a_bare_416_anywhere_else_resets_with_a_reason(
    identity: Identity | None, cursor: int, fragment: str
) -> None:
    answer = resume_416({}, identity, cursor)
    assert isinstance(answer, Reset)
    assert "416 without Content-Range" in answer.reason and fragment in answer.reason


@pytest.mark.parametrize("content_range", [None, "bytes */1000"])
def test_a_416_of_another_version_resets_even_at_the_end(content_range: str | None) -> None:
    headers = {"etag": '"v2"'}
    if content_range is not None:
        headers["content-range"] = content_range
    answer = resume_416(headers, pinned(1000), 1000)
    assert isinstance(answer, Reset) and "another version" in answer.reason


def test_a_416_with_the_total_still_decides_as_before() -> None:
    assert resume_416({"content-range": "bytes */1000"}, pinned(1000), 1000) == Complete(1000)
    assert isinstance(resume_416({"content-range": "bytes */1000"}, None, 0), Reset)


def test_a_resume_answer_is_unchanged() -> None:
    headers = {"content-range": "bytes 10-19/20", "content-length": "10", "etag": '"v1"'}
    answer = read_answer(RangeSpec.open_ended(10), 206, headers, pinned(20), 10, now=0.0)
    assert isinstance(answer, Resume) and answer.total == 20
