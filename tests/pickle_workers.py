"""Functions that run in other processes (process pools, dask workers) on pickled rangeio files:
importable by name, so a spawned child finds them."""

from __future__ import annotations

import hashlib
import os
from typing import Any


def read_at(file: Any, n: int = 1000) -> tuple[int, int, str, int]:
    """(pid, position found, sha256 of the next ``n`` bytes, requests the file made here)."""
    position = file.tell()
    data = file.read(n)
    return os.getpid(), position, hashlib.sha256(data).hexdigest(), file.stats.requests


def read_error(file: Any) -> str:
    """The class name of what the first read raises here ("" if nothing)."""
    try:
        file.read(10)
    except Exception as exc:
        return type(exc).__name__
    return ""


def sha_of_rest(file: Any) -> str:
    return hashlib.sha256(file.read()).hexdigest()


_session: Any = None
_sent: list[str] = []


def counting_session(url: str) -> Any:
    """A client factory (``rangeio.set_client_factory``): one requests.Session per process,
    recording the URL of every response it gets."""
    global _session
    if _session is None:
        import requests

        _session = requests.Session()
        _session.hooks["response"].append(lambda r, *args, **kwargs: _sent.append(r.url))
    return _session


def read_through_factory(file: Any) -> tuple[bytes, int]:
    """The first 10 bytes, and how many responses the factory's session got for them."""
    before = len(_sent)
    return file.read(10), len(_sent) - before


def read_at_with_disk_hits(file: Any, n: int = 1000) -> tuple[str, int, int]:
    """(sha256 of the ``n`` bytes at the file's position, requests made here, disk hits here)."""
    data = file.read(n)
    return hashlib.sha256(data).hexdigest(), file.stats.requests, file.stats.disk_hits
