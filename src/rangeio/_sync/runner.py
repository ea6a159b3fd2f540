"""Runs engine programs by blocking: one transport, a bounded thread pool for concurrent fetches."""

from __future__ import annotations

import threading
import time
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from typing import Any, TypeVar

from rangeio._engine import ops
from rangeio._engine.fork import ForkHooks
from rangeio._engine.ops import Clock
from rangeio._engine.runner import SYSTEM_CLOCK, Live, Responses, Stepper
from rangeio._sync.handoff import HELPERS, Abandoned
from rangeio._transport import Transport
from rangeio._transport.base import cuts_head
from rangeio._transport.watchdog import WATCHDOG, Guard, sending
from rangeio.errors import ForkError

T = TypeVar("T")


class SyncRunner:
    """Executes the operations programs yield. Spawned programs run on a pool of
    ``max_concurrency`` threads, which is what bounds concurrent requests per file; fan-out
    spawns (``Spawn.fan_out``) run on a pool of ``fan_out`` threads and take a slot of the same
    bound, so they never have more than ``fan_out`` of it. A ``Spawn.joined_next`` program runs
    in the thread that joins it, under a slot too (no hop to a pool thread and back: most of a
    request's CPU on a kept-alive connection). ``clock`` answers the programs' Now.

    A spawned program holds its pool thread until it ends, so it must never Join (a full pool
    would deadlock): the Stepper throws EngineMisuse into one that tries (`_engine/ops.py`)."""

    def __init__(
        self,
        transport: Transport,
        max_concurrency: int,
        fan_out: int | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.transport = transport
        self.clock = clock
        self._max_concurrency = max_concurrency
        self._fan_out = fan_out if fan_out is not None and fan_out < max_concurrency else None
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._fan_pool: ThreadPoolExecutor | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._responses = Responses()
        # After a fork: the parent's paused programs (streams), whose responses are the parent's
        # connections, and why sending is refused (a borrowed client), if it is.
        self._parent_programs: set[int] = set()
        self._fork_refusal: str | None = None
        _RUNNERS.add(self)

    def _after_fork_in_child(self) -> None:
        # The pool's threads and the lock's holder may be parent threads, absent here.
        self._pool = None
        self._fan_pool = None
        self._slots = threading.BoundedSemaphore(self._max_concurrency)
        self._pool_lock = threading.Lock()
        # Their responses are dropped, not closed: closing could disturb the parent's connections.
        self._parent_programs = self._responses.program_ids()
        self._responses = Responses()
        reset = getattr(self.transport, "after_fork_in_child", None)
        if getattr(self.transport, "owned", False) and reset is not None:
            reset()  # a fresh pool of rangeio's own: no socket of the parent is ever reused
        else:
            self._fork_refusal = (
                "this file was opened before os.fork() with a borrowed client, whose "
                "connections belong to the parent process: open the file again in the child"
            )

    def _is_parents(self, program: ops.Program[Any]) -> bool:
        """Whether ``program`` was paused in the parent before a fork (forgets it: once)."""
        if id(program) not in self._parent_programs:
            return False
        self._parent_programs.discard(id(program))
        return True

    def run(self, program: ops.Program[T], *, spawned: bool = False) -> T:
        opened: list[Live] = []
        stepper = Stepper(program, pause=False, clock=self.clock, spawned=spawned)
        try:
            result: T = self._drive(stepper, opened).result
            return result
        finally:
            _close_all(opened)

    def _drive(self, stepper: Stepper, opened: list[Live]) -> Stepper:
        deferred: _Deferred | None = None  # a Spawn.joined_next program, not started yet
        try:
            while (op := stepper.next_op()) is not None:
                try:
                    if deferred is not None:
                        waiting, deferred = deferred, None
                        if type(op) is ops.Join and any(h is waiting for h in op.handles):
                            self._run_here(waiting)
                        else:
                            self._start(waiting)
                    if type(op) is ops.Spawn and op.joined_next and not op.fan_out:
                        deferred = _Deferred(op.program)
                        stepper.succeeded(deferred)
                        continue
                    stepper.succeeded(self._do(op, opened))
                except BaseException as exc:  # the program's own cleanup runs, then it re-raises
                    stepper.failed(exc)
        finally:
            if deferred is not None:  # the spawner ended without joining it: run it all the same
                self._start(deferred)
        return stepper

    def _run_here(self, deferred: _Deferred) -> None:
        """Run a joined_next program in this (the joining) thread, under a slot of the same
        bound as the pool's, and settle its handle for every reader joining it."""
        try:
            self._slots.acquire()
        except BaseException:
            self._start(deferred)  # not begun: it must still run, to release what it claimed
            raise
        try:
            deferred.settle(self.run(deferred.program, spawned=True), None)
        except Exception as exc:
            deferred.settle(None, exc)
        except BaseException:
            # An interruption of this thread (Ctrl-C) is its own, not the other readers': they
            # get None, what a fetch that brought them nothing answers, and ask again.
            deferred.settle(None, None)
            raise
        finally:
            self._slots.release()

    def _start(self, deferred: _Deferred) -> None:
        """Hand a joined_next program to the pool after all (the spawner did something else)."""
        try:
            queued = self._executor().submit(self._run_pooled, deferred)
        except RuntimeError:  # no pool takes work while the interpreter shuts down
            self._run_here(deferred)  # it must run all the same: it releases what it claimed
            return
        # Closing the file cancels what is still queued: its readers get CancelledError, as
        # for any spawn, instead of waiting for a program that will never run.
        queued.add_done_callback(lambda done: _settle_cancelled(done, deferred))

    def _run_pooled(self, deferred: _Deferred) -> None:
        with self._slots:
            try:
                result = self.run(deferred.program, spawned=True)
            except BaseException as exc:  # as a pool's own future would hold it
                deferred.settle(None, exc)
            else:
                deferred.settle(result, None)

    def _do(self, op: ops.Op, opened: list[Live]) -> Any:
        if isinstance(op, ops.NextChunk):
            if op.within is None:
                if op.into is None:
                    return next(op.response.chunks, None)
                return op.response.next_chunk(op.into)
            guard: Guard = op.response.guard
            guard.arm(op.within)
            try:
                if op.into is None:
                    chunk = next(op.response.chunks, None)
                else:
                    chunk = op.response.next_chunk(op.into)
            except BaseException as exc:
                if guard.disarm():
                    raise op.overrun() from exc
                raise
            if guard.disarm():
                raise op.overrun()
            return chunk
        if isinstance(op, ops.Send):
            if self._fork_refusal is not None:
                raise ForkError(self._fork_refusal)
            return self._send(op, opened)
        if isinstance(op, ops.Close):
            if op.response in opened:
                opened.remove(op.response)
            _close(op.response)
        elif isinstance(op, ops.Blocking):
            return op.function(*op.args)
        elif isinstance(op, ops.Sleep):
            time.sleep(op.seconds)  # the one use of time here: waiting, never reading it
        elif isinstance(op, ops.Spawn):
            # Every pool program takes a slot, as joined_next programs run in the joiner do.
            if op.fan_out and self._fan_out is not None:
                return self._fan_executor().submit(self._run_in_slot, op.program)
            return self._executor().submit(self._run_in_slot, op.program)
        elif isinstance(op, ops.Join):
            handles: list[Future[Any] | _Deferred] = list(op.handles)
            return [h.result() for h in handles]
        elif isinstance(op, ops.Advance):
            if self._is_parents(op.program):
                # Its body arrives on the parent's socket: end it where it stands (what it
                # delivered before the fork is kept; the reader asks again for the rest).
                return False
            try:
                stepper = self._drive(
                    Stepper(op.program, pause=True, clock=self.clock),
                    self._responses.of_suspended(op.program),
                )
            except BaseException:
                _close_all(self._responses.release_suspended(op.program))
                raise
            if not stepper.paused:
                _close_all(self._responses.release_suspended(op.program))
            return stepper.paused
        elif isinstance(op, ops.Abandon):
            self._is_parents(op.program)
            op.program.close()
            _close_all(self._responses.release_suspended(op.program))
        else:
            raise TypeError(f"unknown operation {op!r}")
        return None

    def _send(self, op: ops.Send, opened: list[Live]) -> Live:
        """Send under the head timeout: the watchdog cuts the connection if the head has not
        arrived in time (a client that hands its socket over while sending attaches it)."""
        guard = WATCHDOG.guard()
        if op.within is not None:
            guard.arm(op.within)
        try:
            response = self._head(op, guard)
        except Abandoned:  # the helper closes the exchange and releases the guard
            raise op.overrun() from None
        except BaseException as exc:
            fired = guard.disarm()
            guard.release()
            if fired:
                raise op.overrun() from exc
            raise
        live = Live(response, response.iter_raw())
        live.guard = guard
        guard.attach(getattr(response, "shutdown", None))
        if guard.disarm():  # the head arrived just as the deadline passed: it is cut already
            _close(live)
            raise op.overrun()
        opened.append(live)
        return live

    def _head(self, op: ops.Send, guard: Guard) -> Any:
        """The transport's response, its head arrived. A transport whose head the watchdog
        cannot cut sends on a helper thread instead, abandoned at the head deadline
        (`_sync/handoff.py`): one mechanism, chosen by the transport's ``cuts_head``."""
        if op.within is not None and not cuts_head(self.transport):
            return HELPERS.send(self.transport, op.request, op.timeout, guard, op.within)
        sending(guard)
        try:
            return self.transport.send(op.request, op.timeout)
        finally:
            sending(None)

    def _run_in_slot(self, program: ops.Program[T]) -> T:
        # Taken in the worker thread, never by Spawn: Spawn must not block.
        with self._slots:
            return self.run(program, spawned=True)

    def _fan_executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._fan_pool is None:
                assert self._fan_out is not None
                self._fan_pool = ThreadPoolExecutor(self._fan_out, thread_name_prefix="rangeio-fan")
            return self._fan_pool

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    self._max_concurrency, thread_name_prefix="rangeio-fetch"
                )
            return self._pool

    def close(self) -> None:
        _RUNNERS.discard(self)
        with self._pool_lock:
            pool, self._pool = self._pool, None
            fan_pool, self._fan_pool = self._fan_pool, None
        for each in (pool, fan_pool):
            if each is not None:
                each.shutdown(wait=False, cancel_futures=True)
        _close_all(self._responses.release_all())
        self.transport.close()


_RUNNERS = ForkHooks(after_in_child="_after_fork_in_child")


def _settle_cancelled(queued: Future[Any], deferred: _Deferred) -> None:
    if queued.cancelled():
        deferred.settle(None, CancelledError())


class _Deferred:
    """A joined_next program, and its handle: settled once by the thread that runs it, waited
    for by any number of readers (``result()``, as a Future's; a plain lock instead of a
    Future's condition, which costs more than the rest of the handle's work)."""

    __slots__ = ("program", "_pending", "_value", "_error")

    def __init__(self, program: ops.Program[Any]) -> None:
        self.program = program
        self._pending = threading.Lock()  # held until settled
        self._pending.acquire()
        self._value: Any = None
        self._error: BaseException | None = None

    def settle(self, value: Any, error: BaseException | None) -> None:
        self._value, self._error = value, error
        self._pending.release()

    def result(self, timeout: float | None = None) -> Any:
        # Each waiter takes the lock and gives it back at once, so the next one passes too.
        if not self._pending.acquire(timeout=-1 if timeout is None else timeout):
            raise TimeoutError("the spawned program has not ended")
        self._pending.release()
        if self._error is not None:
            raise self._error
        return self._value


def _close(live: Live) -> None:
    if live.guard is not None:
        live.guard.release()
    live.response.close()


def _close_all(opened: list[Live]) -> None:
    while opened:
        live = opened.pop()
        try:
            _close(live)
        except Exception:  # closing is best effort: the connection is dropped either way
            pass
