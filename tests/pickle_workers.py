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
