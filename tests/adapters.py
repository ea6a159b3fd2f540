"""Every client adapter behind one opener, so one suite runs against all of them.

Async files are driven through a small blocking facade on a private event loop; the facade only
forwards calls, so what is tested is AsyncHttpFile itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import rangeio
import rangeio.aio

SYNC_ADAPTERS = ["urllib3", "requests", "httpx", "niquests"]
ASYNC_ADAPTERS = ["aiohttp", "httpx-async", "niquests-async"]
ALL_ADAPTERS = SYNC_ADAPTERS + ASYNC_ADAPTERS


def sync_client(name: str) -> tuple[Any, Callable[[], None]]:
    """A client for a sync adapter (None: rangeio's own urllib3 pool) and how to close it."""
    if name == "urllib3":
        return None, lambda: None
    if name == "requests":
        import requests

        session = requests.Session()
        return session, session.close
    if name == "httpx":
        import httpx

        client = httpx.Client()
        return client, client.close
    if name == "niquests":
        import niquests

        nsession = niquests.Session()
        return nsession, nsession.close
    raise ValueError(name)


class AsyncFacade:
    """A blocking view of an AsyncHttpFile (for tests shared with the sync file)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, file: rangeio.aio.AsyncHttpFile) -> None:
        self._loop = loop
        self.file = file

    def _run(self, coro: Any) -> Any:
        return self._loop.run_until_complete(coro)

    def read(self, n: int = -1) -> bytes:
        return self._run(self.file.read(n))  # type: ignore[no-any-return]

    def readinto(self, buffer: Any) -> int:
        return self._run(self.file.readinto(buffer))  # type: ignore[no-any-return]

    def read_ranges(self, ranges: list[tuple[int, int]]) -> list[bytes]:
        return self._run(self.file.read_ranges(ranges))  # type: ignore[no-any-return]

    def prefetch(self, ranges: list[tuple[int, int]]) -> int:
        return self._run(self.file.prefetch(ranges))  # type: ignore[no-any-return]

    def open(self) -> AsyncFacade:
        self._run(self.file.open())
        return self

    @property
    def etag(self) -> str | None:
        return self.file.etag

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.file.seek(offset, whence)

    def tell(self) -> int:
        return self.file.tell()

    def clone(self) -> AsyncFacade:
        return AsyncFacade(self._loop, self.file.clone())

    def close(self) -> None:
        self._run(self.file.close())

    @property
    def closed(self) -> bool:
        return self.file.closed

    @property
    def size(self) -> int:
        return self.file.size

    @property
    def stats(self) -> rangeio.Stats:
        return self.file.stats

    @property
    def _remote(self) -> Any:
        return self.file._remote

    def __enter__(self) -> AsyncFacade:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Opener:
    """``opener(url, **options)`` opens a file through one adapter; ``opener.kind`` names it."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.is_async = kind in ASYNC_ADAPTERS
        self._closers: list[Callable[[], None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self.client: Any = None
        if self.is_async:
            self._loop = asyncio.new_event_loop()
            self.client = self._loop.run_until_complete(self._make_async_client())
        else:
            self.client, closer = sync_client(kind)
            self._closers.append(closer)

    async def _make_async_client(self) -> Any:
        if self.kind == "aiohttp":
            return None  # rangeio's own aiohttp session: the default async client
        if self.kind == "httpx-async":
            import httpx

            client = httpx.AsyncClient()
            self._closers.append(lambda: self._run(client.aclose()))
            return client
        import niquests

        session = niquests.AsyncSession()
        self._closers.append(lambda: self._run(session.close()))
        return session

    def _run(self, coro: Any) -> Any:
        assert self._loop is not None
        return self._loop.run_until_complete(coro)

    def __call__(self, url: str, **options: Any) -> Any:
        if not self.is_async:
            return rangeio.open(url, client=self.client, **options)
        assert self._loop is not None
        file = rangeio.aio.AsyncHttpFile(url, client=self.client, **options)
        self._run(file.start())  # as `async with` does: with lazy=True, no request
        return AsyncFacade(self._loop, file)

    def download(self, url: str | list[str], dest: Any, **options: Any) -> Any:
        """rangeio.download (or rangeio.aio.download) through this adapter."""
        if not self.is_async:
            return rangeio.download(url, dest, client=self.client, **options)
        return self._run(rangeio.aio.download(url, dest, client=self.client, **options))

    def haul(self, url: str, dest: Any, **options: Any) -> Any:
        """rangeio.haul (or rangeio.aio.haul) through this adapter: one request."""
        if not self.is_async:
            return rangeio.haul(url, dest, client=self.client, **options)
        return self._run(rangeio.aio.haul(url, dest, client=self.client, **options))

    def close(self) -> None:
        for closer in reversed(self._closers):
            closer()
        if self._loop is not None:
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()


def opener_for(kind: str) -> Iterator[Opener]:
    opener = Opener(kind)
    try:
        yield opener
    finally:
        opener.close()
