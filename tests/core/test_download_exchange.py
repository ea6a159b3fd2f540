"""DownloadExchange driven by hand: the download mode of the exchange, every verdict and misuse."""

from __future__ import annotations

import pytest

from rangeio._core.control import MAX_OFFSET
from rangeio._core.download import (
    Complete,
    Meaning,
    Reset,
    ResetCause,
    Restart,
    Resume,
    download_spec,
    if_range,
)
from rangeio._core.download_exchange import DownloadExchange
from rangeio._core.exchange import (
    ExchangeStateError,
    ReadBody,
    Request,
    Skip,
    State,
    Wait,
)
from rangeio._core.headers import RangeSpec, format_content_range
from rangeio._core.identity import ETag, Identity
from rangeio._core.ranges import ByteRange
from rangeio._core.redirects import ResolvedUrl
from rangeio._core.retry import NO_RETRY, RetryPolicy
from rangeio.errors import (
    HTTPStatusError,
    NetworkError,
    NetworkTimeoutError,
    ProtocolError,
    RedirectError,
)

FILE = bytes((i * 31 + 3) % 256 for i in range(1000))
URL = "https://a.example/big.bin"
CDN = "https://cdn.example/big.bin?X-Amz-Expires=600&X-Amz-Signature=s"
ETAG = '"v1"'
DATE = "Tue, 01 Jul 2025 10:00:00 GMT"
PINNED = Identity(ETag.parse(ETAG), DATE, len(FILE))
RETRY = RetryPolicy(attempts=3, backoff=0.1, jitter=0.0)


def make(
    cursor: int = 0,
    stop: int | None = None,
    *,
    pinned: Identity | None = None,
    retry: RetryPolicy = RETRY,
    plain: bool = False,
    one_request: bool = False,
    follow_redirects: bool = True,
) -> DownloadExchange:
    return DownloadExchange(
        cursor,
        stop,
        first_url=URL,
        target=ResolvedUrl(URL),
        user_headers={},
        pinned=pinned,
        retry=retry,
        follow_redirects=follow_redirects,
        plain=plain,
        one_request=one_request,
    )


def ask(ex: DownloadExchange) -> Request:
    request = ex.next_request(0.0)
    assert request is not None
    return request


def h206(
    start: int, stop: int, *, total: int | None = len(FILE), etag: str = ETAG
) -> dict[str, str]:
    headers = {
        "content-range": format_content_range(ByteRange(start, stop), total),
        "content-length": str(stop - start),
    }
    if etag:
        headers["etag"] = etag
    return headers


def h200(etag: str = ETAG, length: int = len(FILE)) -> dict[str, str]:
    return {"content-length": str(length), "etag": etag}


def feed(ex: DownloadExchange, data: bytes, chunk: int = 100) -> list[tuple[int, bytes]]:
    """Feed ``data`` in chunks, taking the placements after each, as the engine does."""
    placed = []
    for i in range(0, len(data), chunk):
        ex.on_data(data[i : i + chunk])
        start, got = ex.take()
        if got:
            placed.append((start, got))
    return placed


def joined(placed: list[tuple[int, bytes]]) -> tuple[int, bytes]:
    for (a, x), (b, _) in zip(placed, placed[1:], strict=False):
        assert a + len(x) == b, "placements are contiguous, in order"
    return placed[0][0], b"".join(p for _, p in placed)


# -- the requests -----------------------------------------------------------------------------


def test_a_first_request_is_a_plain_get_or_bytes_0() -> None:
    assert "Range" not in ask(make(plain=True)).headers
    first = ask(make())
    assert first.headers["Range"] == "bytes=0-" and "If-Range" not in first.headers


def test_a_resume_asks_from_its_cursor_with_if_range() -> None:
    request = ask(make(400, pinned=PINNED))
    assert request.headers["Range"] == "bytes=400-"
    assert request.headers["If-Range"] == ETAG
    assert "If-Match" not in request.headers  # a changed file must come back whole


def test_if_range_takes_a_strong_etag_else_last_modified_else_nothing() -> None:
    # §13.1.5: a date only when there is no entity tag at all; a weak one rules out both.
    assert ask(make(400, pinned=Identity(None, DATE, 1000))).headers["If-Range"] == DATE
    weak = Identity(ETag.parse('W/"w"'), DATE, 1000)
    assert "If-Range" not in ask(make(400, pinned=weak)).headers
    assert "If-Range" not in ask(make(400, pinned=Identity(None, None, 1000))).headers
    assert if_range(None) == {}


def test_a_segment_asks_a_closed_range() -> None:
    request = ask(make(200, 500, pinned=PINNED))
    assert request.headers["Range"] == "bytes=200-499" and request.headers["If-Range"] == ETAG
    assert download_spec(200, None) == RangeSpec.open_ended(200)


def test_impossible_exchanges_are_refused_at_once() -> None:
    with pytest.raises(ValueError):
        make(10, plain=True)
    with pytest.raises(ValueError):
        make(500, 500)


# -- the verdicts -----------------------------------------------------------------------------


def test_a_206_at_the_cursor_is_a_resume_placed_at_its_offsets() -> None:
    ex = make(400, pinned=PINNED)
    ask(ex)
    assert ex.on_response(206, h206(400, 1000), 0.0) == ReadBody(600)
    assert ex.state is State.BODY
    assert ex.answer == Resume(ByteRange(400, 1000), 1000, Identity(ETag.parse(ETAG), None, 1000))
    assert ex.answer.meaning is Meaning.RESUME
    assert joined(feed(ex, FILE[400:])) == (400, FILE[400:])
    assert ex.on_end() is None
    assert ex.state is State.DONE and ex.next_request(0.0) is None
    assert ex.position == ex.end == 1000


def test_a_widened_206_skips_the_bytes_before_the_cursor() -> None:
    ex = make(400, pinned=PINNED)
    ask(ex)
    ex.on_response(206, h206(0, 1000), 0.0)
    assert isinstance(ex.answer, Resume) and ex.answer.skip == 400
    assert joined(feed(ex, FILE, chunk=150)) == (400, FILE[400:])
    assert ex.on_end() is None


def test_a_206_shifted_past_the_cursor_is_refused() -> None:
    ex = make(400, pinned=PINNED)
    ask(ex)
    with pytest.raises(ProtocolError, match="missing"):
        ex.on_response(206, h206(410, 1000), 0.0)
    assert ex.state is State.FAILED


def test_a_size_no_record_can_hold_is_refused() -> None:
    ex = make(0)
    ask(ex)
    with pytest.raises(ProtocolError, match="2\\*\\*62"):
        ex.on_response(206, h206(0, 1000, total=MAX_OFFSET + 1, etag=""), 0.0)


def test_a_200_to_a_resume_is_a_restart_the_caller_must_act_on() -> None:
    ex = make(400, pinned=PINNED)
    ask(ex)
    assert ex.on_response(200, h200('"v2"'), 0.0) == ReadBody(1000)
    answer = ex.answer
    assert isinstance(answer, Restart) and answer.meaning is Meaning.RESTART
    assert answer.identity.etag == ETag.parse('"v2"') and "etag" in answer.changed.lower()
    assert ex.state is State.RESTART
    with pytest.raises(ExchangeStateError, match=r"on_data\(\) in state RESTART"):
        ex.on_data(FILE[:10])  # no byte before the old progress is reset
    assert ex.state is State.RESTART, "a refused call changes nothing"
    ex.restarted()
    assert ex.state is State.BODY
    assert joined(feed(ex, FILE)) == (0, FILE)  # from byte 0
    assert ex.on_end() is None and ex.done


def test_a_cut_restart_resumes_with_if_range_of_the_new_version() -> None:
    ex = make(400, pinned=PINNED)
    ask(ex)
    ex.on_response(200, h200('"v2"'), 0.0)
    ex.restarted()
    feed(ex, FILE[:300])
    assert isinstance(ex.on_error(NetworkError("reset")), Wait)
    request = ask(ex)
    assert request.headers["Range"] == "bytes=300-" and request.headers["If-Range"] == '"v2"'


@pytest.mark.parametrize(
    ("headers", "pinned", "cursor", "verdict"),
    [
        ({"content-range": "bytes */1000"}, PINNED, 1000, Complete(1000)),
        ({}, PINNED, 1000, Complete(1000)),  # bare 416: the record's total is our cursor
        ({"content-range": "bytes */800"}, None, 1000, ResetCause.SIZE_416),
        ({}, Identity(ETag.parse(ETAG), None, None), 1000, ResetCause.BARE_416),
        (
            {"content-range": "bytes */1000", "etag": '"v2"'},
            PINNED,
            1000,
            ResetCause.OTHER_VERSION_416,
        ),
        ({"content-range": "bytes */5000"}, PINNED, 1000, ResetCause.CONTRADICTORY_416),
    ],
    ids=["complete", "bare-complete", "size", "bare", "other-version", "contradictory"],
)
def test_the_416_rules(
    headers: dict[str, str], pinned: Identity | None, cursor: int, verdict: object
) -> None:
    ex = make(cursor, pinned=pinned)
    ask(ex)
    assert ex.on_response(416, headers, 0.0) == Skip()
    assert ex.state is State.DONE and ex.next_request(0.0) is None
    if isinstance(verdict, Complete):
        assert ex.answer == verdict and ex.answer.meaning is Meaning.COMPLETE
    else:
        answer = ex.answer
        assert isinstance(answer, Reset) and answer.cause is verdict
        assert answer.meaning is Meaning.RESET and answer.reason


def test_a_206_or_412_of_another_version_is_a_reset() -> None:
    weak = Identity(ETag.parse('W/"w"'), None, 1000)  # no If-Range possible: compared instead
    ex = make(400, pinned=weak)
    ask(ex)
    ex.on_response(206, h206(400, 1000, etag='W/"x"'), 0.0)
    assert isinstance(ex.answer, Reset) and ex.answer.cause is ResetCause.OTHER_VERSION
    ex = make(400, pinned=PINNED)
    ask(ex)
    ex.on_response(412, {}, 0.0)
    assert isinstance(ex.answer, Reset) and ex.answer.cause is ResetCause.OTHER_VERSION


def test_a_body_longer_than_declared_is_refused_before_a_byte_of_it_is_placed() -> None:
    ex = make(900, pinned=PINNED)
    ask(ex)
    ex.on_response(206, h206(900, 1000), 0.0)
    feed(ex, FILE[900:990])
    with pytest.raises(ProtocolError, match="longer than"):
        ex.on_data(FILE[990:1000] + b"extra")
    assert ex.take() == (990, b"")
    assert ex.state is State.FAILED


# -- cuts, retries, redirects -------------------------------------------------------------------


def test_a_cut_body_resumes_from_the_first_missing_byte() -> None:
    ex = make(plain=True)
    ask(ex)
    ex.on_response(200, h200(), 0.0)
    ex.restarted()
    first = feed(ex, FILE[:450], chunk=150)
    action = ex.on_error(NetworkError("reset"))
    assert action == Wait(0.1) and ex.state is State.READY
    request = ask(ex)
    assert request.headers["Range"] == "bytes=450-" and request.headers["If-Range"] == ETAG
    ex.on_response(206, h206(450, 1000), 0.0)
    assert ex.state is State.BODY  # a resume of the same version: no restart
    rest = feed(ex, FILE[450:])
    assert ex.on_end() is None
    assert joined(first + rest) == (0, FILE)
    assert ex.requests_sent == 2 and ex.retries == 1


def test_every_byte_then_a_cut_is_a_success_but_not_after_a_timeout() -> None:
    ex = make(900, pinned=PINNED)
    ask(ex)
    ex.on_response(206, h206(900, 1000), 0.0)
    feed(ex, FILE[900:])
    assert ex.on_error(NetworkError("reset")) == Skip() and ex.done
    ex = make(900, pinned=PINNED)
    ask(ex)
    ex.on_response(206, h206(900, 1000), 0.0)
    feed(ex, FILE[900:])
    with pytest.raises(NetworkTimeoutError):
        ex.on_error(NetworkTimeoutError("endless trailers"))


def test_one_request_never_asks_again() -> None:
    ex = make(400, pinned=PINNED, retry=NO_RETRY, one_request=True)
    ask(ex)
    ex.on_response(206, h206(400, 1000), 0.0)
    feed(ex, FILE[400:600])
    with pytest.raises(NetworkError, match="reset"):
        ex.on_error(NetworkError("reset"))
    # A 206 that stops short of the end ends the exchange short: haul's caller says so.
    ex = make(400, pinned=PINNED, retry=NO_RETRY, one_request=True)
    ask(ex)
    ex.on_response(206, h206(400, 700), 0.0)
    feed(ex, FILE[400:700])
    assert ex.on_end() is None and ex.done
    assert (ex.position, ex.end) == (700, 1000)


def test_a_short_206_is_followed_by_a_request_for_the_rest_without_a_retry() -> None:
    ex = make(400, pinned=PINNED)
    ask(ex)
    ex.on_response(206, h206(400, 700), 0.0)
    feed(ex, FILE[400:700])
    assert ex.on_end() == Skip()
    assert ask(ex).headers["Range"] == "bytes=700-" and ex.retries == 0


def test_retry_after_and_the_retry_decision_serve_downloads() -> None:
    ex = make(400, pinned=PINNED)
    ask(ex)
    assert ex.on_response(503, {"retry-after": "7"}, 0.0) == Wait(7.0)
    ask(ex)
    with pytest.raises(HTTPStatusError):
        ex.on_response(404, {}, 0.0)  # never asked again: from the URL the user gave


def test_redirects_are_followed_or_refused() -> None:
    ex = make(plain=True)
    ask(ex)
    assert ex.on_response(302, {"location": CDN}, 0.0) == Skip()
    assert ask(ex).url == CDN
    ex = make(plain=True, follow_redirects=False)
    ask(ex)
    with pytest.raises(RedirectError) as refused:
        ex.on_response(302, {"location": CDN}, 0.0)
    assert (refused.value.status, refused.value.location) == (302, CDN)


def test_an_expired_presigned_target_falls_back_to_the_first_url_mid_download() -> None:
    ex = make(plain=True)
    ask(ex)
    ex.on_response(302, {"location": CDN}, 0.0)
    assert ask(ex).url == CDN
    ex.on_response(200, h200(), 0.0)
    ex.restarted()
    feed(ex, FILE[:500])
    assert isinstance(ex.on_error(NetworkError("reset")), Wait)
    assert ask(ex).url == CDN  # the target that worked is asked first
    assert ex.on_response(403, {}, 0.0) == Skip()  # expired: back to the first URL, once
    request = ask(ex)
    assert request.url == URL and request.headers["Range"] == "bytes=500-"
    ex.on_response(302, {"location": CDN + "&fresh=1"}, 0.0)
    ask(ex)
    ex.on_response(206, h206(500, 1000), 0.0)
    assert joined(feed(ex, FILE[500:])) == (500, FILE[500:])
    assert ex.on_end() is None and ex.retries == 1


# -- segments and starting over -----------------------------------------------------------------


def test_limit_stops_a_body_another_connection_took_over() -> None:
    ex = make(0)
    ask(ex)
    ex.on_response(206, h206(0, 1000), 0.0)
    ex.limit(300)
    placed = feed(ex, FILE[:250])
    ex.on_data(FILE[250:400])
    placed.append(ex.take())
    assert joined(placed) == (0, FILE[:300])  # nothing past the new stop
    assert not ex.body_wanted
    assert ex.on_end() is None and ex.done


def test_limit_narrows_a_pending_resume_or_ends_the_exchange() -> None:
    ex = make(200, 800, pinned=PINNED)
    ask(ex)
    ex.on_response(206, h206(200, 800), 0.0)
    feed(ex, FILE[200:400])
    ex.on_error(NetworkError("reset"))
    ex.limit(600)
    assert ask(ex).headers["Range"] == "bytes=400-599"
    ex.on_error(NetworkError("refused"))
    ex.limit(400)  # the rest went to another connection
    assert ex.state is State.DONE and ex.next_request(0.0) is None


def test_start_over_asks_the_whole_file_with_nothing_pinned() -> None:
    ex = make(plain=True)
    ask(ex)
    ex.on_response(200, h200(), 0.0)
    ex.restarted()
    feed(ex, FILE[:300])
    ex.on_error(NetworkError("reset"))
    ex.start_over()
    request = ask(ex)
    assert "Range" not in request.headers and "If-Range" not in request.headers
    ex.on_response(200, h200(), 0.0)
    ex.restarted()
    assert joined(feed(ex, FILE)) == (0, FILE)


# -- misuse -----------------------------------------------------------------------------------


def test_download_calls_out_of_order_raise() -> None:
    ex = make(400, pinned=PINNED)
    with pytest.raises(ExchangeStateError, match="answer"):
        _ = ex.answer  # nothing was answered yet
    with pytest.raises(ExchangeStateError, match=r"restarted\(\) in state READY"):
        ex.restarted()
    with pytest.raises(ExchangeStateError, match=r"on_data\(\) in state READY"):
        ex.on_data(b"x")
    ask(ex)
    with pytest.raises(ExchangeStateError, match=r"limit\(\) in state SENT"):
        ex.limit(500)
    with pytest.raises(ExchangeStateError, match=r"start_over\(\) in state SENT"):
        ex.start_over()
    ex.on_response(206, h206(400, 1000), 0.0)
    with pytest.raises(ExchangeStateError, match=r"restarted\(\) in state BODY"):
        ex.restarted()  # a resume is no restart
    with pytest.raises(ExchangeStateError, match=r"start_over\(\) in state BODY"):
        ex.start_over()
    segment = make(200, 800, pinned=PINNED)
    ask(segment)
    segment.on_error(NetworkError("refused"))
    with pytest.raises(ExchangeStateError, match="segment"):
        segment.start_over()


def test_calls_after_a_failed_download_exchange_raise() -> None:
    ex = make(400, pinned=PINNED)
    ask(ex)
    with pytest.raises(ProtocolError):
        ex.on_response(206, h206(500, 1000), 0.0)
    for call in (ex.restarted, lambda: ex.limit(10), ex.on_end, lambda: ex.next_request(0.0)):
        with pytest.raises(ExchangeStateError, match="after the exchange failed"):
            call()


def test_the_failure_being_retried_is_readable_until_the_next_request() -> None:
    """A caller keeping its own account of failures (a mirror's drop) reads ``failure``."""
    ex = make(400, pinned=PINNED)
    ask(ex)
    assert ex.failure is None
    cut = NetworkError("reset")
    assert isinstance(ex.on_error(cut), Wait)
    assert ex.failure is cut
    ask(ex)
    assert ex.failure is None
    assert ex.on_response(302, {"location": CDN}, 0.0) == Skip()
    assert ex.failure is None  # a redirect is no failure
