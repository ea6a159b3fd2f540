"""HttpFile: a real binary file object over HTTP ranges (io.BufferedReader over a raw range reader)."""

from __future__ import annotations

import io
import threading
from collections.abc import Sequence
from concurrent.futures import CancelledError
from typing import Any, TypeVar

from rangeio._clients import client_for
from rangeio._core.options import FileOptions, concurrency_limits
from rangeio._core.stats import Stats
from rangeio._core.travel import Description
from rangeio._engine.faces import FileFacts
from rangeio._engine.fork import ForkHooks
from rangeio._engine.ops import Program
from rangeio._engine.remote import Cursor, RemoteFile, resolve_seek
from rangeio._sync.runner import SyncRunner
from rangeio._transport import make_transport

# The buffered layer's own buffer. Small reads are served from it in C (that is what makes
# cached read(64) fast). A refill asks the raw reader for exactly this much, and the raw reader
# cannot tell a refill from a user's read of the same size, so it is one page: a lean random
# reader (see AccessPattern) then fetches 4 KiB for a 4 KiB read, not a buffer's worth.
BUFFER_BYTES = 4 * 1024

T = TypeVar("T")


class _Inside:
    """``with``: the calling thread is in the reader's ``_inside`` for the length of the block
    (a class, not a @contextmanager generator: entered twice per read, seek and readinto)."""

    __slots__ = ("_reader", "_me")

    def __init__(self, reader: RawHttpReader) -> None:
        self._reader = reader
        self._me = 0

    def __enter__(self) -> None:
        self._me = threading.get_ident()
        self._reader._inside.append(self._me)

    def __exit__(self, *exc_info: object) -> None:
        self._reader._inside.remove(self._me)


class RawHttpReader(io.RawIOBase):
    """One cursor over a RemoteFile. Reads may be short; the buffered layer loops."""

    def __init__(self, remote: RemoteFile, runner: SyncRunner, *, owns_remote: bool = True) -> None:
        super().__init__()
        self._remote = remote
        self._runner = runner
        self._owns_remote = owns_remote
        self._pos = 0
        self._cursor = Cursor(remote)
        # Threads inside a method the buffered layer calls while holding its lock (one entry
        # per call): after a fork, an entry of another thread means the child inherited that
        # lock held by a thread that does not exist there.
        self._inside: list[int] = []

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def _entered(self) -> _Inside:
        """Records the calling thread in ``_inside`` for the length of the block."""
        return _Inside(self)

    def readinto(self, buffer: Any) -> int:
        with self._entered():
            view = memoryview(buffer).cast("B")
            n = self._remote.read_cached(self._pos, view, self._cursor)
            if n is None:
                # A read larger than the buffer comes here directly, and its tail (under one
                # buffer) follows through a refill: fetch that tail in the same request.
                slack = BUFFER_BYTES if len(view) > BUFFER_BYTES else 0
                n = self._run(self._remote.read_missing(self._pos, view, self._cursor, slack))
            self._pos += n
            return n

    def _run(self, program: Program[T]) -> T:
        try:
            return self._runner.run(program)
        except CancelledError:
            # Another thread closed the file and its pool cancelled our fetch.
            if self._remote.closed:
                raise ValueError("I/O operation on closed file.") from None
            raise

    def ensure_open(self) -> None:
        """Make a lazy file's opening request, unless it was made (see ``HttpFile.open``)."""
        if not self._remote.opened:
            self._run(self._remote.ensure_open())

    def readall(self) -> bytes:
        with self._entered():
            self.ensure_open()
            remaining = max(self._remote.size - self._pos, 0)
            out = bytearray(remaining)
            view = memoryview(out)
            done = 0
            while done < remaining:
                n = self.readinto(view[done:])
                if n == 0:
                    break
                done += n
            return bytes(out[:done])

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        with self._entered():
            if self.closed:
                raise ValueError("I/O operation on closed file.")
            if whence == io.SEEK_END:
                self.ensure_open()  # a lazy file learns its size
            self._pos = resolve_seek(self._pos, self._remote.size, offset, whence)
            return self._pos

    def tell(self) -> int:
        with self._entered():
            if self.closed:
                raise ValueError("I/O operation on closed file.")
            return self._pos

    def inherited_busy(self) -> bool:
        """In a forked child: whether a parent thread was inside this reader at the fork."""
        me = threading.get_ident()
        busy = any(t != me for t in self._inside)
        self._inside = [t for t in self._inside if t == me]
        return busy

    def close(self) -> None:
        with self._entered():
            if not self.closed:
                try:
                    self._runner.run(
                        self._remote.close_cursor(self._cursor, last=self._owns_remote)
                    )
                finally:
                    if self._owns_remote:
                        self._remote.mark_closed()
                        self._runner.close()
            super().close()


class HttpFile(FileFacts, io.BufferedReader):
    """A read-only, seekable binary file over HTTP byte ranges.

    Opening costs one request (a range that also reveals the size and pins the file's identity).
    Every byte served comes from a validated response of that same version. With ``lazy=True``
    that request waits for the file's first use: a read, ``size``, ``etag``, ``seek(n, 2)``,
    ``read_ranges``, ``prefetch`` or an explicit ``open()``; until then the file costs nothing.

    After ``os.fork()`` (a ``multiprocessing`` pool with the fork start method, say) a file
    opened in the parent works in the child, never sharing a connection with the parent: the
    child gets fresh locks, a fresh thread pool and a fresh connection pool of its own, and
    forgets the fetches and streams the parent had in flight (it asks again). Its cache is kept,
    unless a parent thread was changing it at the fork. A cursor another thread was reading at
    the fork has an unspecified position in the child: seek before reading it. A file opened
    with a borrowed ``client`` raises ``rangeio.ForkError`` in the child when it needs the
    network (the client's connections belong to the parent); open it again in the child.

    A file pickles (for a process pool with any start method, a dask worker) as a small
    description: its URL, options (no ``headers`` unless ``pickle_headers=True``), position and
    pinned identity, never a client. Unpickled, it sends nothing until its first read, which
    must find that same version, else ``RemoteChangedError`` (see docs/distributed.md).
    """

    def __init__(
        self,
        url: str,
        mode: str = "rb",
        *,
        client: Any = None,
        lazy: bool = False,
        **options: Any,
    ) -> None:
        if mode not in ("rb", "r"):
            raise ValueError(f"HttpFile is read-only binary: mode must be 'rb', not {mode!r}")
        file_options = FileOptions.from_kwargs(**options)
        remote = RemoteFile(url, file_options)
        runner = SyncRunner(
            make_transport(client, file_options.verify),
            *concurrency_limits(file_options.max_concurrency),
        )
        if not lazy:
            try:
                runner.run(remote.open())
            except BaseException:
                runner.close()
                raise
        self._setup(remote, runner, owns_remote=True)

    def _setup(self, remote: RemoteFile, runner: SyncRunner, *, owns_remote: bool) -> None:
        self._remote = remote
        self._runner = runner
        super().__init__(RawHttpReader(remote, runner, owns_remote=owns_remote), BUFFER_BYTES)
        _FILES.add(self)

    def __reduce__(self) -> tuple[Any, ...]:
        if self.closed or self._remote.closed:
            raise ValueError("cannot pickle a closed file")
        return (_revive, (self._remote.describe(), self.tell()))

    def _after_fork_in_child(self) -> None:
        if self.closed:
            return
        raw = self.raw
        if isinstance(raw, RawHttpReader) and raw.inherited_busy():
            # The buffered layer's lock is held by a parent thread that does not exist here:
            # initialising the buffered layer again gives it a new lock (and an empty buffer).
            io.BufferedReader.__init__(self, raw, BUFFER_BYTES)

    def clone(self) -> HttpFile:
        """An independent cursor (own position and access pattern) sharing this file's
        connection pool, cache, pinned identity, in-flight fetches and concurrency limit.
        Closing the clone leaves this file open; closing this file closes every clone."""
        if self.closed or self._remote.closed:
            raise ValueError("I/O operation on closed file.")
        twin = HttpFile.__new__(HttpFile)
        twin._setup(self._remote, self._runner, owns_remote=False)
        return twin

    def open(self) -> HttpFile:
        """Make the opening request now if it was not made (a lazy file); returns the file."""
        if self.closed or self._remote.closed:
            raise ValueError("I/O operation on closed file.")
        self._opened_remote()
        return self

    def _opened_remote(self) -> RemoteFile:
        """The RemoteFile, its opening request made first if it was not (a lazy file). What an
        open file learnt (size, etag) stays readable after close, as it always was."""
        if not self._remote.opened:
            if self.closed or self._remote.closed:
                raise ValueError("I/O operation on closed file.")
            raw = self.raw
            assert isinstance(raw, RawHttpReader)
            raw.ensure_open()
        return self._remote

    @property
    def url(self) -> str:
        return self._remote.url

    @property
    def stats(self) -> Stats:
        return self._remote.stats

    def read_ranges(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        """Read several ``(start, stop)`` ranges at once: close ranges are merged, the rest
        fetched concurrently. Ranges past the end are clamped, as ``read`` does."""
        if self.closed or self._remote.closed:
            raise ValueError("I/O operation on closed file.")
        return self._runner.run(self._remote.read_ranges(ranges))

    def prefetch(self, ranges: Sequence[tuple[int, int]]) -> int:
        """Bring ``(start, stop)`` ranges into the cache (planned as ``read_ranges`` plans
        them) so that later reads of them cost no request; returns the bytes fetched (0 when
        all were cached). Bytes beyond ``cache_bytes`` are evicted as any others."""
        if self.closed or self._remote.closed:
            raise ValueError("I/O operation on closed file.")
        return self._runner.run(self._remote.prefetch_ranges(ranges))

    def __repr__(self) -> str:
        if not self._remote.opened:
            return f"<rangeio.HttpFile url={self.url!r} (not opened yet)>"
        return f"<rangeio.HttpFile url={self.url!r} size={self._remote.size}>"


_FILES = ForkHooks(after_in_child="_after_fork_in_child")


def revived_runner(description: Description) -> SyncRunner:
    """The runner of a file unpickled here: the client the process's factory gives for the
    URL (``rangeio.set_client_factory``), else rangeio's own pool with the pickled ``verify``."""
    client, verify = client_for(description.url, description.options.verify)
    return SyncRunner(
        make_transport(client, verify), *concurrency_limits(description.options.max_concurrency)
    )


def _revive(description: Description, position: int) -> HttpFile:
    """Unpickle an HttpFile: no request until its first read (``RemoteFile.revived``)."""
    remote = RemoteFile.revived(description)
    file = HttpFile.__new__(HttpFile)
    file._setup(remote, revived_runner(description), owns_remote=True)
    file.seek(position)
    return file


def open(  # noqa: A001
    url: str, mode: str = "rb", *, client: Any = None, lazy: bool = False, **options: Any
) -> HttpFile:
    """Open ``url`` as a read-only binary file (``lazy``: at its first use). See HttpFile."""
    return HttpFile(url, mode, client=client, lazy=lazy, **options)
