"""An fsspec filesystem over rangeio: ``fsspec.filesystem("rangeio")``.

Paths are full ``http://`` or ``https://`` URLs. These forms reach it:

- ``fsspec.filesystem("rangeio", **options).open("https://host/file.parquet")``
- ``"rangeio://https://host/file.parquet"`` (pandas, dask, ``fsspec.open``)
- ``"rangeio::https://host/file.parquet"`` (fsspec's chaining; ``fsspec.open`` and ``url_to_fs``,
  not pandas, which takes it for a local path). fsspec resolves the inner ``https`` part with its
  own http filesystem class, so this form needs aiohttp importable; ``rangeio://`` does not.

Options (``storage_options``) are rangeio's: ``client`` and every option of ``rangeio.open``
(``prefetch_bytes``, ``cache_bytes``, ``headers``, ``retries``, ``timeout``, ``verify``, ...).
With no client, the filesystem keeps one urllib3 pool that all its files share (``close()``
closes its connections); a ``client`` given is shared the same way and never closed.

Opens of one URL on one filesystem share one remote file (pinned identity, cache, in-flight
fetches: what ``HttpFile.clone()`` shares), so a Parquet footer is fetched once however many
times a reader opens the file; ``info``/``size``/``modified``/``ukey`` answer from it. Two
filesystem options bound this (see ``rangeio._core.sharing`` for the reasons of the defaults):
``max_shared_files`` (32 idle files kept, least recently used dropped first) and
``share_seconds`` (30: an idle file's identity is trusted this long after its last use; while
any file on it is open it is always reused, and its requests still carry the pinned identity,
so a change on the server is refused, never mixed in). ``invalidate_cache(path)`` forgets a
URL at once. An ``open`` given rangeio options of its own gets a file of its own.

HTTP has no directory listing: ``ls``/``find``/``glob`` answer for a single file URL and raise
``NotImplementedError`` for anything that would need a listing.

It is an ``fsspec.asyn.AsyncFileSystem`` too: its coroutines (``_cat_file``, ``_cat_ranges``,
``_info``, ``_size``, ``_exists``, ``_ls``, ``_find``) read through ``rangeio.aio`` on the
caller's event loop, and ``open_async`` gives an ``AsyncHttpFile``: zarr v3 (whose
``FsspecStore.from_url`` passes ``asynchronous=True``) gets native async I/O. Its sync methods
stay the sync engine's (``rangeio.open``, the ``client`` pool), not wrappers over the coroutines.
The async side keeps, per event loop, ONE transport that all its async files share (so
zarr's chunk reads reuse keep-alive connections, as fsspec's http filesystem does with its one
aiohttp session), and its own shared files: on a session of the default async client (aiohttp)
that the filesystem makes and closes, unless ``async_client`` (an aiohttp session,
httpx.AsyncClient or niquests.AsyncSession, of the loop that uses it) is given, which is then
used and never closed. A loop's part is closed when that loop shuts down (``asyncio.run`` does
at its end), at ``close()`` / ``await close_async()``, or when the filesystem is collected (or
the interpreter exits): on the loop if it runs (zarr's loop thread), by running it until done
if it stopped, else by dropping the connections. The filesystem stays usable after ``close()``.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import threading
import time
import weakref
from collections.abc import AsyncGenerator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeoutError
from contextlib import contextmanager, suppress
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from threading import get_ident
from typing import Any

from fsspec import AbstractFileSystem
from fsspec.asyn import AsyncFileSystem, get_loop
from fsspec.spec import make_instance

from rangeio._async.file import AsyncHttpFile
from rangeio._async.transports import AsyncTransport, Borrowed, abandon, make_async_transport
from rangeio._core.identity import Identity
from rangeio._core.options import FileOptions, check_borrowed_tls
from rangeio._core.redirects import check_url
from rangeio._core.sharing import MAX_SHARED_FILES, SHARE_SECONDS, SharedFiles, version_key
from rangeio._core.travel import travelling_kwargs
from rangeio._sync.file import HttpFile
from rangeio._transport._urllib3 import make_pool
from rangeio.errors import HTTPStatusError, UrlError

try:  # fsspec >= 2025.10: marks a filesystem that takes the chained path ("rangeio::http://...")
    from fsspec.implementations.chained import ChainedFileSystem as _Base
except ImportError:  # pragma: no cover - older fsspec: the path arrives as ``fo`` (see _url)
    _Base = AbstractFileSystem

# fsspec's own knobs for its buffered files; rangeio plans its reads and keeps its own cache.
# fsspec's own buffering/caching knobs (dask passes ``default_cache="none"`` when it counts rows):
# rangeio has its own cache and read-ahead, so they are accepted and have no effect.
_FSSPEC_OPEN_KWARGS = frozenset(
    {
        "block_size",
        "cache_options",
        "cache_type",
        "autocommit",
        "default_cache",
        "default_fill_cache",
    }
)
# Settings of fsspec's AbstractFileSystem, not of rangeio.
_FSSPEC_FS_KWARGS = frozenset(
    {"use_listings_cache", "listings_expiry_time", "max_paths", "skip_instance_cache"}
)
# Connections in the shared pool per host: a few files reading at rangeio's concurrency (8).
_POOL_MAXSIZE = 32
# Files that cat_ranges reads at once.
_FILES_AT_ONCE = 4
_NO_LISTING = (
    "HTTP has no directory listing: rangeio can only open, read and describe a single file URL, "
    "not list {path!r}"
)


@contextmanager
def _translate_errors(url: str) -> Iterator[None]:
    """The errors fsspec's callers (pandas, pyarrow, dask) look for."""
    try:
        yield
    except HTTPStatusError as exc:
        if exc.status in (404, 410):
            raise FileNotFoundError(errno.ENOENT, f"not found: {exc}", url) from exc
        if exc.status in (401, 403):
            raise PermissionError(errno.EACCES, f"forbidden: {exc}", url) from exc
        raise


def _resolve(start: int | None, end: int | None, size: int) -> tuple[int, int]:
    """fsspec's byte limits (``None``: the edge; negative: from the end) as ``[start, stop)``."""
    lo = 0 if start is None else (start if start >= 0 else max(0, size + start))
    hi = size if end is None else (end if end >= 0 else size + end)
    lo = min(lo, size)
    hi = max(lo, min(hi, size))
    return lo, hi


def _info_of(url: str, size: int, identity: Identity | None) -> dict[str, Any]:
    info: dict[str, Any] = {"name": url, "size": size, "type": "file"}
    if identity is not None and identity.etag is not None:
        info["etag"] = identity.etag.header_value()
    if identity is not None and identity.last_modified is not None:
        info["last_modified"] = identity.last_modified
    return info


def _absent(exc: Exception) -> bool:
    """Whether ``exc`` (from ``info``) means "no such file" to ``exists``."""
    if isinstance(exc, (FileNotFoundError, PermissionError, NotImplementedError)):
        return True
    return isinstance(exc, HTTPStatusError) and 400 <= exc.status < 500


def _check_listable(path: str) -> None:
    if path.endswith("/"):
        raise NotImplementedError(_NO_LISTING.format(path=path))


def _group_ranges(
    paths: Sequence[str],
    starts: int | None | Sequence[int | None],
    ends: int | None | Sequence[int | None],
) -> tuple[dict[str, list[int]], list[int | None], list[int | None]]:
    """``cat_ranges``' arguments as {path: indices} (each file read once) and the limits."""
    starts_list = list(starts) if isinstance(starts, Sequence) else [starts] * len(paths)
    ends_list = list(ends) if isinstance(ends, Sequence) else [ends] * len(paths)
    if len(starts_list) != len(paths) or len(ends_list) != len(paths):
        raise ValueError("paths, starts and ends must have the same length")
    by_path: dict[str, list[int]] = {}
    for i, p in enumerate(paths):
        by_path.setdefault(RangeioFileSystem._strip_protocol(p), []).append(i)
    return by_path, starts_list, ends_list


def _wanted(
    slots: list[int], starts: list[int | None], ends: list[int | None], size: int
) -> list[tuple[int, tuple[int, int]]]:
    """(index, [start, stop)) of the non-empty ranges of ``slots`` in a file of ``size``."""
    spans = [_resolve(starts[i], ends[i], size) for i in slots]
    return [(i, span) for i, span in zip(slots, spans) if span[0] < span[1]]


class SharedAsyncHttpFile(AsyncHttpFile):
    """An async cursor on a remote file the filesystem shares (``open_async``); closing it
    tells the filesystem."""

    _release: Any

    async def close(self) -> None:
        release, self._release = getattr(self, "_release", None), None
        try:
            await super().close()
        finally:
            if release is not None:
                await release()


# How long a synchronous close waits for another thread's running loop (zarr's, fsspec's IO
# thread) to close what the filesystem keeps on it. Closing sends nothing, so it ends within a
# loop iteration or two unless that loop is blocked; the bound only keeps a blocked loop from
# hanging the caller, or the interpreter's exit. fsspec's http filesystem waits 0.1 s, then
# drops the connections from the wrong thread; rangeio waits longer and never does that.
_CLOSE_WAIT_SECONDS = 2.0


class _AsyncShared:
    """What the async side keeps for one event loop: ONE transport (one connection pool) that
    every async file of the filesystem on that loop sends through, and the shared files.

    It ends with the filesystem's ``close``, the filesystem's collection, or the loop's end,
    whichever comes first; the transport is closed then if the filesystem made it (a borrowed
    ``async_client`` is left open: its owner closes it)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        transport: AsyncTransport,
        owned: bool,
        max_idle: int,
        trust: float,
    ) -> None:
        self.loop = loop
        self.transport = transport
        self.owned = owned
        # What each file gets as its client: closing a file leaves the transport open.
        self.lent = Borrowed(transport)
        self.table: SharedFiles[AsyncHttpFile] = SharedFiles(max_idle, trust)
        # One lock per URL being opened: concurrent first opens of a URL make one remote file.
        self.opening: dict[str, asyncio.Lock] = {}
        self.closed = False
        self.closer = self._close_at_loop_end()
        # A forked child inherits the state but not its loop's thread; the loop's selector
        # and sockets are still the parent's, so the child must leave them alone.
        self.pid = os.getpid()

    async def _close_at_loop_end(self) -> AsyncGenerator[None, None]:
        """Started once (``start``) and left suspended: its ``finally`` closes the state when the
        loop shuts its async generators down (``asyncio.run`` does, at its end), when the
        generator is collected (the loop then runs its ``aclose``), or at ``aclose()``."""
        try:
            yield
        finally:
            await self._close()

    async def start(self) -> None:
        await self.closer.__anext__()  # now the loop knows it, and will close it

    async def aclose(self) -> None:
        """Close the files and the owned transport, on this state's loop."""
        await self.closer.aclose()
        await self._close()  # if the generator had already finished

    async def _close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            await _aclose_all(self.table.drain())
        finally:
            if self.owned:
                await self.transport.aclose()

    def abandon(self) -> None:
        """Close without the loop (it stopped or closed, so nothing can be awaited on it): the
        files are marked closed, the owned transport's connections dropped at once."""
        if self.closed or self.pid != os.getpid():
            return
        self.closed = True
        for f in self.table.drain():
            if f._remote is not None:
                f._remote.mark_closed()
        if self.owned:
            abandon(self.transport)


def _running_here() -> bool:
    """Whether this thread is running an event loop (so it must not block on one)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _close_state(state: _AsyncShared) -> None:
    """Close ``state`` from synchronous code on any thread, on its loop: the loop's sockets
    can only be closed cleanly there.

    - The loop runs (in another thread, as zarr's and fsspec's sync layers keep one, or in
      this one): the close is handed to it, and waited for unless this thread runs a loop
      itself, which must not block.
    - It stopped without closing (zarr's exit stops its loop thread): it is run here until the
      close is done. Only what was already queued on it runs too, which would have run anyway.
    - It is closed (or started again elsewhere meanwhile): nothing can run on it; the
      connections are dropped at once (``abandon``).
    """
    if state.closed or state.pid != os.getpid():
        return  # closed already, or a forked child's copy of its parent's
    loop = state.loop
    if loop.is_running():
        done = asyncio.run_coroutine_threadsafe(state.aclose(), loop)
        if not _running_here():
            try:
                done.result(_CLOSE_WAIT_SECONDS)
            except FutureTimeoutError:
                # A blocked loop: the close runs when it gets to it. A loop that stopped
                # meanwhile (as zarr's does at exit) is run here until the close is done.
                if not (loop.is_running() or loop.is_closed()):
                    with suppress(RuntimeError):
                        loop.run_until_complete(asyncio.wrap_future(done, loop=loop))
        return
    if not loop.is_closed() and not _running_here():
        closing = state.aclose()
        try:
            loop.run_until_complete(closing)
            return
        except RuntimeError:  # closed, or running, since we looked
            closing.close()
    state.abandon()


def _close_states(states: dict[asyncio.AbstractEventLoop, _AsyncShared]) -> None:
    """Close every loop's state: ``close()``, and the filesystem's finalizer (on its collection,
    or at the interpreter's exit, when zarr's loop thread may still be running). Each state is
    taken out in one dict step, so no lock is needed (the finalizer cannot hold the filesystem's,
    which a fork may have replaced)."""
    while True:
        try:
            _, state = states.popitem()
        except KeyError:
            return
        _close_state(state)


class SharedHttpFile(HttpFile):
    """A file on a remote file the filesystem shares; closing it tells the filesystem.

    Each thread that reads it does so through a cursor of its own (all on the one remote file):
    DuckDB calls ``seek()`` then ``read()`` on one file object from several threads at once,
    which one shared position would interleave into wrong bytes. A thread's first call starts
    where the file was last left, so a file handed from one thread to another reads on.
    """

    _release: Any
    _owner: int
    _cursors: dict[int, HttpFile]
    _cursors_lock: threading.Lock
    _last: HttpFile

    def _share(self, release: Any) -> None:
        self._release = release
        self._owner = threading.get_ident()
        self._cursors = {}
        self._cursors_lock = threading.Lock()
        self._last = self

    def _new_cursor(self, me: int) -> HttpFile:
        with self._cursors_lock:
            if self.closed:
                raise ValueError("I/O operation on closed file.")
            cursor = HttpFile.__new__(HttpFile)
            cursor._setup(self._remote, self._runner, owns_remote=False)
            cursor.seek(HttpFile.tell(self._last))  # no I/O
            self._cursors[me] = cursor
            return cursor

    def close(self) -> None:
        release, self._release = getattr(self, "_release", None), None
        try:
            with getattr(self, "_cursors_lock", threading.Lock()):
                cursors, self._cursors = list(getattr(self, "_cursors", {}).values()), {}
            for cursor in cursors:
                cursor.close()
            super().close()
        finally:
            if release is not None:
                release()


def _per_thread(name: str) -> Any:
    base = getattr(HttpFile, name)

    def method(self: SharedHttpFile, *args: Any) -> Any:
        # The calling thread's cursor (this file for the thread that opened it); inline: this
        # runs on every read.
        me = get_ident()
        cursor = self if me == self._owner else self._cursors.get(me) or self._new_cursor(me)
        if self._last is not cursor:
            self._last = cursor
        return base(cursor, *args)

    method.__name__ = name
    method.__doc__ = base.__doc__
    return method


# Everything that reads or moves the position (iteration calls readline).
_POSITIONAL = ("read", "read1", "readinto", "readinto1", "readline", "readlines", "peek")
for _name in (*_POSITIONAL, "seek", "tell"):
    setattr(SharedHttpFile, _name, _per_thread(_name))


class RangeioFileSystem(AsyncFileSystem, _Base):  # type: ignore[misc]
    """Read-only fsspec filesystem whose files are ``rangeio.HttpFile`` objects; its
    coroutines read through ``rangeio.aio``."""

    protocol = "rangeio"
    root_marker = ""
    # The sync methods are the sync engine's own, not fsspec's wrappers over the coroutines.
    mirror_sync_methods = False

    def __init__(
        self,
        *args: Any,
        client: Any = None,
        target_protocol: str | None = None,
        target_options: dict[str, Any] | None = None,
        fo: str | None = None,
        max_shared_files: int = MAX_SHARED_FILES,
        share_seconds: float = SHARE_SECONDS,
        asynchronous: bool = False,
        loop: Any = None,
        batch_size: int | None = None,
        async_client: Any = None,
        **options: Any,
    ) -> None:
        fs_options = {k: options.pop(k) for k in list(options) if k in _FSSPEC_FS_KWARGS}
        # AsyncFileSystem.__init__ would start fsspec's IO thread for a sync instance, which
        # this one needs only if a caller asks for ``loop`` (see there): its own settings only.
        super(AsyncFileSystem, self).__init__(*args, **fs_options)
        self.asynchronous = asynchronous
        self._loop = loop
        self._pid = os.getpid()
        self.batch_size = batch_size
        if target_protocol not in (None, "http", "https"):
            raise ValueError(
                f"rangeio reads http(s) URLs; it cannot be layered on {target_protocol!r}"
            )
        # target_options (the http filesystem's aiohttp options) are not used: rangeio has its own.
        FileOptions.from_kwargs(**options)  # a wrong option fails here, not at the first open
        # TLS belongs to the pool the files share: it is built here, once, not per file.
        verify = options.pop("verify", True)
        check_borrowed_tls(client, verify)
        check_borrowed_tls(async_client, verify)
        self.options: dict[str, Any] = options
        self._verify = verify
        self.async_client = async_client
        # The sync side's files share one pool: the client given, else a urllib3 pool of ours.
        self._owns_pool = client is None
        self.client = client if client is not None else make_pool(verify, maxsize=_POOL_MAXSIZE)
        self._fo = fo
        self._shared: SharedFiles[HttpFile] = SharedFiles(max_shared_files, share_seconds)
        self._lock = threading.RLock()
        # One lock per URL being opened: concurrent first opens of a URL make one remote file.
        self._opening: dict[str, threading.Lock] = {}
        self._owner_pid = os.getpid()
        # The async side, per event loop: one transport its files share, and the shared files.
        self._async_states: dict[asyncio.AbstractEventLoop, _AsyncShared] = {}
        # Collected (or at exit) with states open: they are closed then, as close() does. The
        # finalizer holds the table, not the filesystem.
        weakref.finalize(self, _close_states, self._async_states)

    def __reduce__(self) -> tuple[Any, ...]:
        # fsspec pickles a filesystem as its constructor's arguments; a borrowed client (its
        # auth, cookies, connections) and, unless pickle_headers=True, the headers stay behind
        # (docs/distributed.md): the worker's filesystem keeps a pool of its own. Its open files
        # pickle as HttpFile does.
        kept = travelling_kwargs(self.storage_options)
        return make_instance, (type(self), self.storage_args, kept)

    @property
    def loop(self) -> Any:
        """The event loop fsspec's sync helpers (``fsspec.asyn.sync``) run the coroutines on:
        the one given, else fsspec's IO thread, started at the first call."""
        if self._pid != os.getpid():
            raise RuntimeError("This class is not fork-safe")
        if self._loop is None and not self.asynchronous:
            self._loop = get_loop()
        return self._loop

    def _check_fork(self) -> None:
        if self._owner_pid != os.getpid():
            # A forked child: a parent thread may have held these locks at the fork, and it does
            # not exist here. (The shared files themselves handle the fork: see HttpFile.)
            self._owner_pid = os.getpid()
            self._lock = threading.RLock()
            self._opening = {}

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = str(path)
        for prefix in ("rangeio://", "rangeio::"):
            if path.startswith(prefix):
                path = path[len(prefix) :]
        return path

    @classmethod
    def _parent(cls, path: str) -> str:
        url = cls._strip_protocol(path).rstrip("/")
        scheme, sep, rest = url.partition("://")
        if "/" not in rest:
            return str(url)
        return str(scheme + sep + rest.rsplit("/", 1)[0])

    def _url(self, path: str) -> str:
        url: str = self._strip_protocol(path)
        # Before fsspec marked chained filesystems, "rangeio::http://x" gave us "" and fo="http://x".
        if not url and self._fo:
            url = self._strip_protocol(self._fo)
        try:
            return check_url(url)
        except UrlError as exc:
            # What a filesystem says of a path it cannot have (rasterio's opener check asks for
            # size("test/test") and expects this).
            raise FileNotFoundError(errno.ENOENT, f"not an http(s) URL: {exc}", path) from exc

    # -- shared remote files ----------------------------------------------------------------

    def _acquire(self, url: str) -> HttpFile:
        """The shared file of ``url`` with one more user: found, or opened (one request)."""
        self._check_fork()
        with self._lock:
            root = self._shared.take(url, time.monotonic())
            opening = self._opening.setdefault(url, threading.Lock()) if root is None else None
            retired = self._shared.retired()
        self._close_all(retired)
        if root is not None:
            return root
        assert opening is not None
        with opening:
            with self._lock:
                root = self._shared.take(url, time.monotonic())
            if root is not None:  # another thread opened it while we waited
                return root
            try:
                with _translate_errors(url):
                    root = HttpFile(url, client=self.client, **self.options)
            except BaseException:
                with self._lock:
                    self._opening.pop(url, None)
                raise
            with self._lock:
                # In one step: a thread that finds no opening lock finds the file.
                self._shared.add(url, root, time.monotonic())
                self._opening.pop(url, None)
                retired = self._shared.retired()
        self._close_all(retired)
        return root

    def _release(self, url: str, root: HttpFile) -> None:
        with self._lock:
            self._shared.release(url, root, time.monotonic())
            retired = self._shared.retired()
        self._close_all(retired)

    @staticmethod
    def _close_all(files: list[HttpFile]) -> None:
        for f in files:
            f.close()

    @contextmanager
    def _known(self, url: str) -> Iterator[HttpFile]:
        """The shared file of ``url``, held for the block (for what it knows: size, identity)."""
        root = self._acquire(url)
        try:
            yield root
        finally:
            self._release(url, root)

    def _open_file(self, url: str, **kwargs: Any) -> HttpFile:
        own = {k: v for k, v in kwargs.items() if k not in _FSSPEC_OPEN_KWARGS}
        if own:
            # Options of its own (another prefetch, other headers): not the shared file's.
            with _translate_errors(url):
                return HttpFile(url, client=self.client, **{**self.options, **own})
        root = self._acquire(url)
        try:
            if root.closed:
                raise ValueError("I/O operation on closed file.")
            twin = SharedHttpFile.__new__(SharedHttpFile)
            twin._setup(root._remote, root._runner, owns_remote=False)
        except BaseException:
            self._release(url, root)
            raise
        twin._share(lambda: self._release(url, root))
        return twin

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        cache_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> HttpFile:
        if mode != "rb":
            raise NotImplementedError(f"rangeio is read-only: mode must be 'rb', not {mode!r}")
        return self._open_file(self._url(path), **kwargs)

    # -- what is known of a file ------------------------------------------------------------

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        """Name, size, type, and the validators the server sent (``etag``, ``last_modified``).
        Known once the URL was opened or described; else it costs the open's one request, which
        also prefetches, so the ``open`` that usually follows costs nothing."""
        _check_listable(self._strip_protocol(path))
        url = self._url(path)
        with self._known(url) as f:
            return _info_of(url, f.size, f._remote.identity)

    def size(self, path: str) -> int:
        return int(self.info(path)["size"])

    def modified(self, path: str) -> datetime:
        """The file's Last-Modified (pinned at open), as an aware UTC datetime."""
        stamp = self.info(path).get("last_modified")
        if stamp is None:
            raise NotImplementedError(f"the server sent no Last-Modified for {self._url(path)}")
        try:
            when = parsedate_to_datetime(stamp)
        except (TypeError, ValueError) as exc:
            raise NotImplementedError(f"unreadable Last-Modified {stamp!r}: {exc}") from None
        return when.astimezone(timezone.utc)

    def ukey(self, path: str) -> str:
        """A key that changes when the file does: from its strong ETag, else Last-Modified and
        size (``rangeio._core.sharing.version_key``). A server that sends no validator at all
        gets a key of URL and size, which cannot see a rewrite of the same size."""
        url = self._url(path)
        with self._known(url) as f:
            key = version_key(f._remote.identity, f.size)
            size = f.size
        if key is None:
            key = hashlib.sha256(f"url:{url}:size:{size}".encode()).hexdigest()
        return key

    def checksum(self, path: str) -> int:
        """``ukey`` as an integer, as fsspec's ``checksum`` returns."""
        return int(self.ukey(path), 16)

    def exists(self, path: str, **kwargs: Any) -> bool:
        try:
            self.info(path)
        except Exception as exc:
            if _absent(exc):
                return False
            raise
        return True

    def isdir(self, path: str) -> bool:
        return False

    def isfile(self, path: str) -> bool:
        return self.exists(path)

    def invalidate_cache(self, path: str | None = None) -> None:
        """Forget what is known of ``path`` (of every URL with None): the next open or info
        opens the file afresh. Files already open keep reading the version they pinned."""
        key = None if path is None else self._strip_protocol(path)
        with self._lock:
            self._shared.discard(key)
            retired = self._shared.retired()
            for state in list(self._async_states.values()):
                # Closed by the next coroutine on their loop, which drains the table's retired.
                state.table.discard(key)
        self._close_all(retired)
        super().invalidate_cache(path)

    def close(self) -> None:
        """Close what the filesystem holds: its shared files, sync and async; the async
        transport of each event loop (one per loop, which all its async files share); and
        the connections of its own urllib3 pool. A ``client`` or ``async_client`` you passed
        stays open (close it yourself). The filesystem stays usable: what comes next opens
        afresh. Collecting the filesystem, or the interpreter's exit, closes the async side
        the same way; a loop's end closes that loop's part."""
        _close_states(self._async_states)
        self._close_sync_side()

    async def close_async(self) -> None:
        """``close()`` from a coroutine: the running loop's part is closed here (awaited), the
        sync side in a thread."""
        mine = self._async_states.pop(asyncio.get_running_loop(), None)
        if mine is not None:
            await mine.aclose()
        _close_states(self._async_states)  # other loops': not waited for (this thread runs one)
        await asyncio.to_thread(self._close_sync_side)

    def _close_sync_side(self) -> None:
        self._check_fork()
        with self._lock:
            files = self._shared.drain()
        self._close_all(files)
        if self._owns_pool:
            self.client.clear()  # a PoolManager stays usable: new connections when needed

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        info = self.info(path)
        return [info] if detail else [info["name"]]

    def find(
        self,
        path: str,
        maxdepth: int | None = None,
        withdirs: bool = False,
        detail: bool = False,
        **kwargs: Any,
    ) -> Any:
        info = self.info(path)
        return {info["name"]: info} if detail else [info["name"]]

    def glob(self, path: str, maxdepth: int | None = None, **kwargs: Any) -> Any:
        url = self._strip_protocol(path)
        # "?" starts a query string in a URL; only "*" and "[" would be patterns.
        if "*" in url or "[" in url:
            raise NotImplementedError(_NO_LISTING.format(path=url))
        url = self._url(path)
        if kwargs.get("detail"):
            return {url: self.info(url)} if self.exists(url) else {}
        return [url] if self.exists(url) else []

    # -- reads ------------------------------------------------------------------------------

    def cat_file(
        self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        url = self._url(path)
        with self._open_file(url, **kwargs) as f:
            lo, hi = _resolve(start, end, f.size)
            if lo >= hi:
                return b""
            return f.read_ranges([(lo, hi)])[0]

    def cat_ranges(
        self,
        paths: Sequence[str],
        starts: int | None | Sequence[int | None],
        ends: int | None | Sequence[int | None],
        max_gap: int | None = None,
        on_error: str = "return",
        **kwargs: Any,
    ) -> list[bytes | Exception]:
        """Byte ranges of one or more files: each file is opened once and its ranges are read
        with one ``read_ranges`` call (merged or multipart); files are read a few at a time."""
        paths = list(paths)
        by_path, starts_list, ends_list = _group_ranges(paths, starts, ends)
        out: list[bytes | Exception] = [b""] * len(paths)

        def read_one(path: str, slots: list[int]) -> None:
            try:
                with self._open_file(self._url(path), **kwargs) as f:
                    wanted = _wanted(slots, starts_list, ends_list, f.size)
                    datas = f.read_ranges([span for _, span in wanted]) if wanted else []
                    for (i, _), data in zip(wanted, datas):
                        out[i] = data
            except Exception as exc:
                if on_error != "return":
                    raise
                for i in slots:
                    out[i] = exc

        if len(by_path) == 1:
            read_one(*next(iter(by_path.items())))
        else:
            with ThreadPoolExecutor(min(_FILES_AT_ONCE, len(by_path))) as pool:
                for future in [pool.submit(read_one, u, s) for u, s in by_path.items()]:
                    future.result()
        return out

    # -- the coroutines (rangeio.aio) -------------------------------------------------------

    async def _async_state(self) -> _AsyncShared:
        """The running loop's state: its one transport and shared files (made at its first
        coroutine). Files of another loop cannot be used, or closed, from this one."""
        loop = asyncio.get_running_loop()
        state = self._async_states.get(loop)
        if state is not None and not state.closed:
            return state
        for other, old in list(self._async_states.items()):
            # States of loops that ended (asyncio.run closed them) or closed without ending
            # them (abandoned now): a program that runs many loops keeps none of them.
            if old.closed or other.is_closed():
                self._async_states.pop(other, None)
                old.abandon()
        transport = make_async_transport(self.async_client, self._verify)
        state = _AsyncShared(
            loop,
            transport,
            self.async_client is None,
            self._shared.max_idle,
            self._shared.trust_seconds,
        )
        self._async_states[loop] = state
        await state.start()
        return state

    async def _aacquire(self, url: str) -> AsyncHttpFile:
        """The async shared file of ``url`` with one more user: found, or opened."""
        state = await self._async_state()
        root = state.table.take(url, time.monotonic())
        await _aclose_all(state.table.retired())
        if root is not None:
            return root
        opening = state.opening.setdefault(url, asyncio.Lock())
        async with opening:
            root = state.table.take(url, time.monotonic())
            if root is not None:  # another task opened it while we waited
                return root
            # On the loop's one transport (its TLS is the filesystem's ``verify``).
            root = AsyncHttpFile(url, client=state.lent, **self.options)
            try:
                with _translate_errors(url):
                    await root.open()
            finally:
                state.opening.pop(url, None)
            state.table.add(url, root, time.monotonic())
        await _aclose_all(state.table.retired())
        return root

    async def _arelease(self, url: str, root: AsyncHttpFile) -> None:
        state = self._async_states.get(asyncio.get_running_loop())
        if state is None or state.closed:
            return  # closed with its state (close(), the loop's end): nothing left to release
        state.table.release(url, root, time.monotonic())
        await _aclose_all(state.table.retired())

    async def _aread(
        self, url: str, slots: list[int], starts: list[int | None], ends: list[int | None]
    ) -> tuple[int, dict[int, bytes]]:
        """The size of ``url`` and the bytes of its ranges ``slots`` (one ``read_ranges``)."""
        root = await self._aacquire(url)
        try:
            wanted = _wanted(slots, starts, ends, root.size)
            datas = await root.read_ranges([span for _, span in wanted]) if wanted else []
            return root.size, {i: data for (i, _), data in zip(wanted, datas)}
        finally:
            await self._arelease(url, root)

    async def open_async(self, path: str, mode: str = "rb", **kwargs: Any) -> AsyncHttpFile:
        """An ``AsyncHttpFile`` cursor (``await f.read()``, ``f.seek()``, ``async with``) on the
        shared file of ``path``; rangeio options of its own give it a file of its own."""
        if mode != "rb":
            raise NotImplementedError(f"rangeio is read-only: mode must be 'rb', not {mode!r}")
        url = self._url(path)
        own = {k: v for k, v in kwargs.items() if k not in _FSSPEC_OPEN_KWARGS}
        if own:
            if "verify" in own:
                # TLS settings of its own: a transport of its own, closed with the file.
                client = self.async_client
            else:
                client = (await self._async_state()).lent
            f = AsyncHttpFile(url, client=client, **{**self.options, **own})
            with _translate_errors(url):
                return await f.open()
        root = await self._aacquire(url)
        try:
            twin = root.clone()
        except BaseException:
            await self._arelease(url, root)
            raise
        # The same object, with a close() that releases the share (clone() builds the base).
        twin.__class__ = SharedAsyncHttpFile
        twin._release = lambda: self._arelease(url, root)  # type: ignore[attr-defined]
        return twin

    async def _info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        _check_listable(self._strip_protocol(path))
        url = self._url(path)
        root = await self._aacquire(url)
        try:
            return _info_of(url, root.size, root._remote.identity if root._remote else None)
        finally:
            await self._arelease(url, root)

    async def _size(self, path: str) -> int:
        return int((await self._info(path))["size"])

    async def _exists(self, path: str, **kwargs: Any) -> bool:
        try:
            await self._info(path)
        except Exception as exc:
            if _absent(exc):
                return False
            raise
        return True

    async def _isdir(self, path: str) -> bool:
        return False

    async def _isfile(self, path: str) -> bool:
        return await self._exists(path)

    async def _ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        info = await self._info(path)
        return [info] if detail else [info["name"]]

    async def _find(
        self,
        path: str,
        maxdepth: int | None = None,
        withdirs: bool = False,
        **kwargs: Any,
    ) -> Any:
        info = await self._info(path)
        return {info["name"]: info} if kwargs.get("detail") else [info["name"]]

    async def _cat_file(
        self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        _, got = await self._aread(self._url(path), [0], [start], [end])
        return got.get(0, b"")

    async def _cat_ranges(
        self,
        paths: Sequence[str],
        starts: int | None | Sequence[int | None],
        ends: int | None | Sequence[int | None],
        max_gap: int | None = None,
        batch_size: int | None = None,
        on_error: str = "return",
        **kwargs: Any,
    ) -> list[bytes | Exception]:
        """As ``cat_ranges``: each file opened once, its ranges in one ``read_ranges``."""
        paths = list(paths)
        by_path, starts_list, ends_list = _group_ranges(paths, starts, ends)
        out: list[bytes | Exception] = [b""] * len(paths)
        files_at_once = asyncio.Semaphore(batch_size or self.batch_size or _FILES_AT_ONCE)

        async def read_one(path: str, slots: list[int]) -> None:
            try:
                async with files_at_once:
                    _, got = await self._aread(self._url(path), slots, starts_list, ends_list)
                for i, data in got.items():
                    out[i] = data
            except Exception as exc:
                if on_error != "return":
                    raise
                for i in slots:
                    out[i] = exc

        await asyncio.gather(*(read_one(p, s) for p, s in by_path.items()))
        return out


async def _aclose_all(files: list[AsyncHttpFile]) -> None:
    for f in files:
        await f.close()


__all__ = ["RangeioFileSystem", "SharedAsyncHttpFile", "SharedHttpFile"]
