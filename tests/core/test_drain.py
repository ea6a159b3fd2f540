"""drain_budget: which unread rests are drained to keep the connection, and which are dropped."""

from __future__ import annotations

import pytest

from rangeio._core.drain import DRAIN_BYTES, drain_budget


def budget(status: int = 404, method: str = "GET", received: int = 0, **headers: str) -> int | None:
    folded = {name.replace("_", "-"): value for name, value in headers.items()}
    return drain_budget(method=method, status=status, headers=folded, received=received)


def test_a_small_content_length_rest_is_drained() -> None:
    assert budget(content_length="150") == 150
    assert budget(206, received=1000, content_length="1002") == 2  # a multipart's CRLF


def test_a_content_length_rest_over_the_cap_is_dropped() -> None:
    assert budget(content_length=str(DRAIN_BYTES)) == DRAIN_BYTES
    assert budget(content_length=str(DRAIN_BYTES + 1)) is None
    assert budget(206, received=10, content_length=str(10**15)) is None


def test_chunked_is_drained_up_to_the_cap() -> None:
    assert budget(transfer_encoding="chunked") == DRAIN_BYTES
    assert budget(transfer_encoding="gzip, Chunked") == DRAIN_BYTES


@pytest.mark.parametrize(
    "headers",
    [
        {},  # close-delimited
        {"transfer_encoding": "gzip"},  # chunked not last: close-delimited (RFC 9112 §6.3)
        {"transfer_encoding": "chunked", "content_length": "10"},  # ambiguous framing
        {"content_length": "12, 13"},
        {"content_length": "-1"},
        {"content_length": "10", "connection": "keep-alive, Close"},
    ],
)
def test_unknown_untrusted_or_closing_framing_is_dropped(headers: dict[str, str]) -> None:
    assert budget(**headers) is None


def test_more_received_than_declared_is_dropped() -> None:
    assert budget(received=11, content_length="10") is None


@pytest.mark.parametrize(("status", "method"), [(200, "HEAD"), (204, "GET"), (304, "GET")])
def test_a_response_without_a_body_has_nothing_to_drain(status: int, method: str) -> None:
    assert budget(status, method) == 0
    assert budget(status, method, content_length="5000000") == 0
