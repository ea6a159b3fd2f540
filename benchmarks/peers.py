"""The libraries under test, each behind the same small interface.

Each ``Library`` opens a URL as a file object with read/seek/tell and closes it (and whatever
session it made) afterwards, so every run starts cold: no connection pool, cache or instance
carried over from the previous run. ``AsyncLibrary`` is the same for async files (awaited open,
read and close; ``clone()`` for more cursors), each run in its own event loop.
"""

from __future__ import annotations

import importlib
import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Opened:
    file: Any
    close: Callable[[], None]
    stats: Callable[[], dict[str, int] | None] = lambda: None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Library:
    name: str
    open: Callable[[str], Opened]
    kind: str  # "rangeio", "fsspec", "hctef", "local", "urllib3"
    version: str = ""


def rangeio_library(name: str = "rangeio", **options: Any) -> Library:
    import rangeio

    def open_(url: str) -> Opened:
        f = rangeio.open(url, **options)
        return Opened(f, f.close, lambda: f.stats.as_dict())

    return Library(name, open_, "rangeio", rangeio.__version__)


@dataclass
class AsyncOpened:
    file: Any  # seek/tell, ``await read(n)``, ``clone()``; rangeio.aio also ``read_ranges``
    close: Callable[[], Awaitable[None]]
    stats: Callable[[], dict[str, int] | None] = lambda: None


@dataclass
class AsyncLibrary:
    name: str
    open: Callable[[str], Awaitable[AsyncOpened]]
    kind: str  # "rangeio", "hctef"
    # Requests it keeps in flight at most for one file: what its ideal wall time assumes.
    max_concurrency: int


# rangeio's default for cursors (FileOptions.max_concurrency None: the connections kept per
# host, CONNECTIONS_PER_HOST), for rows that leave it unset.
RANGEIO_MAX_CONCURRENCY = 16


def rangeio_aio_library(name: str = "rangeio.aio", **options: Any) -> AsyncLibrary:
    import rangeio.aio

    # rangeio.aio imports its HTTP client (aiohttp here) on the first request: about 0.25 s
    # that would land in the first row's wall time when fsspec has not imported it already.
    try:
        importlib.import_module("aiohttp")
    except ImportError:
        pass  # rangeio falls back to httpx, or says what to install

    async def open_(url: str) -> AsyncOpened:
        f = await rangeio.aio.open(url, **options)
        return AsyncOpened(f, f.close, lambda: f.stats.as_dict())

    concurrency = options.get("max_concurrency", RANGEIO_MAX_CONCURRENCY)
    return AsyncLibrary(name, open_, "rangeio", concurrency)


def fsspec_library() -> Library | str:
    """fsspec's HTTPFileSystem with its defaults (5 MiB blocks, "bytes" cache); or why not."""
    try:
        import aiohttp
        import fsspec

        importlib.import_module("fsspec.implementations.http")  # fails without aiohttp
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"

    def open_(url: str) -> Opened:
        fs = fsspec.filesystem("http", skip_instance_cache=True)
        f = fs.open(url, "rb")

        def close() -> None:
            f.close()
            close_fsspec(fs)

        return Opened(f, close, extra={"fs": fs})

    return Library(
        "fsspec", open_, "fsspec", f"{fsspec.__version__} (aiohttp {aiohttp.__version__})"
    )


def new_fsspec_filesystem() -> Any:
    import fsspec

    return fsspec.filesystem("http", skip_instance_cache=True)


def close_fsspec(fs: Any) -> None:
    from fsspec.implementations.http import HTTPFileSystem

    session = getattr(fs, "_session", None)
    if session is not None:
        HTTPFileSystem.close_session(fs.loop, session)
        fs._session = None


async def new_fsspec_async_filesystem() -> Any:
    """fsspec's HTTPFileSystem in async mode, its aiohttp session made in the running loop."""
    import fsspec

    fs = fsspec.filesystem("http", asynchronous=True, skip_instance_cache=True)
    await fs.set_session()
    return fs


async def close_fsspec_async(fs: Any) -> None:
    session, fs._session = fs._session, None
    if session is not None:
        await session.close()


def hctef_library() -> Library | str:
    """hctef's sync HttpFile with its defaults (1 MiB blocks, disk cache in a fresh dir)."""
    try:
        import hctef
    except ImportError as exc:
        # hctef declares Python >= 3.12, but its sync HttpFile runs on 3.11 (only hctef.aio
        # uses 3.12 syntax), so pip needs to be told to install it anyway.
        hint = ""
        if sys.version_info < (3, 12):
            hint = "; on Python < 3.12: pip install --ignore-requires-python hctef"
        return f"{type(exc).__name__}: {exc}{hint}"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"

    def open_(url: str) -> Opened:
        cache_dir = tempfile.mkdtemp(prefix="hctef-bench-")
        try:
            f = hctef.HttpFile(url, cache_dir=cache_dir).open()
        except BaseException:
            shutil.rmtree(cache_dir, ignore_errors=True)
            raise

        def close() -> None:
            f.close()
            shutil.rmtree(cache_dir, ignore_errors=True)

        return Opened(f, close)

    return Library("hctef", open_, "hctef", hctef.__version__)


def hctef_aio_library(**options: Any) -> AsyncLibrary | str:
    """hctef.aio's AsyncHttpFile (aiohttp, 1 MiB blocks in a fresh cache dir); or why not."""
    # hctef.aio is written with 3.12-only syntax (PEP 695 generics): importing it on 3.11 is a
    # SyntaxError, so do not even try.
    if sys.version_info < (3, 12):
        return "Python < 3.12"
    try:
        from hctef.aio import AsyncHttpFile
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"

    async def open_(url: str) -> AsyncOpened:
        cache_dir = tempfile.mkdtemp(prefix="hctef-bench-")
        f = AsyncHttpFile(url, cache_dir=cache_dir, **options)
        try:
            await f.open()
        except BaseException:
            shutil.rmtree(cache_dir, ignore_errors=True)
            raise

        async def close() -> None:
            try:
                await f.close()
            finally:
                shutil.rmtree(cache_dir, ignore_errors=True)

        return AsyncOpened(f, close)

    name = " ".join(["hctef.aio", *(f"{k}={v}" for k, v in options.items())])
    concurrency = options.get("max_concurrency", 8)  # AsyncHttpFile's default
    return AsyncLibrary(name, open_, "hctef", concurrency)


@dataclass
class Peers:
    fsspec: Library | None
    hctef: Library | None
    unavailable: dict[str, str]
    hctef_aio: AsyncLibrary | None = None  # with its defaults; scenarios make their variants


def find_peers() -> Peers:
    unavailable: dict[str, str] = {}
    fs = fsspec_library()
    if isinstance(fs, str):
        unavailable["fsspec"] = fs
        fs = None
    hc = hctef_library()
    if isinstance(hc, str):
        unavailable["hctef"] = hc
        hc = None
    hc_aio = hctef_aio_library()
    if isinstance(hc_aio, str):
        unavailable["hctef async"] = hc_aio
        hc_aio = None
    return Peers(fs, hc, unavailable, hc_aio)
