"""AsyncHttpFile: the async random-access file, on the same engine as HttpFile."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from types import TracebackType
from typing import Any, TypeVar

from rangeio._async.runner import AsyncRunner
from rangeio._async.transports import make_async_transport
from rangeio._clients import client_for
from rangeio._core.options import FileOptions, concurrency_limits
from rangeio._core.stats import Stats
from rangeio._core.travel import Description, travelling_options
from rangeio._engine.faces import FileFacts
from rangeio._engine.ops import Program
from rangeio._engine.remote import Cursor, RemoteFile, resolve_seek

T = TypeVar("T")


class AsyncHttpFile(FileFacts):
    """A read-only, seekable async file over HTTP byte ranges.

    Use ``async with AsyncHttpFile(url) as f`` or ``await f.open()`` / ``await f.close()``.
    ``seek`` and ``tell`` do no I/O. ``clone()`` gives another cursor on the same file.
    With ``lazy=True``, ``async with`` makes no request: the first read, ``read_ranges``,
    ``prefetch`` or an explicit ``await f.open()`` does. ``size``, ``etag`` and ``seek(n, 2)``
    cannot wait for a request, so before it they raise ``ValueError`` (await ``open()`` first).
    A file opened before ``os.fork()`` raises ``rangeio.ForkError`` in the child when it needs
    the network (its session and event loop belong to the parent): open it again there.
    It pickles as HttpFile does (docs/distributed.md); unpickled, it is open already and
    sends its first request (on the loop that reads it) at its first read.
    """

    def __init__(self, url: str, *, client: Any = None, lazy: bool = False, **options: Any) -> None:
        self._url = url
        self._lazy = lazy
        self._client = client
        self._options = FileOptions.from_kwargs(**options)
        self._remote: RemoteFile | None = None
        self._runner: AsyncRunner | None = None
        self._cursor: Cursor | None = None
        self._owns_remote = True
        self._pos = 0
        self._closed = False
        self._travelled = False  # unpickled: its client comes from the process's factory

    async def open(self) -> AsyncHttpFile:
        """Make the opening request, unless it was made (a lazy file's first use makes it)."""
        if self._closed:
            raise ValueError("I/O operation on closed file.")
        attached = self._remote is not None
        remote, runner = self._attach()
        try:
            # A lazy file may have clones asking at once: they share one open (ensure_open).
            await self._run(remote.ensure_open() if attached else remote.open())
        except BaseException:
            if not attached:  # an eager open that failed leaves nothing behind
                self._remote = self._runner = self._cursor = None
                await runner.aclose()
            raise
        return self

    def _attach(self) -> tuple[RemoteFile, AsyncRunner]:
        """The file's RemoteFile and runner, made (without any request) if not made yet."""
        if self._remote is None or self._runner is None:
            if self._travelled:  # unpickled: the client of the process's factory
                runner = revived_runner(self._url, self._options)
            else:
                runner = AsyncRunner(
                    make_async_transport(self._client, self._options.verify),
                    *concurrency_limits(self._options.max_concurrency),
                )
            if self._remote is None:
                self._remote = RemoteFile(self._url, self._options)
                self._cursor = Cursor(self._remote)
            self._runner = runner
        assert self._runner is not None
        return self._remote, self._runner

    async def start(self) -> AsyncHttpFile:
        """What ``async with`` and ``await rangeio.aio.open()`` do: open, or with ``lazy``
        only make the file ready to open at its first use."""
        if self._lazy:
            if self._closed:
                raise ValueError("I/O operation on closed file.")
            self._attach()
            return self
        return await self.open()

    async def __aenter__(self) -> AsyncHttpFile:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close this cursor; closing the file that opened the connection closes its clones."""
        if self._closed:
            return
        self._closed = True
        remote, runner, cursor = self._remote, self._runner, self._cursor
        if remote is not None and runner is None and self._owns_remote:
            remote.mark_closed()  # unpickled and never read: nothing was sent
        if remote is None or runner is None or cursor is None:
            return
        try:
            await runner.run(remote.close_cursor(cursor, last=self._owns_remote))
        finally:
            if self._owns_remote:
                remote.mark_closed()
                await runner.aclose()

    def __reduce__(self) -> tuple[Any, ...]:
        if self.closed:
            raise ValueError("cannot pickle a closed file")
        if self._remote is None:  # never opened: it travels as the URL and options
            return (_revive_unopened, (self._url, travelling_options(self._options)))
        return (_revive, (self._remote.describe(), self._pos))

    def clone(self) -> AsyncHttpFile:
        """An independent cursor sharing the session, cache, pinned identity, in-flight
        fetches and concurrency limit. Closing it never closes the parent's session."""
        remote, runner = self._live()
        twin = AsyncHttpFile.__new__(AsyncHttpFile)
        twin._url, twin._client, twin._options = self._url, self._client, self._options
        twin._lazy = self._lazy
        twin._remote, twin._runner, twin._cursor = remote, runner, Cursor(remote)
        twin._owns_remote = False
        twin._travelled = self._travelled
        twin._pos = 0
        twin._closed = False
        return twin

    def _live(self) -> tuple[RemoteFile, AsyncRunner]:
        if self._closed or (self._remote is not None and self._remote.closed):
            raise ValueError("I/O operation on closed file.")
        if self._remote is None:
            raise ValueError("file is not open: use `async with` or `await f.open()`")
        if self._runner is None:
            # Unpickled: the transport is made at the first use, on the loop that reads.
            self._runner = revived_runner(self._url, self._options)
        return self._remote, self._runner

    def _opened_remote(self) -> RemoteFile:
        """The RemoteFile, which must have made its opening request (sync members need it)."""
        remote, _ = self._live()
        if not remote.opened:
            raise ValueError(
                "the lazy file has not been opened yet: await f.open() (or a read) first"
            )
        return remote

    @property
    def closed(self) -> bool:
        return self._closed or (self._remote is not None and self._remote.closed)

    @property
    def url(self) -> str:
        return self._url

    @property
    def stats(self) -> Stats:
        return self._live()[0].stats

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        remote = self._opened_remote() if whence == io.SEEK_END else self._live()[0]
        self._pos = resolve_seek(self._pos, remote.size, offset, whence)
        return self._pos

    def tell(self) -> int:
        self._live()
        return self._pos

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    async def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` from the current position; returns the count (short only at EOF)."""
        remote, _ = self._live()
        assert self._cursor is not None
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view):
            part = view[done:]
            n = remote.read_cached(self._pos, part, self._cursor)
            if n is None:
                n = await self._run(remote.read_missing(self._pos, part, self._cursor))
            if n == 0:
                break
            self._pos += n
            done += n
        return done

    async def read(self, n: int = -1) -> bytes:
        remote, _ = self._live()
        if n is None or n < 0:
            if not remote.opened:
                await self._run(remote.ensure_open())
            n = max(remote.size - self._pos, 0)
        buffer = bytearray(n)
        got = await self.readinto(buffer)
        del buffer[got:]
        return bytes(buffer)

    async def read_ranges(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        """Read several ``(start, stop)`` ranges at once (merged, multipart, or concurrent)."""
        remote, _ = self._live()
        return await self._run(remote.read_ranges(ranges))

    async def prefetch(self, ranges: Sequence[tuple[int, int]]) -> int:
        """Bring ``(start, stop)`` ranges into the cache; returns the bytes fetched (see
        ``HttpFile.prefetch``)."""
        remote, _ = self._live()
        return await self._run(remote.prefetch_ranges(ranges))

    async def _run(self, program: Program[T]) -> T:
        remote, runner = self._live()
        try:
            return await runner.run(program)
        except asyncio.CancelledError:
            # The file was closed under us (its fetches cancelled): say so plainly, unless this
            # task itself is being cancelled, which must propagate.
            task = asyncio.current_task()
            own = task is not None and getattr(task, "cancelling", lambda: 1)() > 0
            if remote.closed and not own:
                raise ValueError("I/O operation on closed file.") from None
            raise

    def __repr__(self) -> str:
        return f"<rangeio.aio.AsyncHttpFile url={self._url!r}>"


def revived_runner(url: str, options: FileOptions) -> AsyncRunner:
    """The runner of an unpickled file: the client ``rangeio.aio.set_client_factory``'s
    factory gives for the URL, else rangeio's own, checking TLS as the pickled ``verify``."""
    client, verify = client_for(url, options.verify, kind="async")
    return AsyncRunner(
        make_async_transport(client, verify), *concurrency_limits(options.max_concurrency)
    )


def _revive(description: Description, position: int) -> AsyncHttpFile:
    """Unpickle an opened AsyncHttpFile: no request until its first read."""
    file = _revive_unopened(description.url, description.options)
    file._remote = RemoteFile.revived(description)
    file._cursor = Cursor(file._remote)
    file._pos = position
    return file


def _revive_unopened(url: str, options: FileOptions) -> AsyncHttpFile:
    file = AsyncHttpFile.__new__(AsyncHttpFile)
    file._url, file._client, file._options = url, None, options
    file._remote, file._runner, file._cursor = None, None, None
    file._owns_remote, file._pos, file._closed = True, 0, False
    file._lazy = False
    file._travelled = True
    return file


class _OpenContext:
    """``async with rangeio.aio.open(url) as f`` and ``f = await rangeio.aio.open(url)``."""

    def __init__(self, file: AsyncHttpFile) -> None:
        self._file = file

    def __await__(self) -> Any:
        return self._file.start().__await__()

    async def __aenter__(self) -> AsyncHttpFile:
        return await self._file.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self._file.close()


def open(  # noqa: A001
    url: str, *, client: Any = None, lazy: bool = False, **options: Any
) -> _OpenContext:
    """Open ``url`` as an async file: ``async with rangeio.aio.open(url) as f: ...``
    (``lazy``: the opening request waits for the first read)."""
    return _OpenContext(AsyncHttpFile(url, client=client, lazy=lazy, **options))
