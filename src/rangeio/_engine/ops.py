"""The operations engine programs yield: the only I/O a program can ask for, run by a runner.

Engine code is written once as generator "programs" that ``yield`` these operations and get their
results sent back (or their exceptions thrown in). ``rangeio/_sync/runner.py`` runs them by
blocking; ``rangeio/_async/runner.py`` runs them with ``await``. So sync and async share every
line of logic, and neither shell is generated from the other.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from rangeio._core.exchange import Request
from rangeio._core.options import Timeout
from rangeio.errors import NetworkTimeoutError

T = TypeVar("T")


class Op:
    """Base of every operation."""


@dataclass(frozen=True, slots=True)
class Send(Op):
    """Send a request; the result is the transport's response (status, headers, body)."""

    request: Request
    timeout: Timeout

    @property
    def within(self) -> float | None:
        """Seconds the runner gives the whole response head (``Timeout.head``)."""
        return self.timeout.head

    def overrun(self) -> NetworkTimeoutError:
        return NetworkTimeoutError(
            f"no complete response head from {self.request.url} within {self.timeout.head:g} s "
            "(head timeout)"
        )


# Not frozen: one is made per body chunk, and a frozen dataclass costs three times as much to
# make (bodies of 1-byte chunks, benchmarks/chunk_overhead.py). Nothing changes it once made.
@dataclass(slots=True)
class NextChunk(Op):
    """The next raw body chunk of ``response``, or None at the end of the body; the runner
    cuts the wait after ``within`` seconds (None: only the client's read timeout bounds it)."""

    response: Any
    within: float | None = None

    def overrun(self) -> NetworkTimeoutError:
        return NetworkTimeoutError(
            f"waited {self.within:g} s for the next body chunk or the end of the body "
            "(low_speed: slower than the floor for a whole window)"
        )


@dataclass(frozen=True, slots=True)
class Close(Op):
    """Release ``response``; an unread body drops the connection (``_engine/body.py``
    ``release()`` drains a small rest first, so that the connection is kept)."""

    response: Any


@dataclass(frozen=True, slots=True)
class Sleep(Op):
    seconds: float


@dataclass(frozen=True, slots=True)
class Spawn(Op):
    """Start ``program`` concurrently (bounded by the file's concurrency); the result is a handle
    for Join. Never blocks, so it may be yielded while a lock is held. ``fan_out``: one of the
    many requests of one call (``read_ranges``), bounded further by the runner's fan-out limit;
    a cursor's own fetch is not (the cursors are the user's parallelism)."""

    program: Program[Any]
    fan_out: bool = False


@dataclass(frozen=True, slots=True)
class Join(Op):
    """Wait for spawned programs; the result is their results in order, or the first error.
    Cancelling the waiter (async) never cancels the programs: other readers may share them."""

    handles: Sequence[Any]


@dataclass(frozen=True, slots=True)
class Advance(Op):
    """Run the suspended ``program`` until it yields Delivered (result True) or ends (False)."""

    program: Program[Any]


@dataclass(frozen=True, slots=True)
class Abandon(Op):
    """Stop a suspended ``program`` for good and drop any response it has open."""

    program: Program[Any]


@dataclass(frozen=True, slots=True)
class Blocking(Op):
    """Call ``function(*args)`` (disk I/O, hashing) and return its result: directly in the sync
    runner, on a worker thread in the async one so that the event loop never blocks."""

    function: Callable[..., Any]
    args: tuple[Any, ...] = ()


class Delivered(Op):
    """Yielded by a streaming program after each body chunk: a pause point for Advance."""


DELIVERED = Delivered()

Program = Generator[Op, Any, T]
