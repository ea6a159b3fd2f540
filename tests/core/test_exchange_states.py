"""RangeExchange as a state machine: every call out of order raises ExchangeStateError, and every
sequence the engine drives moves through the states ``State`` documents."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rangeio._core.download_exchange import DownloadExchange
from rangeio._core.exchange import (
    ExchangeStateError,
    RangeExchange,
    ReadBody,
    Skip,
    State,
    Wait,
)
from rangeio._core.headers import RangeSpec, parse_range
from rangeio._core.identity import ETag, Identity
from rangeio._core.ranges import ByteRange
from rangeio._core.redirects import ResolvedUrl, expiry_of
from rangeio._core.retry import RetryPolicy
from rangeio.errors import NetworkError, ProtocolError, RangeioError
from tests.core.test_exchange import FILE, make, partial_headers, request

Call = Callable[[RangeExchange], object]

CALLS: dict[str, Call] = {
    "next_request": lambda ex: ex.next_request(0.0),
    "on_response": lambda ex: ex.on_response(206, partial_headers(ByteRange(0, 10)), 0.0),
    "on_data": lambda ex: ex.on_data(b"x"),
    "on_end": lambda ex: ex.on_end(),
    "on_error": lambda ex: ex.on_error(NetworkError("reset")),
    "body_wanted": lambda ex: ex.body_wanted,
}
# Where each call is legal (next_request in DONE too: it says None, the driving loop's end).
LEGAL: dict[str, frozenset[State]] = {
    "next_request": frozenset({State.READY, State.DONE}),
    "on_response": frozenset({State.SENT}),
    "on_data": frozenset({State.BODY}),
    "on_end": frozenset({State.BODY}),
    "on_error": frozenset({State.SENT, State.BODY}),
    "body_wanted": frozenset({State.BODY}),
}


def in_state(state: State) -> RangeExchange:
    """An exchange of bytes 0-9 brought to ``state`` by legal calls; for RESTART (reached by
    the download mode only) a download's resume answered 200."""
    if state is State.RESTART:
        download = DownloadExchange(
            5,
            None,
            first_url="https://a.example/data.bin",
            target=ResolvedUrl("https://a.example/data.bin"),
            user_headers={},
            pinned=Identity(ETag.parse('"e1"'), None, 10),
            retry=RetryPolicy(attempts=3),
        )
        request(download)
        assert download.on_response(200, {"content-length": "10"}, 0.0) == ReadBody(10)
        return download
    ex = make(RangeSpec.closed(0, 10))
    if state is State.READY:
        return ex
    request(ex)
    if state is State.SENT:
        return ex
    assert ex.on_response(206, partial_headers(ByteRange(0, 10)), 0.0) == ReadBody(10)
    if state is State.BODY:
        return ex
    if state is State.DONE:
        ex.on_data(FILE[:10])
        assert ex.on_end() is None
        return ex
    with pytest.raises(ProtocolError):
        ex.on_data(FILE[:11])  # longer than its Content-Range: the exchange fails
    return ex


ILLEGAL = [
    (name, state)
    for name in CALLS
    for state in State
    if state not in LEGAL[name] and not (name == "next_request" and state is State.DONE)
]


@pytest.mark.parametrize(("name", "state"), ILLEGAL, ids=[f"{n}-in-{s.name}" for n, s in ILLEGAL])
def test_every_call_out_of_order_raises(name: str, state: State) -> None:
    ex = in_state(state)
    assert ex.state is state
    with pytest.raises(ExchangeStateError, match=name):
        CALLS[name](ex)
    assert ex.state is state, "a refused call changes nothing"


def test_the_named_misuses() -> None:
    ex = make()
    with pytest.raises(ExchangeStateError, match=r"on_data\(\) in state READY"):
        ex.on_data(b"x")  # before any request was accepted
    request(ex)
    with pytest.raises(ExchangeStateError, match=r"next_request\(\) in state SENT"):
        ex.next_request(0.0)  # twice without an answer
    with pytest.raises(ExchangeStateError, match=r"on_data\(\) in state SENT"):
        ex.on_data(b"x")  # the request is out, but no response said to read a body
    ex.on_response(206, partial_headers(ByteRange(0, 10)), 0.0)
    ex.on_data(FILE[:10])
    ex.on_end()
    with pytest.raises(ExchangeStateError, match=r"on_data\(\) in state DONE"):
        ex.on_data(b"x")  # after the exchange ended
    assert ex.next_request(0.0) is None


def test_calls_after_a_failure_raise() -> None:
    ex = in_state(State.FAILED)
    for name, call in CALLS.items():
        with pytest.raises(ExchangeStateError, match=f"{name}.*after the exchange failed"):
            call(ex)


def test_result_before_the_end_is_a_state_error() -> None:
    for state in (State.READY, State.SENT, State.BODY, State.FAILED):
        with pytest.raises(ExchangeStateError):
            _ = in_state(state).result
    assert in_state(State.DONE).result.data == FILE[:10]


def test_the_engines_sequences_move_through_the_states() -> None:
    """Redirect, a transport error before any answer, retry after a 503, a cut body resumed:
    each lands where ``State`` says, and the exchange ends DONE with the exact bytes."""
    ex = make(RangeSpec.closed(0, 10), attempts=5)
    request(ex)
    assert ex.on_response(302, {"location": "https://cdn.example/x"}, 0.0) == Skip()
    assert ex.state is State.READY
    request(ex)
    assert isinstance(ex.on_error(NetworkError("refused")), Wait)
    assert ex.state is State.READY
    request(ex)
    assert isinstance(ex.on_response(503, {"retry-after": "0"}, 0.0), Wait)
    assert ex.state is State.READY
    request(ex)
    assert ex.on_response(206, partial_headers(ByteRange(0, 10)), 0.0) == ReadBody(10)
    assert ex.state is State.BODY and ex.body_wanted
    ex.on_data(FILE[:4])
    assert isinstance(ex.on_error(NetworkError("reset")), Wait)
    assert ex.state is State.READY
    assert request(ex).headers["Range"] == "bytes=4-9"
    ex.on_response(206, partial_headers(ByteRange(4, 10)), 0.0)
    ex.on_data(FILE[4:10])
    assert ex.on_end() is None and ex.state is State.DONE
    assert ex.result.data == FILE[:10]


@pytest.mark.parametrize(
    ("status", "headers", "method"),
    [
        (304, {"etag": '"e1"'}, "GET"),
        (200, {"content-length": "200"}, "HEAD"),
        (416, {"content-range": "bytes */0"}, "GET"),
    ],
    ids=["not-modified", "head", "empty-file"],
)
def test_answers_without_a_body_end_the_exchange(
    status: int, headers: dict[str, str], method: str
) -> None:
    ex = make(RangeSpec.closed(0, 10), method=method)
    if status == 304:
        ex = RangeExchange(
            RangeSpec.closed(0, 10),
            first_url=ex._first_url,
            target=ex._target,
            user_headers={},
            pinned=None,
            retry=ex._retry,
            max_full_body=None,
            conditional={"If-None-Match": '"e1"'},
        )
    request(ex)
    assert ex.on_response(status, headers, 0.0) == Skip()
    assert ex.state is State.DONE and ex.next_request(0.0) is None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(sorted(CALLS)), max_size=40))
def test_any_sequence_of_calls_is_refused_exactly_where_illegal(names: list[str]) -> None:
    """Random calls against honest answers (a 206 for the range asked, one byte per chunk):
    a call raises ExchangeStateError exactly when its state does not allow it, and any other
    error leaves the exchange FAILED."""
    ex = make(RangeSpec.closed(0, 10), attempts=100)
    asked = ByteRange(0, 10)
    fed = 0
    for name in names:
        before = ex.state
        call: Call = CALLS[name]
        if name == "on_response":

            def call(ex: RangeExchange, asked: ByteRange = asked) -> object:
                return ex.on_response(206, partial_headers(asked), 0.0)

        elif name == "on_data":

            def call(ex: RangeExchange, at: int = asked.start + fed) -> object:
                return ex.on_data(FILE[at : at + 1])

        if before not in LEGAL[name]:
            with pytest.raises(ExchangeStateError):
                call(ex)
            assert ex.state is before
            continue
        try:
            value = call(ex)
        except ExchangeStateError:
            pytest.fail(f"{name}() refused in {before.name}, where it is legal")
        except RangeioError:
            assert ex.state is State.FAILED
            continue
        if name == "next_request" and value is not None:
            header = value.headers["Range"]  # type: ignore[attr-defined]
            spec = parse_range(header)[0]
            assert spec.start is not None and spec.stop is not None
            asked, fed = ByteRange(spec.start, spec.stop), 0
        elif name == "on_data":
            fed += 1
        elif name in ("on_end", "on_error"):
            fed = 0
    if ex.state is State.DONE:
        assert FILE[:10].startswith(ex.result.data)


# -- presigned expiry ---------------------------------------------------------------------------


def test_a_lifetime_without_a_signing_date_counts_from_the_redirect() -> None:
    """X-Amz-Expires without X-Amz-Date: the URL lives that long from when its redirect came,
    whatever call ends the exchange (here a transport error after every byte, which once took
    a default time of 0 and made the URL expire in 1970)."""
    ex = make(RangeSpec.closed(0, 10))
    request(ex, now=1_000_000.0)
    presigned = "https://cdn.example/x?X-Amz-Expires=600&X-Amz-Signature=s"
    assert ex.on_response(302, {"location": presigned}, 1_000_000.0) == Skip()
    request(ex, now=1_000_001.0)
    ex.on_response(206, partial_headers(ByteRange(0, 10)), 1_000_001.0)
    ex.on_data(FILE[:10])
    assert ex.on_error(NetworkError("reset before the last chunk")) == Skip()
    url = ex.result.url
    assert url.url == presigned and url.expires_at == 1_000_600.0
    assert url.usable(1_000_500.0) and not url.usable(1_000_600.0)


@pytest.mark.parametrize("date", ["", "X-Amz-Date=garbage&"])
def test_expiry_without_a_usable_date_is_never_in_1970(date: str) -> None:
    assert expiry_of(f"https://b.example/k?{date}X-Amz-Expires=60", 1_700_000_000.0) == (
        1_700_000_060.0
    )
