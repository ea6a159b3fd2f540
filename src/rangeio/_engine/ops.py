"""The operations engine programs yield: the only I/O a program can ask for, run by a runner.

Engine code is written once as generator "programs" that ``yield`` these operations and get their
results sent back (or their exceptions thrown in). ``rangeio/_sync/runner.py`` runs them by
blocking; ``rangeio/_async/runner.py`` runs them with ``await``. So sync and async share every
line of logic, and neither shell is generated from the other.

Two rules a program must keep, which the runners check:

- It never reads a clock itself: it asks for the runner's ``Clock`` (``read_clock()``, or ``now()``
  for the wall time), so that a test moves a program's time by handing the runner another
  clock. A hot loop asks once and keeps the clock (``BodyReader``).
- A *spawned* program never yields ``Join``. In the sync runner every spawned program holds a
  pool thread while it runs; one that waits for others spawned after it can wait for a thread
  that only its own ending would free: with a full pool, a deadlock. The sync runner raises
  EngineMisuse when it sees one (the async runner has no pool, but the rule is the same so that
  a program runs on both). Only the program a runner was handed (``run``) may Join.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from rangeio._core.exchange import Request
from rangeio._core.options import Timeout
from rangeio.errors import NetworkTimeoutError

T = TypeVar("T")


class Response(Protocol):
    """What a program sees of a response the runner sent (``_engine/runner.py`` Live)."""

    status: int
    headers: dict[str, str]


class Clock(Protocol):
    """A runner's clock: ``time()`` is the wall clock in epoch seconds (what presigned URLs
    expire by), ``monotonic()`` measures intervals (stall floors, checkpoints, elapsed)."""

    def time(self) -> float: ...

    def monotonic(self) -> float: ...


class Handle(Protocol):
    """A spawned program, as Spawn returns it (a Future or a task): only Join reads it."""


class Op:
    """Base of every operation."""


class EngineMisuse(RuntimeError):
    """A program broke a rule of the ops (see the module's docstring): a bug in rangeio."""


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
    cuts the wait after ``within`` seconds (None: only the client's read timeout bounds it).

    ``into``: a writable buffer to receive into. A client that can (``readinto1`` on the
    transport's response: rangeio's urllib3 adapter) reads what has arrived straight into it
    and the chunk is ``into[:n]``, a view of it (no bytes object made); any other hands over
    its own bytes, as without ``into``. Either way the chunk is bytes-like, and a view stays
    valid only until the program receives into ``into`` again."""

    response: Any
    within: float | None = None
    into: memoryview | None = None

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


@dataclass(frozen=True, slots=True)
class ReadClock(Op):
    """The runner's Clock; answered by the Stepper itself, without a round trip through the
    runner's I/O."""


READ_CLOCK = ReadClock()


class Delivered(Op):
    """Yielded by a streaming program after each body chunk: a pause point for Advance."""


DELIVERED = Delivered()

Program = Generator[Op, Any, T]


# Typed yields: ``x = yield Send(...)`` is Any; ``x = yield from send(...)`` has the result's
# type. The read path (``_engine/remote.py``) uses these.


def read_clock() -> Program[Clock]:
    """The runner's clock."""
    value: Clock = yield READ_CLOCK
    return value


def now() -> Program[float]:
    """The wall-clock time, from the runner's clock."""
    value: Clock = yield READ_CLOCK
    return value.time()


def send(request: Request, timeout: Timeout) -> Program[Response]:
    """Send ``request``: its response, head arrived."""
    response: Response = yield Send(request, timeout)
    return response


def next_chunk(op: NextChunk) -> Program[bytes | None]:
    """The next body chunk the ``op`` waits for, or None at the end of the body."""
    chunk: bytes | None = yield op
    return chunk


def close(response: Response) -> Program[None]:
    yield Close(response)


def sleep(seconds: float) -> Program[None]:
    yield Sleep(seconds)


def spawn(program: Program[Any], *, fan_out: bool = False) -> Program[Handle]:
    """Start ``program``; the handle to Join it by (never from a spawned program)."""
    handle: Handle = yield Spawn(program, fan_out)
    return handle


def join(handles: Sequence[Handle]) -> Program[list[Any]]:
    results: list[Any] = yield Join(handles)
    return results


def advance(program: Program[Any]) -> Program[bool]:
    """Run the suspended ``program`` to its next Delivered (True) or its end (False)."""
    paused: bool = yield Advance(program)
    return paused


def blocking(function: Callable[..., T], *args: Any) -> Program[T]:
    result: T = yield Blocking(function, args)
    return result
