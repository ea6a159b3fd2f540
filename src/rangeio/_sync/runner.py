"""Runs engine programs by blocking: one transport, a bounded thread pool for concurrent fetches."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

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
from rangeio._transport import RawResponse, Transport

T = TypeVar("T")


class _Live:
    """A response in flight: what the program sees (status, headers) plus its chunk iterator."""

    __slots__ = ("response", "status", "headers", "chunks")

    def __init__(self, response: RawResponse) -> None:
        self.response = response
        self.status = response.status
        self.headers = response.headers
        self.chunks: Iterator[bytes] = response.iter_raw()


class SyncRunner:
    """Executes the operations programs yield. Spawned programs run on a pool of
    ``max_concurrency`` threads, which is what bounds concurrent requests per file."""

    def __init__(self, transport: Transport, max_concurrency: int) -> None:
        self.transport = transport
        self._max_concurrency = max_concurrency
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        # Responses still open in programs paused by Advance, by program.
        self._suspended: dict[int, list[_Live]] = {}

    def run(self, program: Program[T]) -> T:
        opened: list[_Live] = []
        try:
            _, value = self._step(program, opened, pause=False)
            return value  # type: ignore[no-any-return]
        finally:
            _close_all(opened)

    def _step(self, program: Program[Any], opened: list[_Live], *, pause: bool) -> tuple[bool, Any]:
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
                value = self._do(op, opened)
            except Exception as exc:
                error = exc

    def _do(self, op: Op, opened: list[_Live]) -> Any:
        if isinstance(op, NextChunk):
            return next(op.response.chunks, None)
        if isinstance(op, Send):
            live = _Live(self.transport.send(op.request, op.timeout))
            opened.append(live)
            return live
        if isinstance(op, Close):
            if op.response in opened:
                opened.remove(op.response)
            op.response.response.close()
            return None
        if isinstance(op, Sleep):
            time.sleep(op.seconds)
            return None
        if isinstance(op, Spawn):
            return self._executor().submit(self.run, op.program)
        if isinstance(op, Join):
            handles: list[Future[Any]] = list(op.handles)
            return [h.result() for h in handles]
        if isinstance(op, Advance):
            state = self._suspended.setdefault(id(op.program), [])
            try:
                paused, _ = self._step(op.program, state, pause=True)
            except BaseException:
                _close_all(self._suspended.pop(id(op.program), []))
                raise
            if not paused:
                _close_all(self._suspended.pop(id(op.program), []))
            return paused
        if isinstance(op, Abandon):
            op.program.close()
            _close_all(self._suspended.pop(id(op.program), []))
            return None
        raise TypeError(f"unknown operation {op!r}")

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    self._max_concurrency, thread_name_prefix="rangeio-fetch"
                )
            return self._pool

    def close(self) -> None:
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        for state in self._suspended.values():
            _close_all(state)
        self._suspended.clear()
        self.transport.close()


def _close_all(opened: list[_Live]) -> None:
    while opened:
        live = opened.pop()
        try:
            live.response.close()
        except Exception:  # closing is best effort: the connection is dropped either way
            pass
