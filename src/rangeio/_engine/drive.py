"""THE loop that runs one exchange over the transport, for every face: reads, streams, probes, downloads.

``drive`` yields Send / NextChunk / Close / Sleep for a `RangeExchange` (or its download mode,
`DownloadExchange`) until the exchange is done: the exchange decides every request and judges
every answer; this loop only carries them. What a face does with the bytes as they arrive is
its ``Sink`` (a download writes them to disk and checkpoints); a read lets them accumulate in
the exchange, or pauses after each chunk (``pauses``) so a stream hands them to its reader.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from rangeio._core.exchange import Action, RangeExchange, ReadBody, Request, Wait
from rangeio._core.options import Timeout
from rangeio._engine.body import BodyReader, release
from rangeio._engine.ops import DELIVERED, Clock, Close, Program, Send, Sleep, read_clock
from rangeio.errors import HeaderParseError, NetworkError, ProtocolError

# count(requests=..., fetched=..., retries=...): a face's counters (Stats, a download's job).
Counter = Callable[..., None]


class Sink(Protocol):
    """What a face does as an exchange's body arrives; each is a program run in the loop."""

    def opened(self, exchange: Any) -> Program[None]:
        """An answer with a body was judged (its meaning is on the exchange): prepare for it."""
        ...

    def received(self, exchange: Any) -> Program[None]:
        """A chunk was fed to the exchange: take what it placed."""
        ...

    def resuming(self, exchange: Any) -> Program[None]:
        """The exchange goes on with another request (a cut resumed, a retry, a redirect)."""
        ...


@dataclass(frozen=True, slots=True)
class Answered:
    """A response whose head the exchange judged (ReadBody) and whose body is not read yet:
    ``drive`` stopped there (``stop_at``) and a later ``drive(..., answered=)`` reads it."""

    request: Request
    response: Any


def drive(
    exchange: RangeExchange,
    timeout: Timeout,
    count: Counter,
    *,
    pauses: bool = False,
    sink: Sink | None = None,
    answered: Answered | None = None,
    stop_at: Callable[[Any], bool] | None = None,
) -> Program[Answered | None]:
    """Run ``exchange`` to its end over the transport. With ``pauses``, DELIVERED after every
    body chunk. ``stop_at(exchange)``, asked after each judged head with a body: True stops the
    loop there, returning the unread response (the caller hands it on, still the exchange's).
    ``answered``: start by reading the body of such a response."""
    # Asked once and kept (`_engine/ops.py`): each ReadClock is a resume of every frame
    # between here and the runner.
    clock = yield from read_clock()
    run = _Run(timeout, count, pauses, sink, clock)
    response: Any
    while True:
        action: Action | None
        if answered is not None:
            request, response, answered = answered.request, answered.response, None
            action = yield from _body(exchange, request, response, run)
        else:
            request_or_none = exchange.next_request(clock.time())
            if request_or_none is None:
                return None
            request = request_or_none
            count(requests=1)
            try:
                # The op itself, not `yield from send()`: one generator fewer per request.
                response = yield Send(request, timeout)
            except NetworkError as exc:
                action = exchange.on_error(exc)
            else:
                # No `finally: yield` here: a program being closed must not yield. A response
                # left open that way is closed by the runner, which tracks every response.
                try:
                    at = clock.time()
                    action = exchange.on_response(response.status, response.headers, at)
                except Exception as exc:
                    yield from _release(response, request, _drainable(exc, 0), timeout, count)
                    raise
                if isinstance(action, ReadBody):
                    if stop_at is not None and stop_at(exchange):
                        return Answered(request, response)
                    action = yield from _body(exchange, request, response, run)
                else:
                    yield from _release(response, request, 0, timeout, count)
        if exchange.done:
            continue  # next_request says None
        if sink is not None:
            yield from sink.resuming(exchange)
            if exchange.done:
                continue  # the sink wants nothing more (a segment another connection took)
        if isinstance(action, Wait):
            yield Sleep(action.seconds)
            count(retries=1)


@dataclass(frozen=True, slots=True)
class _Run:
    """What one drive() call runs with, handed to the body's steps."""

    timeout: Timeout
    count: Counter
    pauses: bool
    sink: Sink | None
    clock: Clock


def _body(
    exchange: RangeExchange, request: Request, response: Any, run: _Run
) -> Program[Action | None]:
    """Read the body of a judged answer into ``exchange``, then release the response."""
    rest: int | None = None  # a body that fails as it is read is never drained
    try:
        if run.sink is not None:
            yield from run.sink.opened(exchange)
        action, rest = yield from _read_body(exchange, response, run)
    except Exception as exc:
        yield from _release(response, request, _drainable(exc, rest), run.timeout, run.count)
        raise
    yield from _release(response, request, rest, run.timeout, run.count)
    return action


def _read_body(
    exchange: RangeExchange, response: Any, run: _Run
) -> Program[tuple[Action | None, int | None]]:
    """Read the body into ``exchange``: the action that follows, and the count of body
    bytes read when the rest is left unread and may be drained (None: nothing to drain,
    the body ended or failed)."""
    body = BodyReader(response, run.timeout, run.clock)
    count, pauses, sink = run.count, run.pauses, run.sink
    received = 0
    if sink is not None and not exchange.body_wanted:
        return exchange.on_end(), received  # the sink wants none of it (a refused mirror)
    while True:
        try:
            chunk = body.received((yield body.wait()))
        except NetworkError as exc:
            # Only the transport's failures are cuts to resume. What the exchange raises about
            # the body itself (longer than its Content-Range, a malformed multipart part) is
            # a ProtocolError too, but retrying cannot fix it, and "resuming" past a body
            # that overflowed would ask for an empty range.
            return exchange.on_error(exc), None
        if chunk is None:
            return exchange.on_end(), None
        exchange.on_data(chunk)
        received += len(chunk)
        count(fetched=len(chunk))
        if sink is not None:
            yield from sink.received(exchange)
        if not exchange.body_wanted:
            # The rest is not needed (a multipart epilogue, which may never end; the tail
            # of a widened 206; a segment another connection took over): stop here; the
            # release that follows drains it if it is small and framed, else drops the
            # connection (`_core/drain.py`).
            return exchange.on_end(), received
        if pauses:
            yield DELIVERED


def _drainable(error: Exception, received: int | None) -> int | None:
    """What of a response an ``error`` left may be drained (``received``: the body bytes read,
    None: nothing to drain). An answer refused for its status (404, 410, 412, 5xx) leaves its
    small body to drain; a malformed one drops the connection."""
    return None if isinstance(error, (ProtocolError, HeaderParseError)) else received


def _release(
    response: Any, request: Request, received: int | None, timeout: Timeout, count: Counter
) -> Program[None]:
    """Close ``response``; with ``received`` (the body bytes read), its rest is drained
    first if `_core/drain.py` allows, and the bytes drained are counted as fetched."""
    if received is None:
        yield Close(response)
        return
    drained = yield from release(response, timeout, method=request.method, received=received)
    if drained:
        count(fetched=drained)
