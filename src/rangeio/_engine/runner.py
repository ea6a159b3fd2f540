"""What the sync and async runners share: stepping a program, and which responses are open."""

from __future__ import annotations

import time
from typing import Any

from rangeio._engine.ops import DELIVERED, READ_CLOCK, Clock, EngineMisuse, Join, Op, Program


class SystemClock:
    """The real clocks: the one place the engine's time comes from (the ReadClock op)."""

    __slots__ = ()

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


SYSTEM_CLOCK = SystemClock()


class Live:
    """A response in flight: what the program sees (status, headers) plus its chunk iterator
    (a plain iterator for the sync runner, an async one for the async runner), the response's
    ``readinto1`` if it has one (a NextChunk's ``into``), and the sync runner's watchdog guard
    (`_transport/watchdog.py`)."""

    __slots__ = ("response", "status", "headers", "chunks", "fill", "guard")

    def __init__(self, response: Any, chunks: Any) -> None:
        self.response = response
        self.status: int = response.status
        self.headers: dict[str, str] = response.headers
        self.chunks = chunks
        self.fill: Any = getattr(response, "readinto1", None)
        self.guard: Any = None

    def next_chunk(self, into: memoryview) -> Any:
        """The sync runner's read of one chunk: into ``into`` where the client can (the
        chunk is then a view of it), else the client's own next chunk; None at the end."""
        fill = self.fill
        if fill is None:
            return next(self.chunks, None)
        received = fill(into)
        return into[:received] if received else None


class Stepper:
    """Drives one program: ``next_op`` sends the last result (or throws the last error) in and
    returns the next operation to run, or None once the program has ended (``result`` holds its
    value) or, when pausing, has yielded DELIVERED (``paused`` is then True). It answers ReadClock
    itself, with ``clock``; a ``spawned`` program that yields Join gets EngineMisuse thrown
    in (``_engine/ops.py``: it could deadlock the sync runner's pool)."""

    __slots__ = (
        "_program",
        "_pause",
        "_clock",
        "_spawned",
        "_value",
        "_error",
        "result",
        "paused",
    )

    def __init__(
        self, program: Program[Any], *, pause: bool, clock: Clock, spawned: bool = False
    ) -> None:
        self._program = program
        self._pause = pause
        self._clock = clock
        self._spawned = spawned
        self._value: Any = None
        self._error: BaseException | None = None
        self.result: Any = None
        self.paused = False

    def next_op(self) -> Op | None:
        while True:
            value, error = self._value, self._error
            self._value = self._error = None
            try:
                op = self._program.throw(error) if error is not None else self._program.send(value)
            except StopIteration as stop:
                self.result = stop.value
                return None
            if op is READ_CLOCK:
                self._value = self._clock
                continue
            if op is not DELIVERED:
                if self._spawned and type(op) is Join:
                    self._error = EngineMisuse(
                        "a spawned program yielded Join: with every pool thread held by a "
                        "program waiting for another, nothing runs (a deadlock); only the "
                        "program handed to run() may Join"
                    )
                    continue
                return op
            if self._pause:
                self.paused = True
                return None

    def succeeded(self, value: Any) -> None:
        self._value = value

    def failed(self, error: BaseException) -> None:
        """An operation's error goes back into the program, which may handle it; an
        interruption (KeyboardInterrupt, cancellation) is thrown in too, so that the program's
        cleanup (closing files) runs before it propagates."""
        self._error = error


class Responses:
    """Open responses of running programs and of programs paused by Advance, so that whatever
    ends a program (an error, a close, a cancellation) its connections are dropped."""

    def __init__(self) -> None:
        self._suspended: dict[int, list[Live]] = {}

    def of_suspended(self, program: Program[Any]) -> list[Live]:
        return self._suspended.setdefault(id(program), [])

    def release_suspended(self, program: Program[Any]) -> list[Live]:
        return self._suspended.pop(id(program), [])

    def program_ids(self) -> set[int]:
        """The paused programs (by id) that hold responses."""
        return set(self._suspended)

    def release_all(self) -> list[Live]:
        everything = [live for state in self._suspended.values() for live in state]
        self._suspended.clear()
        return everything
