"""Reading a response body chunk by chunk under the low-speed rule (`_core/stall.py`), and
releasing a response: its small rest drained so the connection is kept (`_core/drain.py`)."""

from __future__ import annotations

from typing import Any

from rangeio._core.drain import DRAIN_SECONDS, drain_budget
from rangeio._core.options import Timeout
from rangeio._core.stall import StallWatch
from rangeio._engine.ops import Clock, Close, NextChunk, Program, read_clock
from rangeio.errors import NetworkError, NetworkTimeoutError

# A wait is never given less than this: a deadline already (just) due is the floor's to judge.
_MIN_WAIT = 0.001


class BodyReader:
    """Yields NextChunk for one response and raises NetworkTimeoutError once the body has been
    slower than ``timeout.low_speed``. Only the time spent waiting for chunks counts, so a
    reader that pauses between chunks never makes the server look slow. Each wait carries the
    moment the floor would fire if nothing more came (``StallWatch.deadline``), and the runner
    cuts a wait that reaches it: the wait for the end of the body (trailers) is bounded too.

    ``clock`` is the runner's (``read_clock()``): a reader is made per body, its clock read
    per chunk."""

    __slots__ = ("_response", "_clock", "_watch", "_waited", "_started")

    def __init__(self, response: Any, timeout: Timeout, clock: Clock) -> None:
        self._response = response
        self._clock = clock
        limit = timeout.low_speed
        self._watch = StallWatch(limit, 0.0) if limit is not None else None
        self._waited = 0.0
        self._started = 0.0

    def next_chunk(self, into: memoryview | None = None) -> Program[bytes | None]:
        """The next chunk (None at the end); received into ``into`` where the client can
        (``NextChunk.into``: the chunk is then a view of it, valid until the next receive)."""
        chunk: bytes | None = yield self.wait(into)
        return self.received(chunk)

    # The two halves of next_chunk, for a hot loop that yields the operation itself (one
    # generator fewer per chunk): ``chunk = body.received((yield body.wait()))``.

    def wait(self, into: memoryview | None = None) -> NextChunk:
        """The operation that waits for the next chunk."""
        if self._watch is None:
            return NextChunk(self._response, None, into)
        # The wait itself is bounded too: a client busy with bytes that are not body (endless
        # chunked trailers) returns nothing until it is done, so the floor could never judge.
        within = self._watch.deadline() - self._waited
        self._started = self._clock.monotonic()
        return NextChunk(self._response, within if within > _MIN_WAIT else _MIN_WAIT, into)

    def received(self, chunk: bytes | None) -> bytes | None:
        """``chunk`` (None at the end) arrived; raises NetworkTimeoutError below the floor."""
        watch = self._watch
        if watch is None:
            return chunk
        self._waited += self._clock.monotonic() - self._started
        if chunk is not None and watch.stalled(len(chunk), self._waited):
            raise NetworkTimeoutError(
                f"response body {watch.limit.describe()} of waiting for it (low_speed)"
            )
        return chunk


def release(response: Any, timeout: Timeout, *, method: str, received: int = 0) -> Program[int]:
    """Close ``response``, first reading the rest of its body when ``drain_budget`` allows, so
    that the transport returns the connection to its pool instead of dropping it. THE one place
    a body is drained, for every runner and client. ``received``: body bytes already read. The
    result is the count of bytes drained (stats count every body byte received)."""
    budget = drain_budget(
        method=method, status=response.status, headers=response.headers, received=received
    )
    drained = 0
    if budget is not None:
        drained = yield from _drain(response, timeout, budget)
    yield Close(response)
    return drained


def _drain(response: Any, timeout: Timeout, budget: int) -> Program[int]:
    """Read and discard the body until its end, at most ``budget`` bytes and ``DRAIN_SECONDS``
    (each wait also under the low-speed floor): past either, or on any failure, stop, and the
    Close that follows drops the connection (the transport sees the body unfinished)."""
    clock = yield from read_clock()
    body = BodyReader(response, timeout, clock)
    deadline = clock.monotonic() + DRAIN_SECONDS
    drained = 0
    while True:
        wait = body.wait()
        left = deadline - clock.monotonic()
        if left <= 0:
            return drained
        if wait.within is None or wait.within > left:
            wait.within = left
        try:
            chunk = body.received((yield wait))
        except NetworkError:
            return drained
        if chunk is None:
            return drained
        drained += len(chunk)
        if drained > budget:
            return drained
