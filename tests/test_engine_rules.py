"""The rules of the ops (`_engine/ops.py`), checked by both runners with scripted programs: a
spawned program never Joins (in the sync runner it could deadlock a full pool), and programs
get the time from the runner's clock (Now), never from ``time``."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from rangeio._async.runner import AsyncRunner
from rangeio._engine import ops
from rangeio._engine.ops import EngineMisuse, Program
from rangeio._sync.runner import SyncRunner


class _NoTransport:
    """The programs here never send."""

    owned = True

    def close(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


def _leaf() -> Program[str]:
    return "leaf"
    yield  # a generator


def _joins_from_a_spawned_program() -> Program[Any]:
    """The outer program spawns a child that itself spawns and joins: with one pool thread, the
    child holds it while the grandchild waits for it."""

    def child() -> Program[list[Any]]:
        handle = yield from ops.spawn(_leaf())
        return (yield from ops.join([handle]))

    handle = yield from ops.spawn(child())
    return (yield from ops.join([handle]))


def test_sync_runner_refuses_a_join_from_a_spawned_program() -> None:
    runner = SyncRunner(_NoTransport(), max_concurrency=1)  # type: ignore[arg-type]
    outcome: list[BaseException | object] = []

    def run() -> None:
        try:
            outcome.append(runner.run(_joins_from_a_spawned_program()))
        except BaseException as exc:
            outcome.append(exc)

    # Before the check this deadlocked: a thread, so that the test fails instead of hanging.
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(10)
    runner.close()
    assert not thread.is_alive(), "deadlocked: a spawned program's Join waited for the pool"
    assert len(outcome) == 1 and isinstance(outcome[0], EngineMisuse)
    assert "spawned program yielded Join" in str(outcome[0])


def test_async_runner_refuses_it_too() -> None:
    async def main() -> None:
        runner = AsyncRunner(_NoTransport(), max_concurrency=1)  # type: ignore[arg-type]
        try:
            with pytest.raises(EngineMisuse):
                await asyncio.wait_for(runner.run(_joins_from_a_spawned_program()), 10)
        finally:
            await runner.aclose()

    asyncio.run(main())


def test_the_program_handed_to_run_may_join() -> None:
    def parent() -> Program[list[Any]]:
        handles = []
        for _ in range(3):
            handles.append((yield from ops.spawn(_leaf())))
        return (yield from ops.join(handles))

    runner = SyncRunner(_NoTransport(), max_concurrency=1)  # type: ignore[arg-type]
    try:
        assert runner.run(parent()) == ["leaf"] * 3
    finally:
        runner.close()


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now


def _times() -> Program[list[float]]:
    """Now, in the program and in a program it spawns."""

    def child() -> Program[float]:
        return (yield from ops.now())

    first = yield from ops.now()
    handle = yield from ops.spawn(child())
    (second,) = yield from ops.join([handle])
    return [first, second]


def test_programs_read_the_runners_clock() -> None:
    runner = SyncRunner(_NoTransport(), max_concurrency=2, clock=_Clock(12.5))  # type: ignore[arg-type]
    try:
        assert runner.run(_times()) == [12.5, 12.5]
        runner.clock = _Clock(99.0)
        assert runner.run(_times()) == [99.0, 99.0]
    finally:
        runner.close()

    async def main() -> list[float]:
        arunner = AsyncRunner(_NoTransport(), max_concurrency=2, clock=_Clock(7.0))  # type: ignore[arg-type]
        try:
            return await arunner.run(_times())
        finally:
            await arunner.aclose()

    assert asyncio.run(main()) == [7.0, 7.0]


def test_no_program_module_reads_time() -> None:
    """Only the runners' shared clock (`_engine/runner.py` SystemClock) imports ``time``: a
    program that read it would escape the clock a test hands the runner."""
    import ast
    from pathlib import Path

    import rangeio._engine

    offenders = []
    for path in sorted(Path(rangeio._engine.__file__).parent.glob("*.py")):
        if path.name == "runner.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(name == "time" or name.startswith("time.") for name in names):
                offenders.append(path.name)
    assert offenders == []


def _thread_name() -> Program[str]:
    """The name of the thread the program runs in (asked through a Blocking op)."""
    return (yield from ops.blocking(lambda: threading.current_thread().name))


def test_a_joined_next_program_runs_in_the_joining_thread() -> None:
    """Spawn.joined_next: the Join that follows runs the program in the joiner's thread (no
    thread hop); with another operation first, it starts on the pool as any spawn."""

    def joined_at_once() -> Program[list[Any]]:
        handle = yield from ops.spawn(_thread_name(), joined_next=True)
        return (yield from ops.join([handle]))

    def something_else_first() -> Program[list[Any]]:
        handle = yield from ops.spawn(_thread_name(), joined_next=True)
        yield from ops.blocking(lambda: None)
        return (yield from ops.join([handle]))

    def never_joined() -> Program[Any]:
        return (yield from ops.spawn(_thread_name(), joined_next=True))

    runner = SyncRunner(_NoTransport(), max_concurrency=2)  # type: ignore[arg-type]
    try:
        here = threading.current_thread().name
        assert runner.run(joined_at_once()) == [here]
        (elsewhere,) = runner.run(something_else_first())
        assert elsewhere != here and elsewhere.startswith("rangeio-fetch")
        # A spawner that ends without joining: the program still runs, on the pool.
        assert runner.run(never_joined()).result(10).startswith("rangeio-fetch")
    finally:
        runner.close()


def test_an_interruption_of_the_joiner_leaves_the_other_readers_none() -> None:
    """Ctrl-C in the thread that runs a shared joined_next program stops it there and reaches
    that thread; another reader joining the same handle gets None (its bytes did not come:
    it asks again) instead of the interruption, and never hangs."""
    shared: list[Any] = []

    def interrupted() -> Program[None]:
        yield from ops.blocking(lambda: None)
        raise KeyboardInterrupt

    def first_reader() -> Program[list[Any]]:
        handle = yield from ops.spawn(interrupted(), joined_next=True)
        shared.append(handle)
        return (yield from ops.join([handle]))

    def second_reader() -> Program[list[Any]]:
        return (yield from ops.join(shared))

    runner = SyncRunner(_NoTransport(), max_concurrency=2)  # type: ignore[arg-type]
    try:
        with pytest.raises(KeyboardInterrupt):
            runner.run(first_reader())
        outcome: list[Any] = []
        thread = threading.Thread(target=lambda: outcome.append(runner.run(second_reader())))
        thread.start()
        thread.join(10)
        assert not thread.is_alive(), "the second reader hung on the interrupted program"
        assert outcome == [[None]]
    finally:
        runner.close()
