"""SharedFiles: which remote files a filesystem keeps for later opens of a URL, and how long."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar

from rangeio._core.identity import Identity

T = TypeVar("T")

# Idle remote files one filesystem keeps. Judgement call: a scan opens each part several times
# (DuckDB 4, dask's read_parquet 6, a pyarrow dataset 2, in a planning phase and a reading
# phase), so the parts of one scan should still be there when the reading phase comes back.
# An idle file holds what its cache holds: usually the open's prefetch (1 MiB by default),
# at most ``cache_bytes``. 32 covers the scans of small and medium datasets at ~32 MiB in the
# common case; a larger dataset costs a second footer per part beyond it, not a wrong byte.
MAX_SHARED_FILES = 32
# How long an idle shared file's pinned identity is trusted for a new open. Judgement call:
# the opens of one reader come within a second or two of each other, while a file rewritten on
# the server should be seen by the next job. fsspec's own filesystems trust their listings
# for the life of the instance unless ``listings_expiry_time`` is set; rangeio is stricter.
# While any file on it is open a shared file is reused whatever its age: its requests still
# carry the pinned identity (If-Match / If-Range), so a change is refused, never mixed in.
SHARE_SECONDS = 30.0


@dataclass
class _Entry(Generic[T]):
    value: T
    users: int
    last_used: float


class SharedFiles(Generic[T]):
    """An LRU table of shared values (remote files) by key (URL), with a trust period.

    The caller passes the clock (``now``, seconds) and closes what ``retired()`` hands back:
    values no longer in the table and no longer used. No I/O, no locking: the caller holds a
    lock around every call.
    """

    def __init__(
        self, max_idle: int = MAX_SHARED_FILES, trust_seconds: float = SHARE_SECONDS
    ) -> None:
        if max_idle < 0:
            raise ValueError("max_shared_files must be >= 0")
        if trust_seconds < 0:
            raise ValueError("share_seconds must be >= 0")
        self.max_idle = max_idle
        self.trust_seconds = trust_seconds
        self._table: OrderedDict[str, _Entry[T]] = OrderedDict()
        # Entries dropped from the table while in use: retired when their last user leaves.
        self._detached: dict[int, _Entry[T]] = {}
        self._retired: list[T] = []

    def __len__(self) -> int:
        return len(self._table)

    def __contains__(self, key: str) -> bool:
        return key in self._table

    def take(self, key: str, now: float) -> T | None:
        """The shared value for ``key`` with one more user, or None (open one and ``add`` it).
        An idle value not used for longer than the trust period is retired, not returned."""
        entry = self._table.get(key)
        if entry is None:
            return None
        if entry.users == 0 and now - entry.last_used > self.trust_seconds:
            del self._table[key]
            self._retired.append(entry.value)
            return None
        entry.users += 1
        entry.last_used = now
        self._table.move_to_end(key)
        return entry.value

    def add(self, key: str, value: T, now: float) -> None:
        """Share ``value`` (just opened, with one user) under ``key``."""
        old = self._table.pop(key, None)
        if old is not None:
            self._detach(old)
        self._table[key] = _Entry(value, 1, now)
        self._evict(now)

    def release(self, key: str, value: T, now: float) -> None:
        """One user of ``value`` is done with it."""
        entry = self._table.get(key)
        if entry is not None and entry.value is value:
            entry.users = max(0, entry.users - 1)
            entry.last_used = now
            self._evict(now)
            return
        detached = self._detached.get(id(value))
        if detached is not None:
            detached.users -= 1
            if detached.users <= 0:
                del self._detached[id(value)]
                self._retired.append(detached.value)

    def discard(self, key: str | None = None) -> None:
        """Forget ``key`` (every key with None): the next open opens afresh. Values in use stay
        usable by their users and are retired when the last one leaves."""
        keys = list(self._table) if key is None else [key]
        for k in keys:
            entry = self._table.pop(k, None)
            if entry is not None:
                self._detach(entry)

    def retired(self) -> list[T]:
        """Values the caller must close now (each handed back once)."""
        out, self._retired = self._retired, []
        return out

    def drain(self) -> list[T]:
        """Every value, in use or not, and an empty table: for closing them all at once."""
        values = [e.value for e in self._table.values()]
        values += [e.value for e in self._detached.values()]
        values += self._retired
        self._table.clear()
        self._detached.clear()
        self._retired = []
        return values

    def _detach(self, entry: _Entry[T]) -> None:
        if entry.users > 0:
            self._detached[id(entry.value)] = entry
        else:
            self._retired.append(entry.value)

    def _evict(self, now: float) -> None:
        """Retire idle entries past their trust period, then the least recently used idle ones
        beyond ``max_idle`` (entries in use are never evicted: their files hold them)."""
        idle = [k for k, e in self._table.items() if e.users == 0]
        expired = [k for k in idle if now - self._table[k].last_used > self.trust_seconds]
        for k in expired:
            self._retired.append(self._table.pop(k).value)
        idle = [k for k in idle if k in self._table]
        for k in idle[: max(0, len(idle) - self.max_idle)]:
            self._retired.append(self._table.pop(k).value)


def version_key(identity: Identity | None, size: int) -> str | None:
    """A key that changes when the remote file does (fsspec's ``ukey``/``checksum``), or None
    when nothing about the file can tell its versions apart.

    From the strongest validator the server sent: a strong ETag (byte-for-byte identity,
    RFC 9110 §8.8.3), else Last-Modified with the size (§8.8.2: one-second resolution, so the
    size guards against a rewrite within the same second), else a weak ETag with the size.
    """
    if identity is None:
        return None
    etag = identity.etag
    if etag is not None and not etag.weak:
        basis = f"etag:{etag.header_value()}"
    elif identity.last_modified is not None:
        basis = f"last-modified:{identity.last_modified}:size:{size}"
    elif etag is not None:
        basis = f"weak-etag:{etag.header_value()}:size:{size}"
    else:
        return None
    return hashlib.sha256(basis.encode()).hexdigest()
