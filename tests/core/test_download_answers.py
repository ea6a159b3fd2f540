"""read_answer(): what a download makes of a 206 for another range than it asked for, and of a
200 to a resume."""

from __future__ import annotations

import pytest

from rangeio._core.control import MAX_OFFSET, ControlRecord, Segment, tail_digest
from rangeio._core.download import (
    NOTHING_SAVED,
    Assessment,
    Complete,
    DownloadState,
    Hop,
    Meaning,
    Reset,
    ResetCause,
    Restart,
    Resume,
    Start,
    assess,
    read_answer,
    state_of,
)
from rangeio._core.headers import RangeSpec
from rangeio._core.identity import ETag, Identity
from rangeio._core.ranges import ByteRange
from rangeio.errors import ProtocolError, RangeNotSupportedError


def answer(content_range: str, cursor: int = 1000, content_length: str | None = None) -> object:
    headers = {"content-range": content_range}
    if content_length is not None:
        headers["content-length"] = content_length
    return read_answer(RangeSpec.open_ended(cursor), 206, headers, None, cursor, now=0.0)


def test_a_widened_resume_skips_the_bytes_before_the_cursor() -> None:
    # A cache answering in 4 KiB blocks: the body starts at 0, so its first 1000 bytes are ours
    # already, and it is written from our cursor on, at the offsets its Content-Range names.
    got = answer("bytes 0-4999/5000")
    assert got == Resume(ByteRange(1000, 5000), 5000, Identity(size=5000), skip=1000)


def test_a_resume_that_starts_past_the_cursor_is_refused() -> None:
    with pytest.raises(ProtocolError, match="missing"):
        answer("bytes 1007-4999/5000")


def test_a_resume_holding_none_of_it_is_refused() -> None:
    with pytest.raises(ProtocolError):
        answer("bytes 0-999/5000")


# -- a 200 to a resume (pyhaul's graceful 200 recovery) ------------------------------------------

PINNED = Identity(ETag.parse('"v1"'), None, 5000)


def resume_answer(status: int, headers: dict[str, str]) -> object:
    return read_answer(RangeSpec.open_ended(1000), status, headers, PINNED, 1000, now=0.0)


def test_a_200_of_a_new_version_restarts_with_its_body() -> None:
    got = resume_answer(200, {"etag": '"v2"', "content-length": "6000"})
    assert isinstance(got, Restart)
    assert (got.length, got.identity.etag, got.identity.size) == (6000, ETag.parse('"v2"'), 6000)
    assert "ETag" in got.changed or "etag" in got.changed.lower()


def test_a_200_of_the_same_version_restarts_with_no_change_named() -> None:
    got = resume_answer(200, {"etag": '"v1"', "content-length": "5000"})
    assert got == Restart(5000, Identity(ETag.parse('"v1"'), None, 5000), "")


def test_a_206_of_a_new_version_is_still_a_reset() -> None:
    # Its body is part of the new version: nothing of it can be written without the rest.
    got = resume_answer(206, {"etag": '"v2"', "content-range": "bytes 1000-4999/5000"})
    assert isinstance(got, Reset)


def test_a_200_of_a_new_version_is_still_judged_as_a_first_answer() -> None:
    with pytest.raises(RangeNotSupportedError, match="gzip"):
        resume_answer(200, {"etag": '"v2"', "content-encoding": "gzip"})
    with pytest.raises(ProtocolError):
        resume_answer(200, {"etag": '"v2"', "content-length": str(MAX_OFFSET + 1)})


def test_a_redirect_keeps_its_status() -> None:
    assert resume_answer(307, {"location": "/elsewhere"}) == Hop("/elsewhere", 307)


def test_the_state_of_the_disk_is_what_a_resume_would_trust() -> None:
    record = ControlRecord(
        url="https://example.com/f",
        total=5000,
        etag='"v1"',
        last_modified=None,
        segments=(Segment(0, 1200, 2500, "a" * 64), Segment(2500, 2600, 5000, "b" * 64)),
    )
    assert state_of(Assessment(Start.RESUME, record)) == DownloadState(1300, 5000, '"v1"', None)
    # A fresh start (the record is of no use) reuses nothing, whatever the record says.
    assert state_of(Assessment(Start.FRESH, None, "tail does not verify")) == NOTHING_SAVED
    assert DownloadState(0, None, None, None) == NOTHING_SAVED and not NOTHING_SAVED.complete


# -- assess: what the disk says, as a kind to branch on ----------------------------------------


def test_assess_names_each_start_by_its_kind() -> None:
    """The engine branches on ``kind`` (an enum), never on the reason it logs: a first attempt
    (nothing on disk) is FIRST, kept apart from progress that was discarded (FRESH)."""
    url = "https://a.example/f"
    segment = Segment(0, 1300, 5000, tail_digest(b"t" * 10))
    record = ControlRecord(url, 5000, etag='"v1"', segments=(segment,))
    tails = {0: b"t" * 10}
    first = assess(url, None, None, None, False, {})
    assert first.kind is Start.FIRST and first.starts_over and first.record is None
    for fresh in (
        assess(url, None, None, 100, False, {}),  # a .part without its record
        assess(url, None, "bad magic", 100, False, {}),
        assess("https://a.example/other", record, None, 5000, False, tails),
        assess(url, record, None, None, False, tails),  # the .part is gone
        assess(url, record, None, 1000, False, tails),  # shorter than the cursor
        assess(url, record, None, 5000, False, {0: b"x" * 10}),  # the tail does not verify
    ):
        assert fresh.kind is Start.FRESH and fresh.starts_over and fresh.reason
    resume = assess(url, record, None, 5000, False, tails)
    assert resume.kind is Start.RESUME and not resume.starts_over and resume.record == record
    done = assess(url, record, None, None, True, {})
    assert done.kind is Start.DONE and not done.starts_over


def test_every_answer_says_what_it_means_by_enum() -> None:
    assert answer("bytes 1000-4999/5000").meaning is Meaning.RESUME  # type: ignore[attr-defined]
    assert resume_answer(200, {"etag": '"v2"'}).meaning is Meaning.RESTART  # type: ignore[attr-defined]
    assert resume_answer(307, {"location": "/x"}).meaning is Meaning.HOP  # type: ignore[attr-defined]
    done = read_answer(
        RangeSpec.open_ended(5000), 416, {"content-range": "bytes */5000"}, PINNED, 5000, now=0.0
    )
    assert done == Complete(5000) and done.meaning is Meaning.COMPLETE
    reset = resume_answer(206, {"etag": '"v2"', "content-range": "bytes 1000-4999/5000"})
    assert isinstance(reset, Reset) and reset.cause is ResetCause.OTHER_VERSION
    assert reset.meaning is Meaning.RESET
