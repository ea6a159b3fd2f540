"""An fsspec filesystem over rangeio: ``fsspec.filesystem("rangeio")``.

Paths are full ``http://`` or ``https://`` URLs. These forms reach it:

- ``fsspec.filesystem("rangeio", **options).open("https://host/file.parquet")``
- ``"rangeio://https://host/file.parquet"`` (pandas, dask, ``fsspec.open``)
- ``"rangeio::https://host/file.parquet"`` (fsspec's chaining; ``fsspec.open`` and ``url_to_fs``,
  not pandas, which takes it for a local path). fsspec resolves the inner ``https`` part with its
  own http filesystem class, so this form needs aiohttp importable; ``rangeio://`` does not.

Options (``storage_options``) are rangeio's: ``client`` and every option of ``rangeio.open``
(``prefetch_bytes``, ``cache_bytes``, ``headers``, ``retries``, ``timeout``, ``verify``, ...).
With no client, the filesystem keeps one urllib3 pool that all its files share.

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

The filesystem is synchronous (``async_impl`` False). It accepts fsspec's ``asynchronous`` and
``loop`` arguments so that async callers can set it up: zarr's ``FsspecStore.from_url`` then
wraps it in fsspec's ``AsyncFileSystemWrapper``, which runs each call in a worker thread.
"""

from __future__ import annotations

import errno
import hashlib
import os
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

from fsspec import AbstractFileSystem

from rangeio._core.options import FileOptions, check_borrowed_tls
from rangeio._core.redirects import check_url
from rangeio._core.sharing import MAX_SHARED_FILES, SHARE_SECONDS, SharedFiles, version_key
from rangeio._sync.file import HttpFile
from rangeio._transport._urllib3 import make_pool
from rangeio.errors import HTTPStatusError, UrlError

try:  # fsspec >= 2025.10: marks a filesystem that takes the chained path ("rangeio::http://...")
    from fsspec.implementations.chained import ChainedFileSystem as _Base
except ImportError:  # pragma: no cover - older fsspec: the path arrives as ``fo`` (see _url)
    _Base = AbstractFileSystem

# fsspec's own knobs for its buffered files; rangeio plans its reads and keeps its own cache.
_FSSPEC_OPEN_KWARGS = frozenset({"block_size", "cache_options", "cache_type", "autocommit"})
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


class SharedHttpFile(HttpFile):
    """A cursor on a remote file the filesystem shares; closing it tells the filesystem."""

    _release: Any

    def close(self) -> None:
        release, self._release = getattr(self, "_release", None), None
        try:
            super().close()
        finally:
            if release is not None:
                release()


class RangeioFileSystem(_Base):  # type: ignore[misc]
    """Read-only fsspec filesystem whose files are ``rangeio.HttpFile`` objects."""

    protocol = "rangeio"
    root_marker = ""

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
        **options: Any,
    ) -> None:
        fs_options = {k: options.pop(k) for k in list(options) if k in _FSSPEC_FS_KWARGS}
        super().__init__(*args, **fs_options)
        if target_protocol not in (None, "http", "https"):
            raise ValueError(
                f"rangeio reads http(s) URLs; it cannot be layered on {target_protocol!r}"
            )
        # target_options (the http filesystem's aiohttp options) are not used: rangeio has its own.
        # asynchronous/loop are accepted, not used: this filesystem is synchronous (async_impl is
        # False), which tells async callers (zarr) to wrap it in threads; see the module doc.
        FileOptions.from_kwargs(**options)  # a wrong option fails here, not at the first open
        # TLS belongs to the pool the files share: it is built here, once, not per file.
        verify = options.pop("verify", True)
        check_borrowed_tls(client, verify)
        self.options: dict[str, Any] = options
        self.client = client if client is not None else make_pool(verify, maxsize=_POOL_MAXSIZE)
        self._fo = fo
        self._shared: SharedFiles[HttpFile] = SharedFiles(max_shared_files, share_seconds)
        self._lock = threading.RLock()
        # One lock per URL being opened: concurrent first opens of a URL make one remote file.
        self._opening: dict[str, threading.Lock] = {}
        self._pid = os.getpid()

    def _check_fork(self) -> None:
        if self._pid != os.getpid():
            # A forked child: a parent thread may have held these locks at the fork, and it does
            # not exist here. (The shared files themselves handle the fork: see HttpFile.)
            self._pid = os.getpid()
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
            with _translate_errors(url):
                root = HttpFile(url, client=self.client, **self.options)
            with self._lock:
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
            twin._release = None
            twin._setup(root._remote, root._runner, owns_remote=False)
        except BaseException:
            self._release(url, root)
            raise
        twin._release = lambda: self._release(url, root)
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
        if self._strip_protocol(path).endswith("/"):
            raise NotImplementedError(_NO_LISTING.format(path=self._strip_protocol(path)))
        url = self._url(path)
        with self._known(url) as f:
            info: dict[str, Any] = {"name": url, "size": f.size, "type": "file"}
            identity = f._remote.identity
        if identity is not None and identity.etag is not None:
            info["etag"] = identity.etag.header_value()
        if identity is not None and identity.last_modified is not None:
            info["last_modified"] = identity.last_modified
        return info

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
        except (FileNotFoundError, PermissionError, NotImplementedError):
            return False
        except HTTPStatusError as exc:
            if 400 <= exc.status < 500:
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
        with self._lock:
            self._shared.discard(None if path is None else self._strip_protocol(path))
            retired = self._shared.retired()
        self._close_all(retired)
        super().invalidate_cache(path)

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
        starts_list = list(starts) if isinstance(starts, Sequence) else [starts] * len(paths)
        ends_list = list(ends) if isinstance(ends, Sequence) else [ends] * len(paths)
        if len(starts_list) != len(paths) or len(ends_list) != len(paths):
            raise ValueError("paths, starts and ends must have the same length")
        by_path: dict[str, list[int]] = {}
        for i, p in enumerate(paths):
            by_path.setdefault(self._strip_protocol(p), []).append(i)
        out: list[bytes | Exception] = [b""] * len(paths)

        def read_one(path: str, slots: list[int]) -> None:
            try:
                with self._open_file(self._url(path), **kwargs) as f:
                    spans = [_resolve(starts_list[i], ends_list[i], f.size) for i in slots]
                    wanted = [(i, span) for i, span in zip(slots, spans) if span[0] < span[1]]
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


__all__ = ["RangeioFileSystem", "SharedHttpFile"]
