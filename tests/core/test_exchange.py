"""RangeExchange driven by hand: fake statuses, headers and body chunks, no network."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rangeio._core.exchange import BASE_HEADERS, RangeExchange, ReadBody, Request, Skip, Wait
from rangeio._core.headers import RangeSpec, format_content_range, parse_range
from rangeio._core.identity import ETag, Identity
from rangeio._core.ranges import ByteRange
from rangeio._core.redirects import MAX_REDIRECTS, ResolvedUrl
from rangeio._core.retry import RetryPolicy
from rangeio.errors import (
    HTTPStatusError,
    NetworkError,
    ProtocolError,
    RangeNotSupportedError,
    RemoteChangedError,
    UrlError,
)

SETTINGS = settings(max_examples=150, deadline=None)
FILE = bytes((i * 13 + 7) % 256 for i in range(200))
URL = "https://a.example/data.bin"
AUTH = {"Authorization": "Bearer secret", "Cookie": "s=1", "X-Trace": "t"}
FIRST_TEN = RangeSpec.closed(0, 10)


def make(
    spec: RangeSpec | None = FIRST_TEN,
    *,
    pinned: Identity | None = None,
    attempts: int = 3,
    max_full_body: int | None = 1000,
    target: ResolvedUrl | None = None,
    method: str = "GET",
    allow_downgrade: bool = False,
) -> RangeExchange:
    return RangeExchange(
        spec,
        first_url=URL,
        target=target or ResolvedUrl(URL),
        user_headers=AUTH,
        pinned=pinned,
        retry=RetryPolicy(attempts=attempts, backoff=0.1, jitter=0.0),
        max_full_body=max_full_body,
        method=method,
        allow_downgrade=allow_downgrade,
    )


def partial_headers(r: ByteRange, total: int | None = 200, etag: str = '"e1"') -> dict[str, str]:
    headers = {"content-range": format_content_range(r, total), "content-length": str(len(r))}
    if etag:
        headers["etag"] = etag
    return headers


def request(ex: RangeExchange, now: float = 0.0) -> Request:
    req = ex.next_request(now)
    assert req is not None, "the exchange should want another request"
    return req


def serve_206(ex: RangeExchange, r: ByteRange, chunks: int = 1, etag: str = '"e1"') -> None:
    assert ex.on_response(206, partial_headers(r, etag=etag), 0.0) == ReadBody(len(r))
    body = FILE[r.start : r.stop]
    step = max(1, -(-len(body) // chunks))
    for i in range(0, len(body), step):
        ex.on_data(body[i : i + step])


# -- the happy path -------------------------------------------------------------------------


def test_clean_206() -> None:
    ex = make(RangeSpec.closed(0, 10))
    req = request(ex)
    assert req.method == "GET" and req.url == URL
    assert req.headers["Range"] == "bytes=0-9"
    for name, value in BASE_HEADERS.items():
        assert req.headers[name] == value
    assert req.headers["Authorization"] == "Bearer secret", "same origin keeps credentials"
    assert "If-Match" not in req.headers, "nothing pinned yet"
    with pytest.raises(RuntimeError):
        _ = ex.result
    serve_206(ex, ByteRange(0, 10), chunks=3)
    assert ex.on_end() is None
    assert ex.done and ex.next_request(0.0) is None
    result = ex.result
    assert result.data == FILE[:10]
    assert result.range == ByteRange(0, 10)
    assert result.total == 200
    assert result.identity == Identity(ETag("e1"), None, 200)
    assert not result.full and not result.unsatisfiable
    assert result.url == ResolvedUrl(URL)
    assert (ex.requests_sent, ex.retries) == (1, 0)


def test_pinned_identity_sends_if_match() -> None:
    ex = make(RangeSpec.closed(5, 10), pinned=Identity(ETag("e1"), None, 200))
    assert request(ex).headers["If-Match"] == '"e1"'
    weak = make(RangeSpec.closed(5, 10), pinned=Identity(ETag("e1", weak=True), None, 200))
    assert "If-Match" not in request(weak).headers


def test_plain_get_without_range() -> None:
    ex = make(None)
    assert "Range" not in request(ex).headers
    assert ex.on_response(200, {"content-length": "200"}, 0.0) == ReadBody(200)
    ex.on_data(FILE)
    assert ex.on_end() is None
    assert ex.result.full and ex.result.data == FILE and ex.result.total == 200


def test_head_finishes_without_a_body() -> None:
    ex = make(None, method="HEAD")
    assert request(ex).method == "HEAD"
    assert ex.on_response(200, {"content-length": "200", "etag": '"e1"'}, 0.0) == Skip()
    assert ex.done
    assert ex.result.total == 200 and ex.result.data == b""


# -- cuts and resumes -----------------------------------------------------------------------


def test_cut_body_is_resumed_from_the_first_missing_byte() -> None:
    ex = make(RangeSpec.closed(0, 10))
    request(ex)
    assert ex.on_response(206, partial_headers(ByteRange(0, 10)), 0.0) == ReadBody(10)
    ex.on_data(FILE[0:4])
    wait = ex.on_error(NetworkError("connection reset"))
    assert wait == Wait(0.1), "the backoff (jitter 0) before the resume"
    second = request(ex)
    assert second.headers["Range"] == "bytes=4-9"
    assert second.headers["If-Match"] == '"e1"', "the strong ETag pins the second half"
    serve_206(ex, ByteRange(4, 10))
    assert ex.on_end() is None
    assert ex.result.data == FILE[:10]
    assert ex.result.range == ByteRange(0, 10)
    assert (ex.requests_sent, ex.retries) == (2, 1)


def test_short_body_ending_cleanly_is_resumed() -> None:
    ex = make(RangeSpec.suffix(10))
    assert request(ex).headers["Range"] == "bytes=-10"
    assert ex.on_response(206, partial_headers(ByteRange(190, 200)), 0.0) == ReadBody(10)
    ex.on_data(FILE[190:197])
    assert isinstance(ex.on_end(), Wait)
    second = request(ex)
    assert second.headers["Range"] == "bytes=197-199", "the suffix resumes as a closed range"
    serve_206(ex, ByteRange(197, 200))
    assert ex.on_end() is None
    assert ex.result.data == FILE[190:200] and ex.result.range == ByteRange(190, 200)


def test_resume_with_weak_etag_sends_no_if_match() -> None:
    ex = make(RangeSpec.closed(0, 10))
    request(ex)
    ex.on_response(206, partial_headers(ByteRange(0, 10), etag='W/"e1"'), 0.0)
    ex.on_data(FILE[0:3])
    ex.on_error(NetworkError("reset"))
    second = request(ex)
    assert second.headers["Range"] == "bytes=3-9"
    assert "If-Match" not in second.headers


def test_resume_answered_by_another_version_is_refused() -> None:
    ex = make(RangeSpec.closed(0, 10))
    request(ex)
    ex.on_response(206, partial_headers(ByteRange(0, 10)), 0.0)
    ex.on_data(FILE[0:3])
    ex.on_error(NetworkError("reset"))
    request(ex)
    with pytest.raises(RemoteChangedError):
        ex.on_response(206, partial_headers(ByteRange(3, 10), etag='"e2"'), 0.0)


def test_resume_answered_with_412_is_refused() -> None:
    ex = make(RangeSpec.closed(0, 10))
    request(ex)
    ex.on_response(206, partial_headers(ByteRange(0, 10)), 0.0)
    ex.on_data(FILE[0:3])
    ex.on_error(NetworkError("reset"))
    request(ex)
    with pytest.raises(RemoteChangedError):
        ex.on_response(412, {}, 0.0)


def test_resume_answered_with_a_wider_range_keeps_the_bytes_it_had() -> None:
    ex = make(RangeSpec.closed(0, 10))
    request(ex)
    ex.on_response(206, partial_headers(ByteRange(0, 10)), 0.0)
    ex.on_data(FILE[0:3])
    ex.on_error(NetworkError("reset"))
    assert request(ex).headers["Range"] == "bytes=3-9"
    # The server sends the whole range again: its first three bytes are dropped, not doubled.
    serve_206(ex, ByteRange(0, 10), chunks=4)
    assert ex.on_end() is None
    assert ex.result.data == FILE[0:10] and ex.result.range == ByteRange(0, 10)


def test_resume_answered_with_a_range_holding_none_of_it_is_refused() -> None:
    ex = make(RangeSpec.closed(0, 10))
    request(ex)
    ex.on_response(206, partial_headers(ByteRange(0, 10)), 0.0)
    ex.on_data(FILE[0:3])
    ex.on_error(NetworkError("reset"))
    request(ex)
    with pytest.raises(ProtocolError):
        ex.on_response(206, partial_headers(ByteRange(0, 3)), 0.0)


def test_resume_answered_with_200_restarts_from_zero() -> None:
    ex = make(RangeSpec.closed(0, 10))
    request(ex)
    ex.on_response(206, partial_headers(ByteRange(0, 10)), 0.0)
    ex.on_data(FILE[0:3])
    ex.on_error(NetworkError("reset"))
    request(ex)
    assert ex.on_response(200, {"content-length": "200", "etag": '"e1"'}, 0.0) == ReadBody(200)
    ex.on_data(FILE)
    assert ex.on_end() is None
    assert ex.result.full
    assert ex.result.data == FILE and ex.result.range == ByteRange(0, 200)


def test_too_long_body_is_a_protocol_error() -> None:
    ex = make(RangeSpec.closed(0, 10))
    request(ex)
    ex.on_response(206, partial_headers(ByteRange(0, 10)), 0.0)
    ex.on_data(FILE[0:6])
    with pytest.raises(ProtocolError):
        ex.on_data(FILE[6:11])


@SETTINGS
@given(
    first=st.integers(0, 150),
    length=st.integers(1, 50),
    cuts=st.lists(st.floats(0.0, 0.99), max_size=5),
    chunk=st.integers(1, 17),
    clean_end=st.booleans(),
)
def test_any_sequence_of_cuts_reassembles_the_exact_bytes(
    first: int, length: int, cuts: list[float], chunk: int, clean_end: bool
) -> None:
    """A faithful server answering whatever Range the exchange sends, cutting each body at a
    random point: the result is always the exact bytes, and each resume starts where the
    previous body stopped."""
    want = ByteRange(first, first + length)
    ex = make(RangeSpec.of(want), attempts=len(cuts) + 1)
    next_byte = want.start
    for attempt in range(len(cuts) + 1):
        req = request(ex)
        (spec,) = parse_range(req.headers["Range"])
        assert spec.start == next_byte and spec.stop == want.stop
        if next_byte > want.start:
            assert req.headers["If-Match"] == '"e1"', "bytes kept: the version is pinned"
        served = spec.resolve(len(FILE))
        assert served is not None
        assert ex.on_response(206, partial_headers(served), 0.0) == ReadBody(len(served))
        stop = served.stop
        if attempt < len(cuts):
            stop = served.start + int(len(served) * cuts[attempt])
        for pos in range(served.start, stop, chunk):
            ex.on_data(FILE[pos : min(pos + chunk, stop)])
        if stop == served.stop:
            assert ex.on_end() is None
            break
        action = ex.on_end() if clean_end else ex.on_error(NetworkError("cut"))
        assert isinstance(action, Wait)
        next_byte = stop
    assert ex.done
    assert ex.result.data == FILE[want.start : want.stop]
    assert ex.result.range == want


# -- retries --------------------------------------------------------------------------------


def test_503_then_206_waits_for_retry_after() -> None:
    ex = make(RangeSpec.closed(0, 10))
    request(ex)
    assert ex.on_response(503, {"retry-after": "2"}, 0.0) == Wait(2.0)
    assert request(ex).headers["Range"] == "bytes=0-9"
    serve_206(ex, ByteRange(0, 10))
    assert ex.on_end() is None
    assert ex.result.data == FILE[:10]
    assert ex.retries == 1


def test_backoff_without_retry_after() -> None:
    ex = make(RangeSpec.closed(0, 10), attempts=4)
    request(ex)
    assert ex.on_response(500, {}, 0.0) == Wait(0.1)
    request(ex)
    assert ex.on_response(502, {}, 0.0) == Wait(0.2)


def test_attempts_exhausted_raises_the_status() -> None:
    ex = make(RangeSpec.closed(0, 10), attempts=2)
    request(ex)
    assert isinstance(ex.on_response(503, {}, 0.0), Wait)
    request(ex)
    with pytest.raises(HTTPStatusError) as info:
        ex.on_response(503, {"retry-after": "1"}, 0.0)
    assert info.value.status == 503 and info.value.is_transient


def test_retry_after_beyond_the_cap_gives_up() -> None:
    ex = make(RangeSpec.closed(0, 10), attempts=5)
    request(ex)
    with pytest.raises(HTTPStatusError):
        ex.on_response(429, {"retry-after": "3600"}, 0.0)


def test_non_transient_status_is_raised_at_once() -> None:
    ex = make(RangeSpec.closed(0, 10))
    request(ex)
    with pytest.raises(HTTPStatusError) as info:
        ex.on_response(404, {}, 0.0)
    assert info.value.status == 404 and not info.value.is_transient


def test_transport_errors_before_a_response_are_retried_then_raised() -> None:
    ex = make(RangeSpec.closed(0, 10), attempts=2)
    request(ex)
    assert isinstance(ex.on_error(NetworkError("refused")), Wait)
    request(ex)
    error = NetworkError("refused again")
    with pytest.raises(NetworkError) as info:
        ex.on_error(error)
    assert info.value is error


# -- redirects ------------------------------------------------------------------------------


def test_cross_origin_redirect_drops_credentials_and_remembers_expiry() -> None:
    ex = make(RangeSpec.closed(0, 10))
    assert request(ex).credentials, "the URL the user gave: the client's own credentials go"
    cdn = "https://cdn.example/x?X-Amz-Date=20240102T030405Z&X-Amz-Expires=60"
    assert ex.on_response(302, {"location": cdn}, 0.0) == Skip()
    req = request(ex)
    assert req.url == cdn
    assert not req.credentials, "another origin: the transport must send it bare"
    assert "Authorization" not in req.headers and "Cookie" not in req.headers
    assert req.headers["X-Trace"] == "t"
    assert req.headers["Range"] == "bytes=0-9", "the range follows the redirect"
    serve_206(ex, ByteRange(0, 10))
    assert ex.on_end() is None
    assert ex.result.url.url == cdn
    assert ex.result.url.expires_at == 1704164645.0 + 60


def test_same_origin_relative_redirect_keeps_credentials() -> None:
    ex = make(RangeSpec.closed(0, 10))
    request(ex)
    assert ex.on_response(307, {"location": "/moved/data.bin"}, 0.0) == Skip()
    req = request(ex)
    assert req.url == "https://a.example/moved/data.bin"
    assert req.headers["Authorization"] == "Bearer secret"
    assert req.credentials


@pytest.mark.parametrize(
    ("remembered", "credentials"),
    [("https://cdn.example/data.bin", False), ("https://a.example/moved", True)],
)
def test_a_remembered_target_is_asked_with_credentials_only_on_the_first_origin(
    remembered: str, credentials: bool
) -> None:
    # Reads after the open go straight to the remembered target: the same decision applies.
    req = request(make(target=ResolvedUrl(remembered)))
    assert req.url == remembered
    assert req.credentials is credentials
    assert ("Authorization" in req.headers) is credentials


def test_every_request_states_whether_credentials_may_go() -> None:
    # No default: a new place that builds a Request cannot forget to decide.
    with pytest.raises(TypeError):
        Request("GET", URL, {})  # type: ignore[call-arg]


def test_redirect_limit() -> None:
    ex = make(RangeSpec.closed(0, 10))
    for hop in range(MAX_REDIRECTS):
        request(ex)
        assert ex.on_response(302, {"location": f"/hop{hop}"}, 0.0) == Skip()
    request(ex)
    with pytest.raises(NetworkError, match="redirects"):
        ex.on_response(302, {"location": "/one-too-many"}, 0.0)


def test_https_to_http_downgrade_is_refused() -> None:
    ex = make(RangeSpec.closed(0, 10))
    request(ex)
    with pytest.raises(NetworkError, match="http"):
        ex.on_response(301, {"location": "http://a.example/data.bin"}, 0.0)


def test_downgrade_allowed_when_asked() -> None:
    ex = make(RangeSpec.closed(0, 10), allow_downgrade=True)
    request(ex)
    assert ex.on_response(301, {"location": "http://a.example/data.bin"}, 0.0) == Skip()
    req = request(ex)
    assert req.url == "http://a.example/data.bin"
    assert "Authorization" not in req.headers, "another scheme is another origin"


def test_redirect_without_location_is_a_protocol_error() -> None:
    ex = make(RangeSpec.closed(0, 10))
    request(ex)
    with pytest.raises(ProtocolError):
        ex.on_response(302, {}, 0.0)


def test_stale_remembered_url_falls_back_to_the_first_url_once() -> None:
    remembered = ResolvedUrl("https://cdn.example/signed")
    ex = make(RangeSpec.closed(0, 10), target=remembered)
    assert request(ex).url == remembered.url
    assert ex.on_response(403, {}, 0.0) == Skip()
    assert request(ex).url == URL
    with pytest.raises(HTTPStatusError):
        ex.on_response(403, {}, 0.0)


def test_expired_remembered_url_is_not_used() -> None:
    remembered = ResolvedUrl("https://cdn.example/signed", expires_at=100.0)
    assert request(make(target=remembered), now=50.0).url == remembered.url
    assert request(make(target=remembered), now=99.0).url == URL


# -- servers that ignore Range, empty files -------------------------------------------------


def test_200_over_max_full_body_is_refused() -> None:
    ex = make(RangeSpec.closed(0, 10), max_full_body=100)
    request(ex)
    with pytest.raises(RangeNotSupportedError):
        ex.on_response(200, {"content-length": "200"}, 0.0)


def test_200_of_unknown_length_over_max_full_body_is_refused() -> None:
    ex = make(RangeSpec.closed(0, 10), max_full_body=100)
    request(ex)
    assert ex.on_response(200, {}, 0.0) == ReadBody(None)
    ex.on_data(FILE[:60])
    with pytest.raises(RangeNotSupportedError):
        ex.on_data(FILE[60:120])


def test_200_within_max_full_body_is_the_whole_file() -> None:
    ex = make(RangeSpec.closed(0, 10), max_full_body=200)
    request(ex)
    assert ex.on_response(200, {"content-length": "200"}, 0.0) == ReadBody(200)
    ex.on_data(FILE)
    assert ex.on_end() is None
    assert ex.result.full and ex.result.data == FILE and ex.result.total == 200


def test_200_with_a_changed_size_against_pinned_is_refused() -> None:
    ex = make(RangeSpec.closed(0, 10), pinned=Identity(None, None, 150))
    request(ex)
    assert ex.on_response(200, {}, 0.0) == ReadBody(None)
    ex.on_data(FILE)
    with pytest.raises(RemoteChangedError):
        ex.on_end()


def test_416_of_an_empty_file_is_an_empty_unsatisfiable_result() -> None:
    ex = make(RangeSpec.suffix(100))
    request(ex)
    assert ex.on_response(416, {"content-range": "bytes */0"}, 0.0) == Skip()
    assert ex.done and ex.next_request(0.0) is None
    result = ex.result
    assert result.unsatisfiable and not result.full
    assert result.data == b"" and result.range == ByteRange(0, 0) and result.total == 0
    assert result.identity.size == 0


def test_416_of_a_non_empty_file_is_raised() -> None:
    ex = make(RangeSpec.closed(500, 600))
    request(ex)
    with pytest.raises(HTTPStatusError) as info:
        ex.on_response(416, {"content-range": "bytes */200"}, 0.0)
    assert info.value.status == 416


def test_encoded_body_is_refused() -> None:
    ex = make(RangeSpec.closed(0, 10))
    request(ex)
    headers: Mapping[str, str] = {**partial_headers(ByteRange(0, 10)), "content-encoding": "gzip"}
    with pytest.raises(RangeNotSupportedError):
        ex.on_response(206, headers, 0.0)


def test_expired_remembered_url_falls_back_without_a_second_try() -> None:
    remembered = ResolvedUrl("https://cdn.example/signed", expires_at=100.0)
    ex = make(target=remembered)
    assert request(ex, now=200.0).url == URL
    with pytest.raises(HTTPStatusError) as info:
        ex.on_response(404, {}, 200.0)
    assert info.value.status == 404
    assert ex.requests_sent == 1


@pytest.mark.parametrize("location", ["ftp://a.example/x", "https://a.example:99999/x"])
def test_redirect_to_an_unusable_url_is_a_typed_error(location: str) -> None:
    ex = make(RangeSpec.closed(0, 10))
    request(ex)
    with pytest.raises(UrlError):
        ex.on_response(302, {"location": location}, 0.0)


def test_target_that_expires_mid_body_is_resolved_again_from_the_first_url() -> None:
    """The exchange started at the first URL (nothing remembered), was redirected to a
    presigned target, and the body was cut; by the resume the target has expired (403): the
    first URL is asked again for a fresh target, and the resume goes on from there."""
    ex = make(RangeSpec.closed(0, 100))
    request(ex)
    assert ex.on_response(302, {"location": "https://cdn.example/v1?Expires=9"}, 0.0) == Skip()
    assert request(ex).url == "https://cdn.example/v1?Expires=9"
    assert ex.on_response(206, partial_headers(ByteRange(0, 100)), 0.0) == ReadBody(100)
    ex.on_data(FILE[:40])
    assert isinstance(ex.on_end(), Wait)  # cut: resume
    assert request(ex).headers["Range"] == "bytes=40-99"
    assert ex.on_response(403, {}, 0.0) == Skip()
    again = request(ex)
    assert again.url == URL and again.headers["Range"] == "bytes=40-99"
    assert again.headers["Authorization"] == "Bearer secret"
    assert ex.on_response(302, {"location": "https://cdn.example/v2"}, 0.0) == Skip()
    assert request(ex).url == "https://cdn.example/v2"
    assert ex.on_response(206, partial_headers(ByteRange(40, 100)), 0.0) == ReadBody(60)
    ex.on_data(FILE[40:100])
    assert ex.on_end() is None
    assert ex.result.data == FILE[:100] and ex.result.url.url == "https://cdn.example/v2"


def test_fresh_target_refused_at_once_is_not_resolved_again() -> None:
    """A 403 from a target that never answered well is the answer (no loop via the first URL)."""
    ex = make(RangeSpec.closed(0, 10))
    request(ex)
    assert ex.on_response(302, {"location": "https://cdn.example/v1"}, 0.0) == Skip()
    request(ex)
    with pytest.raises(HTTPStatusError) as info:
        ex.on_response(403, {}, 0.0)
    assert info.value.status == 403
    assert ex.requests_sent == 2


# -- validation gaps (issue 11) -------------------------------------------------------------


def test_every_byte_then_a_cut_is_a_success() -> None:
    # A chunked 206 that delivered its whole range, then lost the connection before the last
    # chunk: once a bare ValueError (an empty resume range).
    ex = make(RangeSpec.closed(0, 10))
    request(ex)
    serve_206(ex, ByteRange(0, 10), chunks=3)
    assert ex.on_error(NetworkError("reset before the last chunk")) == Skip()
    assert ex.next_request(0.0) is None
    assert ex.result.data == FILE[0:10] and ex.result.range == ByteRange(0, 10)
    assert (ex.requests_sent, ex.retries) == (1, 0)


def test_a_whole_file_of_known_size_then_a_cut_is_a_success() -> None:
    ex = make(RangeSpec.closed(0, 10), pinned=Identity(ETag("e1"), None, 200))
    request(ex)
    assert ex.on_response(200, {"etag": '"e1"'}, 0.0) == ReadBody(None)
    ex.on_data(FILE[:150])
    ex.on_data(FILE[150:])
    assert ex.on_error(NetworkError("reset")) == Skip()
    assert ex.result.full and ex.result.data == FILE


def test_a_shorter_answer_is_kept_and_the_rest_asked_for() -> None:
    ex = make(RangeSpec.closed(0, 100))
    request(ex)
    serve_206(ex, ByteRange(0, 40))
    assert ex.on_end() == Skip(), "not a failure: no wait"
    follow_up = request(ex)
    assert follow_up.headers["Range"] == "bytes=40-99"
    assert follow_up.headers["If-Match"] == '"e1"'
    serve_206(ex, ByteRange(40, 100))
    assert ex.on_end() is None
    assert ex.result.data == FILE[0:100] and ex.result.range == ByteRange(0, 100)
    assert ex.retries == 0


def test_a_widened_answer_is_trimmed_and_not_read_past_what_was_asked() -> None:
    ex = make(RangeSpec.closed(50, 60))
    request(ex)
    assert ex.on_response(206, partial_headers(ByteRange(32, 96)), 0.0) == ReadBody(64)
    body = FILE[32:96]
    ex.on_data(body[:10])
    assert ex.body_wanted
    ex.on_data(body[10:30])  # reaches byte 62: past the 10 bytes asked for
    assert not ex.body_wanted, "the rest of the block is not needed"
    assert ex.on_end() is None
    assert ex.result.data == FILE[50:60] and ex.result.range == ByteRange(50, 60)


def test_a_shifted_forward_answer_is_held_until_the_bytes_before_it_arrive() -> None:
    ex = make(RangeSpec.closed(0, 100))
    request(ex)
    serve_206(ex, ByteRange(30, 130), chunks=5)
    assert ex.take() == (0, b""), "nothing in order yet: bytes 30.. wait for 0..30"
    assert ex.on_end() == Skip()
    assert request(ex).headers["Range"] == "bytes=0-29"
    serve_206(ex, ByteRange(0, 30))
    assert ex.on_end() is None
    assert ex.result.data == FILE[0:100]


@SETTINGS
@given(
    answers=st.lists(st.tuples(st.integers(-60, 60), st.integers(1, 120)), min_size=1, max_size=12),
    chunk=st.integers(1, 50),
)
def test_any_honest_answers_reassemble_the_exact_bytes(
    answers: list[tuple[int, int]], chunk: int
) -> None:
    """Whatever ranges an honest server answers with (each holding some byte asked for), the
    result is exactly the bytes asked for, in order."""
    want = ByteRange(50, 150)
    ex = make(RangeSpec.of(want), attempts=50)
    for shift, length in answers:
        req = request(ex)
        (asked,) = parse_range(req.headers["Range"])
        assert asked.start is not None and asked.stop is not None
        start = min(max(asked.start + shift, 0), asked.stop - 1)
        got = ByteRange(start, min(max(start + length, asked.start + 1), len(FILE)))
        assert ex.on_response(206, partial_headers(got), 0.0) == ReadBody(len(got))
        body = FILE[got.start : got.stop]
        for i in range(0, len(body), chunk):
            ex.on_data(body[i : i + chunk])
            if not ex.body_wanted:
                break
        if ex.on_end() is None:
            break
    if ex.done:
        assert ex.result.data == FILE[want.start : want.stop]
        assert ex.result.range == want


def test_multipart_body_is_not_wanted_after_its_close_delimiter() -> None:
    specs = [RangeSpec.closed(0, 5), RangeSpec.closed(100, 105)]
    ex = make(specs)
    request(ex)
    boundary = "B"
    ex.on_response(206, {"content-type": f"multipart/byteranges; boundary={boundary}"}, 0.0)
    body = b""
    for r in (ByteRange(0, 5), ByteRange(100, 105)):
        body += f"--{boundary}\r\nContent-Range: bytes {r.start}-{r.stop - 1}/200\r\n\r\n".encode()
        body += FILE[r.start : r.stop] + b"\r\n"
    ex.on_data(body)
    assert ex.body_wanted
    ex.on_data(b"--B--\r\nan epilogue that never ends")
    assert not ex.body_wanted
    assert ex.on_end() is None
    assert ex.result.pieces == ((0, FILE[0:5]), (100, FILE[100:105]))
