"""Runs engine programs with await: one async transport, tasks bounded by a semaphore."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from rangeio._async.transports import AsyncRawResponse, AsyncTransport
from rangeio._engine.ops import (
    DELIVERED,
    Abandon,
    Advance,
    Close,
    Join,
    NextChunk,
    Op,
    Program,
    Send,
    Sleep,
    Spawn,
)

T = TypeVar("T")


class _Live:
    """A response in flight: what the program sees (status, headers) plus its chunk iterator."""

    __slots__ = ("response", "status", "headers", "chunks")

    def __init__(self, response: AsyncRawResponse) -> None:
        self.response = response
        self.status = response.status
        self.headers = response.headers
        self.chunks: AsyncIterator[bytes] = response.iter_raw()


class AsyncRunner:
    """Executes the operations programs yield. Spawned programs become tasks that hold one of
    ``max_concurrency`` slots while they run; a waiter that is cancelled never cancels them,
    because other readers may be waiting on the same fetch."""

    def __init__(self, transport: AsyncTransport, max_concurrency: int) -> None:
        self.transport = transport
        self._slots = asyncio.Semaphore(max_concurrency)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._suspended: dict[int, list[_Live]] = {}

    async def run(self, program: Program[T]) -> T:
        opened: list[_Live] = []
        try:
            _, value = await self._step(program, opened, pause=False)
            return value  # type: ignore[no-any-return]
        finally:
            await _close_all(opened)

    async def _step(
        self, program: Program[Any], opened: list[_Live], *, pause: bool
    ) -> tuple[bool, Any]:
        """Run ``program`` until it ends -> (False, value), or with ``pause`` until it yields
        DELIVERED -> (True, None). An operation's error is thrown back into the program."""
        value: Any = None
        error: Exception | None = None
        while True:
            try:
                op = program.throw(error) if error is not None else program.send(value)
            except StopIteration as stop:
                return False, stop.value
            value, error = None, None
            if op is DELIVERED:
                if pause:
                    return True, None
                continue
            try:
                value = await self._do(op, opened)
            except Exception as exc:
                error = exc

    async def _do(self, op: Op, opened: list[_Live]) -> Any:
        if isinstance(op, NextChunk):
            return await anext(op.response.chunks, None)
        if isinstance(op, Send):
            live = _Live(await self.transport.send(op.request, op.timeout))
            opened.append(live)
            return live
        if isinstance(op, Close):
            if op.response in opened:
                opened.remove(op.response)
            await op.response.response.aclose()
            return None
        if isinstance(op, Sleep):
            await asyncio.sleep(op.seconds)
            return None
        if isinstance(op, Spawn):
            task = asyncio.ensure_future(self._limited(op.program))
            self._tasks.add(task)
            task.add_done_callback(self._forget)
            return task
        if isinstance(op, Join):
            gathered = asyncio.gather(*op.handles)
            # If nobody is left to await the gather (the waiter was cancelled), its error
            # must not be reported as "never retrieved".
            gathered.add_done_callback(_consume)
            return await asyncio.shield(gathered)
        if isinstance(op, Advance):
            state = self._suspended.setdefault(id(op.program), [])
            try:
                paused, _ = await self._step(op.program, state, pause=True)
            except BaseException:
                await _close_all(self._suspended.pop(id(op.program), []))
                raise
            if not paused:
                await _close_all(self._suspended.pop(id(op.program), []))
            return paused
        if isinstance(op, Abandon):
            op.program.close()
            await _close_all(self._suspended.pop(id(op.program), []))
            return None
        raise TypeError(f"unknown operation {op!r}")

    async def _limited(self, program: Program[Any]) -> Any:
        async with self._slots:
            return await self.run(program)

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        _consume(task)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for state in self._suspended.values():
            await _close_all(state)
        self._suspended.clear()
        await self.transport.aclose()


def _consume(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


async def _close_all(opened: list[_Live]) -> None:
    while opened:
        live = opened.pop()
        try:
            await live.response.aclose()
        except Exception:  # closing is best effort: the connection is dropped either way
            pass
