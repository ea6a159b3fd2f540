"""rangeio.aio.fetch_many: run a planner over many URLs with bounded concurrency, resumably."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, MutableSet
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from rangeio._async.file import AsyncHttpFile
from rangeio._async.transports import Borrowed, make_async_transport
from rangeio._core.options import FileOptions

T = TypeVar("T")


@dataclass(frozen=True)
class FetchResult(Generic[T]):
    """One URL's outcome: ``value`` from the planner, or the ``error`` it raised."""

    url: str
    value: T | None = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class _Completed:
    """URLs already done: a set the caller passes, or a text file of one URL per line that
    grows as URLs finish (so a rerun after a crash skips them)."""

    def __init__(self, where: MutableSet[str] | str | os.PathLike[str] | None) -> None:
        self._set: MutableSet[str] | None = None
        self._path: Path | None = None
        self._seen: set[str] = set()
        if where is None:
            return
        if isinstance(where, (str, os.PathLike)):
            self._path = Path(where)
            if self._path.exists():
                self._seen = {line for line in self._path.read_text().splitlines() if line}
        else:
            self._set = where

    def __contains__(self, url: str) -> bool:
        return url in self._seen or (self._set is not None and url in self._set)

    async def add(self, url: str) -> None:
        self._seen.add(url)
        if self._set is not None:
            self._set.add(url)
        if self._path is not None:
            await asyncio.to_thread(_append_line, self._path, url)


def _append_line(path: Path, line: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


async def fetch_many(
    urls: Iterable[str],
    plan: Callable[[AsyncHttpFile], Awaitable[T]],
    *,
    concurrency: int = 20,
    on_result: Callable[[FetchResult[T]], Any] | None = None,
    completed: MutableSet[str] | str | os.PathLike[str] | None = None,
    client: Any = None,
    **options: Any,
) -> AsyncIterator[FetchResult[T]]:
    """Open each URL as an AsyncHttpFile and ``await plan(file)``; yield results as they finish
    (and pass each to ``on_result``). At most ``concurrency`` URLs are in flight. URLs in
    ``completed`` are skipped, and each success is added to it.

    It runs inside the caller's event loop and touches neither signal handlers nor logging
    configuration: it is a library function, not an application.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    done = _Completed(completed)
    pending = [url for url in urls if url not in done]
    results: asyncio.Queue[FetchResult[T] | None] = asyncio.Queue()
    slots = asyncio.Semaphore(concurrency)
    # One transport for all URLs (connection reuse); each file borrows it, and it is closed
    # once, at the end, if we made it.
    # TLS is the shared transport's: checked with the other options, then applied there once.
    verify = FileOptions.from_kwargs(**options).verify
    options.pop("verify", None)
    transport = make_async_transport(client, verify)
    shared_client = Borrowed(transport)

    async def one(url: str) -> None:
        async with slots:
            try:
                async with AsyncHttpFile(url, client=shared_client, **options) as file:
                    value = await plan(file)
            except Exception as exc:  # reported per URL; the batch goes on
                result: FetchResult[T] = FetchResult(url, error=exc)
            else:
                result = FetchResult(url, value)
                await done.add(url)
        await results.put(result)

    tasks = [asyncio.ensure_future(one(url)) for url in pending]
    try:
        for _ in range(len(tasks)):
            item = await results.get()
            assert item is not None
            if on_result is not None:
                on_result(item)
            yield item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if client is None:
            await transport.aclose()
