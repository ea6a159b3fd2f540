"""assess(): what a new download attempt starts from, decided from the facts on disk."""

from __future__ import annotations

from rangeio._core.control import ControlRecord, Segment, tail_digest
from rangeio._core.download import Start, assess

URL = "https://example.com/f"
TAIL = b"t" * 100


def record(*segments: Segment, url: str = URL) -> ControlRecord:
    return ControlRecord(url=url, total=1000, etag='"v1"', last_modified=None, segments=segments)


def test_a_complete_destination_without_a_part_is_done_whatever_the_record_says() -> None:
    stale = record(Segment(0, 10, 1000, tail_digest(b"x" * 10)))
    got = assess(URL, stale, None, None, True, {})
    assert got.kind is Start.DONE


def test_nothing_on_disk_is_a_first_attempt() -> None:
    got = assess(URL, None, None, None, False, {})
    assert (got.kind, got.record) == (Start.FIRST, None)
    assert got.starts_over


def test_a_part_without_a_record_starts_fresh() -> None:
    got = assess(URL, None, None, 500, False, {})
    assert (got.kind, got.reason) == (Start.FRESH, ".part without a control record")


def test_a_corrupt_record_starts_fresh_and_says_why() -> None:
    got = assess(URL, record(Segment(0, 0, 1000)), "bad checksum", 100, False, {})
    assert got.kind == Start.FRESH and "bad checksum" in got.reason


def test_a_record_of_another_url_starts_fresh() -> None:
    other = record(Segment(0, 100, 1000, tail_digest(TAIL)), url="https://example.com/g")
    assert assess(URL, other, None, 100, False, {0: TAIL}).kind == Start.FRESH


def test_a_record_without_its_part_starts_fresh() -> None:
    got = assess(URL, record(Segment(0, 100, 1000, tail_digest(TAIL))), None, None, False, {})
    assert (got.kind, got.reason) == (Start.FRESH, ".part file is missing")


def test_a_part_shorter_than_the_record_says_starts_fresh() -> None:
    got = assess(URL, record(Segment(0, 100, 1000, tail_digest(TAIL))), None, 99, False, {0: TAIL})
    assert got.kind == Start.FRESH and "99" in got.reason


def test_a_tail_that_does_not_verify_starts_fresh() -> None:
    rec = record(Segment(0, 100, 1000, tail_digest(TAIL)))
    assert assess(URL, rec, None, 100, False, {0: b"T" * 100}).kind == Start.FRESH
    assert assess(URL, rec, None, 100, False, {}).kind == Start.FRESH  # the tail could not be read


def test_a_record_whose_tails_verify_resumes_from_it() -> None:
    rec = record(Segment(0, 100, 500, tail_digest(TAIL)), Segment(500, 500, 1000))
    # The .part is as long as the furthest cursor (a parallel download's is preallocated).
    got = assess(URL, rec, None, 1000, False, {0: TAIL})
    assert (got.kind, got.record) == (Start.RESUME, rec)


def test_a_record_made_through_any_of_the_mirrors_resumes() -> None:
    rec = record(Segment(0, 100, 1000, tail_digest(TAIL)), url="https://mirror.example.org/f")
    mirrors = (URL, "https://mirror.example.org/f")
    got = assess(mirrors, rec, None, 100, False, {0: TAIL})
    assert (got.kind, got.record) == (Start.RESUME, rec)
    # Without the URL the record names, nothing asked could confirm its version.
    fresh = assess((URL, "https://third.example.net/f"), rec, None, 100, False, {0: TAIL})
    assert (fresh.kind, fresh.reason) == (Start.FRESH, "control record is for another URL")
