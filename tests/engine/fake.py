"""A scripted runner for engine programs: each Send is answered from a script, every op recorded.

The programs of `rangeio/_engine/` do no I/O themselves: they yield operations (`_engine/ops.py`)
and a runner executes them. This runner executes them against a list of scripted answers, in
order, so that a test can assert the exact sequence of operations a program asked for: which
requests (and with which headers), which bodies it read, closed or drained, and where it slept.
Spawned programs run inline, at the Spawn, one after another: the order is deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from rangeio._core.exchange import Request
from rangeio._engine import ops
from rangeio._engine.runner import Stepper


@dataclass
class Answer:
    """One scripted response: its status, headers and body chunks. An exception among the
    chunks is raised by the NextChunk that reaches it (a connection cut mid-body)."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: list[bytes | BaseException] = field(default_factory=list)


# A script entry: an answer, or a function of the request that makes it (an answer that depends
# on the Range the program chose).
Scripted = Answer | Callable[[Request], Answer]


class FakeResponse:
    """What a Send returns: what the programs read of a transport's response."""

    def __init__(self, answer: Answer, request: Request) -> None:
        self.status = answer.status
        self.headers = answer.headers
        self.request = request
        self._chunks = list(answer.body)
        self.read = 0  # chunks handed out
        self.closed = False

    def next_chunk(self) -> bytes | None:
        if self.closed:
            raise AssertionError("NextChunk on a closed response")
        if self.read >= len(self._chunks):
            return None
        chunk = self._chunks[self.read]
        self.read += 1
        if isinstance(chunk, BaseException):
            raise chunk
        return chunk

    @property
    def finished(self) -> bool:
        """Whether every chunk was read (the end of the body seen or not)."""
        return self.read >= len(self._chunks)


class _Handle:
    __slots__ = ("result", "error")

    def __init__(self) -> None:
        self.result: Any = None
        self.error: BaseException | None = None


class FakeRunner:
    """Runs programs against ``answers`` (one per Send, in order); ``ops`` records every
    operation executed, ``responses`` every response handed out."""

    def __init__(self, answers: Iterable[Scripted]) -> None:
        self.script = list(answers)
        self.ops: list[ops.Op] = []
        self.clock = StillClock()
        self.responses: list[FakeResponse] = []

    # -- what tests assert on ------------------------------------------------------------------

    @property
    def sent(self) -> list[Request]:
        return [op.request for op in self.ops if isinstance(op, ops.Send)]

    def kinds(self, *, wire: bool = False) -> list[str]:
        """The operations' names in order, consecutive NextChunks of one response as one;
        ``wire``: only those that touch the network or the clock (Send, NextChunk, Close,
        Sleep), not how the program schedules itself (Spawn, Join)."""
        out: list[str] = []
        for op in self.ops:
            if wire and not isinstance(op, (ops.Send, ops.NextChunk, ops.Close, ops.Sleep)):
                continue
            name = type(op).__name__
            if name == "NextChunk" and out and out[-1] == "NextChunk":
                continue
            out.append(name)
        return out

    # -- running ---------------------------------------------------------------------------------

    def run(self, program: ops.Program[Any], *, spawned: bool = False) -> Any:
        stepper = Stepper(program, pause=False, clock=self.clock, spawned=spawned)
        return self._drive(stepper).result

    def _drive(self, stepper: Stepper) -> Stepper:
        while (op := stepper.next_op()) is not None:
            try:
                stepper.succeeded(self._do(op))
            except BaseException as exc:
                stepper.failed(exc)
        return stepper

    def _do(self, op: ops.Op) -> Any:
        self.ops.append(op)
        if isinstance(op, ops.Send):
            if not self.script:
                raise AssertionError(f"unscripted request: {op.request}")
            scripted = self.script.pop(0)
            answer = scripted if isinstance(scripted, Answer) else scripted(op.request)
            response = FakeResponse(answer, op.request)
            self.responses.append(response)
            return response
        if isinstance(op, ops.NextChunk):
            return op.response.next_chunk()
        if isinstance(op, ops.Close):
            op.response.closed = True
            return None
        if isinstance(op, ops.Sleep):
            return None  # recorded, never slept
        if isinstance(op, ops.Blocking):
            return op.function(*op.args)
        if isinstance(op, ops.Spawn):
            handle = _Handle()
            try:
                handle.result = self.run(op.program, spawned=True)
            except Exception as exc:
                handle.error = exc
            return handle
        if isinstance(op, ops.Join):
            for handle in op.handles:
                if handle.error is not None:
                    raise handle.error
            return [handle.result for handle in op.handles]
        if isinstance(op, ops.Advance):
            stepper = Stepper(op.program, pause=True, clock=self.clock)
            return self._drive(stepper).paused
        if isinstance(op, ops.Abandon):
            op.program.close()
            return None
        raise TypeError(f"the fake runner does not know {op!r}")


class StillClock:
    """The runner's clock for scripted runs: time stands still, so no wait ever times out and
    every run of a script is the same."""

    def time(self) -> float:
        return 1_000_000.0

    def monotonic(self) -> float:
        return 1_000.0


def asked_range(request: Request, total: int) -> tuple[int, int]:
    """[start, stop) of the single ``bytes=a-b`` Range of ``request``."""
    first, _, last = request.headers["Range"].removeprefix("bytes=").partition("-")
    return int(first), min(int(last) + 1, total)


def partial(data: bytes, start: int, total: int, **headers: str) -> dict[str, str]:
    """The headers of a 206 carrying ``data`` at ``start`` of a ``total``-byte file."""
    stop = start + len(data) - 1
    return {
        "content-range": f"bytes {start}-{stop}/{total}",
        "content-length": str(len(data)),
        **{k.replace("_", "-"): v for k, v in headers.items()},
    }
