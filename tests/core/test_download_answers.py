"""read_answer(): what a download makes of a 206 for another range than it asked for."""

from __future__ import annotations

import pytest

from rangeio._core.download import Resume, read_answer
from rangeio._core.headers import RangeSpec
from rangeio._core.identity import Identity
from rangeio._core.ranges import ByteRange
from rangeio.errors import ProtocolError


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
