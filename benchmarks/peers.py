"""The libraries under test, each behind the same small interface.

Each ``Library`` opens a URL as a file object with read/seek/tell and closes it (and whatever
session it made) afterwards, so every run starts cold: no connection pool, cache or instance
carried over from the previous run.
"""

from __future__ import annotations

import importlib
import shutil
import sys
import tempfile
from collections.abc import Callable
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


@dataclass
class Peers:
    fsspec: Library | None
    hctef: Library | None
    unavailable: dict[str, str]


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
    return Peers(fs, hc, unavailable)
