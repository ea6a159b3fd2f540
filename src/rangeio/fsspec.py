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

HTTP has no directory listing: ``ls``/``find``/``glob`` answer for a single file URL and raise
``NotImplementedError`` for anything that would need a listing.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from fsspec import AbstractFileSystem

from rangeio._core.options import FileOptions, check_borrowed_tls
from rangeio._sync.file import HttpFile
from rangeio._transport._urllib3 import make_pool
from rangeio.errors import HTTPStatusError

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
        **options: Any,
    ) -> None:
        fs_options = {k: options.pop(k) for k in list(options) if k in _FSSPEC_FS_KWARGS}
        super().__init__(*args, **fs_options)
        if target_protocol not in (None, "http", "https"):
            raise ValueError(
                f"rangeio reads http(s) URLs; it cannot be layered on {target_protocol!r}"
            )
        # target_options (the http filesystem's aiohttp options) are not used: rangeio has its own.
        FileOptions.from_kwargs(**options)  # a wrong option fails here, not at the first open
        # TLS belongs to the pool the files share: it is built here, once, not per file.
        verify = options.pop("verify", True)
        check_borrowed_tls(client, verify)
        self.options: dict[str, Any] = options
        self.client = client if client is not None else make_pool(verify, maxsize=_POOL_MAXSIZE)
        self._fo = fo
        self._infos: dict[str, dict[str, Any]] = {}

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
        return url

    def _open_file(self, url: str, **kwargs: Any) -> HttpFile:
        options = {**self.options}
        options.update((k, v) for k, v in kwargs.items() if k not in _FSSPEC_OPEN_KWARGS)
        with _translate_errors(url):
            f = HttpFile(url, client=self.client, **options)
        self._infos[url] = self._info_of(url, f)
        return f

    @staticmethod
    def _info_of(url: str, f: HttpFile) -> dict[str, Any]:
        info: dict[str, Any] = {"name": url, "size": f.size, "type": "file"}
        if f.etag is not None:
            info["etag"] = f.etag
        return info

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

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        url = self._url(path)
        if url.endswith("/"):
            raise NotImplementedError(_NO_LISTING.format(path=url))
        if url not in self._infos:
            # Opening costs one request; a one-byte range is enough to learn size and ETag.
            with self._open_file(url, prefetch_bytes=0):
                pass
        return dict(self._infos[url])

    def size(self, path: str) -> int:
        return int(self.info(path)["size"])

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
        if path is None:
            self._infos.clear()
        else:
            self._infos.pop(self._url(path), None)
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
        url = self._url(path)
        # "?" starts a query string in a URL; only "*" and "[" would be patterns.
        if "*" in url or "[" in url:
            raise NotImplementedError(_NO_LISTING.format(path=url))
        if kwargs.get("detail"):
            return {url: self.info(url)} if self.exists(url) else {}
        return [url] if self.exists(url) else []

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
        by_url: dict[str, list[int]] = {}
        for i, p in enumerate(paths):
            by_url.setdefault(self._url(p), []).append(i)
        out: list[bytes | Exception] = [b""] * len(paths)

        def read_one(url: str, slots: list[int]) -> None:
            try:
                with self._open_file(url, **kwargs) as f:
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

        if len(by_url) == 1:
            read_one(*next(iter(by_url.items())))
        else:
            with ThreadPoolExecutor(min(_FILES_AT_ONCE, len(by_url))) as pool:
                for future in [pool.submit(read_one, u, s) for u, s in by_url.items()]:
                    future.result()
        return out

    def ukey(self, path: str) -> str:
        info = self.info(path)
        return str(info.get("etag") or (info["name"], info["size"]))


__all__ = ["RangeioFileSystem"]
