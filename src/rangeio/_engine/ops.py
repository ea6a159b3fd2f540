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
    """Base of every operation. Plain slotted classes, written out: one is made per request and
    per body chunk, so construction must be cheap, and frozen dataclasses cost ~0.5 ms each to
    create at import on Python 3.11 (`_core/records.py`). Nothing changes an operation once made;
    they compare by identity (a runner dispatches on their type)."""

    __slots__ = ()

    def __repr__(self) -> str:
        names: tuple[str, ...] = type(self).__slots__
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{type(self).__name__}({fields})"


class EngineMisuse(RuntimeError):
    """A program broke a rule of the ops (see the module's docstring): a bug in rangeio."""


class Send(Op):
    """Send a request; the result is the transport's response (status, headers, body)."""

    __slots__ = ("request", "timeout")

    def __init__(self, request: Request, timeout: Timeout) -> None:
        self.request = request
        self.timeout = timeout

    @property
    def within(self) -> float | None:
        """Seconds the runner gives the whole response head (``Timeout.head``)."""
        return self.timeout.head

    def overrun(self) -> NetworkTimeoutError:
        return NetworkTimeoutError(
            f"no complete response head from {self.request.url} within {self.timeout.head:g} s "
            "(head timeout)"
        )


class NextChunk(Op):
    """The next raw body chunk of ``response``, or None at the end of the body; the runner
    cuts the wait after ``within`` seconds (None: only the client's read timeout bounds it).
    One is made per body chunk (bodies of 1-byte chunks: benchmarks/chunk_overhead.py).

    ``into``: a writable buffer to receive into. A client that can (``readinto1`` on the
    transport's response: rangeio's urllib3 adapter) reads what has arrived straight into it
    and the chunk is ``into[:n]``, a view of it (no bytes object made); any other hands over
    its own bytes, as without ``into``. Either way the chunk is bytes-like, and a view stays
    valid only until the program receives into ``into`` again."""

    __slots__ = ("response", "within", "into")

    def __init__(
        self, response: Any, within: float | None = None, into: memoryview | None = None
    ) -> None:
        self.response = response
        self.within = within
        self.into = into

    def overrun(self) -> NetworkTimeoutError:
        return NetworkTimeoutError(
            f"waited {self.within:g} s for the next body chunk or the end of the body "
            "(low_speed: slower than the floor for a whole window)"
        )


class Close(Op):
    """Release ``response``; an unread body drops the connection (``_engine/body.py``
    ``release()`` drains a small rest first, so that the connection is kept)."""

    __slots__ = ("response",)

    def __init__(self, response: Any) -> None:
        self.response = response


class Sleep(Op):
    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


class Spawn(Op):
    """Start ``program`` concurrently (bounded by the file's concurrency); the result is a handle
    for Join. Never blocks, so it may be yielded while a lock is held. ``fan_out``: one of the
    many requests of one call (``read_ranges``), bounded further by the runner's fan-out limit;
    a cursor's own fetch is not (the cursors are the user's parallelism).

    ``joined_next``: the spawner's next operation is a Join of this handle (a read waiting for
    its own fetch). The sync runner then runs the program in the joining thread, under a slot
    of the same bound, instead of handing it to a pool thread and waiting for it: the thread
    hop is most of a cached-connection request's CPU. Other readers join the handle as any
    other. Should the spawner yield anything else first, the program starts on the pool then.
    Never with ``fan_out`` (a fan-out's bound is its pool)."""

    __slots__ = ("program", "fan_out", "joined_next")

    def __init__(
        self, program: Program[Any], fan_out: bool = False, joined_next: bool = False
    ) -> None:
        self.program = program
        self.fan_out = fan_out
        self.joined_next = joined_next


class Join(Op):
    """Wait for spawned programs; the result is their results in order, or the first error.
    Cancelling the waiter (async) never cancels the programs: other readers may share them."""

    __slots__ = ("handles",)

    def __init__(self, handles: Sequence[Any]) -> None:
        self.handles = handles


class Advance(Op):
    """Run the suspended ``program`` until it yields Delivered (result True) or ends (False)."""

    __slots__ = ("program",)

    def __init__(self, program: Program[Any]) -> None:
        self.program = program


class Abandon(Op):
    """Stop a suspended ``program`` for good and drop any response it has open."""

    __slots__ = ("program",)

    def __init__(self, program: Program[Any]) -> None:
        self.program = program


class Blocking(Op):
    """Call ``function(*args)`` (disk I/O, hashing) and return its result: directly in the sync
    runner, on a worker thread in the async one so that the event loop never blocks."""

    __slots__ = ("function", "args")

    def __init__(self, function: Callable[..., Any], args: tuple[Any, ...] = ()) -> None:
        self.function = function
        self.args = args


class ReadClock(Op):
    """The runner's Clock; answered by the Stepper itself, without a round trip through the
    runner's I/O."""

    __slots__ = ()


READ_CLOCK = ReadClock()


class Delivered(Op):
    """Yielded by a streaming program after each body chunk: a pause point for Advance."""

    __slots__ = ()


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


def spawn(
    program: Program[Any], *, fan_out: bool = False, joined_next: bool = False
) -> Program[Handle]:
    """Start ``program``; the handle to Join it by (never from a spawned program)."""
    handle: Handle = yield Spawn(program, fan_out, joined_next)
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
