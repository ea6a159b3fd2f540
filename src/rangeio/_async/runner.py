"""Runs engine programs with await: one async transport, tasks bounded by a semaphore."""

from __future__ import annotations

import asyncio
import os
from typing import Any, TypeVar

from rangeio._async.transports import AsyncTransport
from rangeio._engine import ops
from rangeio._engine.ops import Clock
from rangeio._engine.runner import SYSTEM_CLOCK, Live, Responses, Stepper
from rangeio.errors import ForkError

T = TypeVar("T")


class AsyncRunner:
    """Executes the operations programs yield. Spawned programs become tasks that hold one of
    ``max_concurrency`` slots while they run; a waiter that is cancelled never cancels them,
    because other readers may be waiting on the same fetch. ``clock`` answers the programs'
    Now. A spawned program must not Join, as in the sync runner (`_engine/ops.py`)."""

    def __init__(
        self,
        transport: AsyncTransport,
        max_concurrency: int,
        fan_out: int | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.transport = transport
        self.clock = clock
        self._slots = asyncio.Semaphore(max_concurrency)
        # Fan-out spawns (Spawn.fan_out) take one of these first, then a slot.
        limited = fan_out is not None and fan_out < max_concurrency
        self._fan_slots = asyncio.Semaphore(fan_out) if limited and fan_out else None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._responses = Responses()
        self._forks = _forks

    async def run(self, program: ops.Program[T], *, spawned: bool = False) -> T:
        if self._forks != _forks:
            # The session, its connections and the loop it was made on belong to the parent.
            raise ForkError(
                "an async file opened before os.fork() cannot be used in the child: "
                "open it again there"
            )
        opened: list[Live] = []
        try:
            stepper = await self._drive(
                Stepper(program, pause=False, clock=self.clock, spawned=spawned), opened
            )
            result: T = stepper.result
            return result
        finally:
            if opened:  # a program normally closes its responses: no coroutine to run then
                await _close_all(opened)

    async def _drive(self, stepper: Stepper, opened: list[Live]) -> Stepper:
        while (op := stepper.next_op()) is not None:
            try:
                stepper.succeeded(await self._do(op, opened))
            except BaseException as exc:  # cancellation too: the program's cleanup runs first
                stepper.failed(exc)
        return stepper

    async def _do(self, op: ops.Op, opened: list[Live]) -> Any:
        # Exact types, not isinstance chains: operations are final classes, and this runs
        # for every operation of every program.
        if type(op) is ops.NextChunk:
            if op.within is None:
                return await anext(op.response.chunks, None)
            deadline = op.response.guard
            if deadline is None:
                deadline = op.response.guard = _Deadline()
            deadline.arm(op.within)
            try:
                chunk = await anext(op.response.chunks, None)
            except BaseException as exc:  # the cancellation of an expired deadline among them
                if deadline.disarm():
                    raise op.overrun() from exc
                raise
            if deadline.disarm():
                raise op.overrun()
            return chunk
        if type(op) is ops.Send:
            sent = self.transport.send(op.request, op.timeout)
            within = op.within
            response = await (sent if within is None else _within(sent, within, op.overrun))
            live = Live(response, response.iter_raw())
            opened.append(live)
            return live
        if type(op) is ops.Close:
            if op.response in opened:
                opened.remove(op.response)
            await _close(op.response)
        elif type(op) is ops.Blocking:
            return await asyncio.to_thread(op.function, *op.args)
        elif type(op) is ops.Sleep:
            await asyncio.sleep(op.seconds)
        elif type(op) is ops.Spawn:
            spawned = _Spawned(self._tasks)
            fan = self._fan_slots if op.fan_out else None
            task = asyncio.get_running_loop().create_task(self._limited(op.program, spawned, fan))
            spawned.task = task
            self._tasks.add(task)
            task.add_done_callback(spawned.on_done)
            return spawned
        elif type(op) is ops.Join:
            if len(op.handles) == 1:
                # The common case (one fetch): no gather, no shield.
                return [await op.handles[0].wait()]
            gathered = asyncio.gather(*(handle.task for handle in op.handles))
            # If the waiter is cancelled nobody awaits the gather: its error must not be
            # reported as "never retrieved".
            gathered.add_done_callback(_consume)
            return await asyncio.shield(gathered)
        elif type(op) is ops.Advance:
            try:
                stepper = await self._drive(
                    Stepper(op.program, pause=True, clock=self.clock),
                    self._responses.of_suspended(op.program),
                )
            except BaseException:
                await _close_all(self._responses.release_suspended(op.program))
                raise
            if not stepper.paused:
                await _close_all(self._responses.release_suspended(op.program))
            return stepper.paused
        elif type(op) is ops.Abandon:
            op.program.close()
            await _close_all(self._responses.release_suspended(op.program))
        else:
            raise TypeError(f"unknown operation {op!r}")
        return None

    async def _limited(
        self, program: ops.Program[Any], spawned: _Spawned, fan: asyncio.Semaphore | None
    ) -> Any:
        try:
            if fan is None:
                async with self._slots:
                    result = await self.run(program, spawned=True)
            else:
                async with fan, self._slots:
                    result = await self.run(program, spawned=True)
        except BaseException as exc:
            spawned.settle(None, exc)
            raise
        spawned.settle(result, None)
        return result

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await _close_all(self._responses.release_all())
        await self.transport.aclose()


class _Spawned:
    """The handle of a spawned program: its task, and the futures of the readers joining it.

    Each reader waits on a future of its own, so cancelling one reader cancels only its
    future, never the task others wait on. The task settles the futures itself as it ends,
    which wakes the readers one loop iteration sooner than a done callback (asyncio.shield)."""

    __slots__ = ("task", "_tasks", "_result", "_error", "_settled", "_waiters")

    task: asyncio.Task[Any]

    def __init__(self, tasks: set[asyncio.Task[Any]]) -> None:
        self._tasks = tasks  # the runner's running tasks, which this one leaves when done
        self._result: Any = None
        self._error: BaseException | None = None
        self._settled = False
        self._waiters: list[asyncio.Future[Any]] = []

    def on_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        _consume(task)
        # A task cancelled before it started (aclose) never ran _limited to settle.
        if not self._settled:
            self.settle(None, asyncio.CancelledError() if task.cancelled() else task.exception())

    def settle(self, result: Any, error: BaseException | None) -> None:
        self._result, self._error, self._settled = result, error, True
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if waiter.done():  # its reader was cancelled
                continue
            if error is None:
                waiter.set_result(result)
            elif isinstance(error, asyncio.CancelledError):
                waiter.cancel()
            else:
                waiter.set_exception(error)

    async def wait(self) -> Any:
        if not self._settled:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            return await waiter
        if self._error is not None:
            raise self._error
        return self._result


class _Deadline:
    """The deadline of one response's body waits, with a single timer moved lazily: a body of
    1-byte chunks arms it once per chunk, which must cost little more than a clock reading, so
    a timer that finds the deadline moved later just sets itself again for then."""

    __slots__ = ("_loop", "_timer", "_timer_at", "_at", "_task", "_expired")

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._at: float | None = None
        self._task: asyncio.Task[Any] | None = None
        self._expired = False

    def arm(self, seconds: float) -> None:
        at = self._loop.time() + seconds
        self._at = at
        self._task = asyncio.current_task()
        if self._timer is None or self._timer_at > at:
            self._set_timer(at)

    def disarm(self) -> bool:
        """Stop watching; True if the deadline passed (this task was cancelled for it)."""
        self._at = None
        if not self._expired:
            return False
        self._expired = False
        uncancel = getattr(self._task, "uncancel", None)
        # Cancelled by someone else as well: that cancellation stands.
        return uncancel is None or uncancel() == 0

    def close(self) -> None:
        """The response is closed: drop the timer."""
        self._at = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _set_timer(self, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = self._loop.call_at(at, self._fire)

    def _fire(self) -> None:
        self._timer = None
        at, task = self._at, self._task
        if at is None or task is None:
            return  # not waiting: the next arm sets a timer again
        if self._loop.time() < at:
            self._set_timer(at)
            return
        self._expired = True
        task.cancel()


async def _within(awaitable: Any, seconds: float, overrun: Any) -> Any:
    """Await ``awaitable`` for at most ``seconds``, then raise ``overrun()``: the one deadline
    for every async client (asyncio.timeout's rule, written out because Python 3.10 lacks it).
    A cancellation from anyone else stays a cancellation."""
    task = asyncio.current_task()
    assert task is not None
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        task.cancel()

    timer = asyncio.get_running_loop().call_later(seconds, expire)
    try:
        return await awaitable
    except asyncio.CancelledError as exc:
        uncancel = getattr(task, "uncancel", None)
        if not expired or (uncancel is not None and uncancel() > 0):
            raise
        raise overrun() from exc
    finally:
        timer.cancel()


def _consume(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


async def _close(live: Live) -> None:
    if live.guard is not None:
        live.guard.close()
    await live.response.aclose()


async def _close_all(opened: list[Live]) -> None:
    while opened:
        live = opened.pop()
        try:
            await _close(live)
        except Exception:  # closing is best effort: the connection is dropped either way
            pass


# How many forks this process is away from the one that started: a runner made before a fork
# refuses to run after it.
_forks = 0


def _after_fork_in_child() -> None:
    global _forks
    _forks += 1


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)
