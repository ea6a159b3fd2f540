"""Measuring one library in one scenario: proxy counters, wall time, and byte verification."""

from __future__ import annotations

import io
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from proxy import ProxyProcess

MiB = 1024 * 1024
LOG_REQUESTS = 12  # requests kept per row in the JSON (method, range, status, bytes, time)


class VerificationError(AssertionError):
    """A library returned bytes that differ from the source file."""


@dataclass
class Row:
    library: str
    requests: int = 0
    round_trips: int = 0
    connections: int = 0
    response_bytes: int = 0
    wall_s: float = 0.0
    target: str = "-"
    ok: bool | None = None  # None: no target for this row
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    verified: bool = False
    open_requests: int | None = None
    open_bytes: int | None = None
    library_stats: dict[str, int] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    log: list[dict[str, Any]] = field(default_factory=list)

    @property
    def mib(self) -> float:
        return self.response_bytes / MiB

    @property
    def status(self) -> str:
        if self.error is not None:
            return "MISMATCH" if self.error.startswith("MISMATCH") else "ERROR"
        if self.ok is None:
            return "-"
        return "ok" if self.ok else "FAIL"

    def as_json(self) -> dict[str, Any]:
        return {
            "library": self.library,
            "requests": self.requests,
            "round_trips": self.round_trips,
            "connections": self.connections,
            "response_bytes": self.response_bytes,
            "mib": round(self.mib, 4),
            "wall_s": round(self.wall_s, 4),
            "target": self.target,
            "status": self.status,
            "notes": self.notes,
            "error": self.error,
            "verified": self.verified,
            "open_requests": self.open_requests,
            "open_bytes": self.open_bytes,
            "library_stats": self.library_stats,
            "extra": self.extra,
            "log": self.log,
        }


class Meter:
    """Times a run and reads the proxy's counters for exactly that run.

    ``start()`` resets the proxy's counters and starts the clock (put it right before the open);
    ``opened()`` notes what the open cost; ``stop()`` stops the clock (after the last read,
    before closing, so teardown is not timed). The counters are read after the close.
    """

    def __init__(self, proxy: ProxyProcess) -> None:
        self.proxy = proxy
        self.t0 = 0.0
        self.wall = 0.0
        self.open_snapshot: dict[str, Any] | None = None

    def start(self) -> None:
        self.proxy.reset()
        self.t0 = time.perf_counter()

    def opened(self) -> None:
        self.open_snapshot = self.proxy.snapshot()

    def stop(self) -> float:
        self.wall = time.perf_counter() - self.t0
        return self.wall


def measure(
    proxy: ProxyProcess, library: str, body: Callable[[Meter, Row], None], *, quiet: bool = False
) -> Row:
    """Run ``body`` (which drives the library and verifies bytes) and fill a Row from the proxy."""
    row = Row(library)
    meter = Meter(proxy)
    try:
        body(meter, row)
        row.verified = True
    except VerificationError as exc:
        row.error = f"MISMATCH: {exc}"
        print(f"\n!!! {library}: BYTES DIFFER FROM THE SOURCE: {exc}\n", flush=True)
    except Exception as exc:
        row.error = f"{type(exc).__name__}: {exc}"
        if not quiet:
            print(f"\n!!! {library}: {row.error}", flush=True)
            traceback.print_exc()
    snap = proxy.snapshot(LOG_REQUESTS)
    row.requests = snap["requests"]
    row.round_trips = snap["round_trips"]
    row.connections = snap["connections"]
    row.response_bytes = snap["response_bytes"]
    row.log = snap["log"]
    row.wall_s = meter.wall
    if meter.open_snapshot is not None:
        row.open_requests = meter.open_snapshot["requests"]
        row.open_bytes = meter.open_snapshot["response_bytes"]
    return row


class _Checked:
    """Position tracking and the byte check that Verified and AsyncVerified share."""

    def __init__(self, inner: Any, source: bytes, library: str) -> None:
        self._inner = inner
        self._source = source
        self._library = library
        self._pos = inner.tell()
        self.bytes_checked = 0

    def _check(self, data: bytes | memoryview, asked: int | None) -> None:
        pos = self._pos
        size = len(self._source)
        n = len(data)
        expected_len = max(size - pos, 0) if asked is None or asked < 0 else min(asked, size - pos)
        if n != max(expected_len, 0):
            raise VerificationError(
                f"{self._library}: read({asked}) at {pos} returned {n} bytes, expected {expected_len}"
            )
        if data != self._source[pos : pos + n]:
            raise VerificationError(
                f"{self._library}: bytes {pos}..{pos + n} differ from the source"
            )
        self._pos = pos + n
        self.bytes_checked += n

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._inner.seek(offset, whence)
        self._pos = self._inner.tell()
        return self._pos

    def tell(self) -> int:
        return self._pos


class Verified(_Checked):
    """A file wrapper that checks every byte a read returns against the source.

    It forwards read/readinto/seek/tell and tracks the position itself (asking the file after
    each seek). A short read before EOF counts as a mismatch: these are buffered files.
    """

    # what zipfile and pyarrow look at
    mode = "rb"

    @property
    def closed(self) -> bool:
        return bool(getattr(self._inner, "closed", False))

    @property
    def name(self) -> str:
        return str(getattr(self._inner, "name", "verified"))

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def close(self) -> None:
        pass  # the measured body closes the inner file itself

    def read(self, size: int | None = -1) -> bytes:
        data = self._inner.read() if size is None or size < 0 else self._inner.read(size)
        self._check(data, size)
        return bytes(data)

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if hasattr(self._inner, "readinto"):
            n = self._inner.readinto(view)
        else:
            data = self._inner.read(len(view))
            n = len(data)
            view[:n] = data
        self._check(view[:n], len(view))
        return n


class AsyncVerified(_Checked):
    """Verified for an async file (a rangeio.aio or hctef.aio cursor): ``await read(n)``,
    with the same checks; seek and tell stay synchronous, as on those cursors."""

    async def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            data = await self._inner.read()
        else:
            data = await self._inner.read(size)
        self._check(data, size)
        return bytes(data)


def check_slice(library: str, source: bytes, start: int, stop: int, got: bytes) -> None:
    """``got`` must be exactly ``source[start:stop]``."""
    if got != source[start:stop]:
        raise VerificationError(
            f"{library}: range {start}..{stop} differs from the source "
            f"({len(got)} bytes for {stop - start})"
        )


def check_ranges(
    library: str, source: bytes, ranges: list[tuple[int, int]], got: list[bytes]
) -> None:
    """A vectored read's results: one per ``(start, stop)`` range, in order, each exact."""
    if len(got) != len(ranges):
        raise VerificationError(f"{library}: {len(got)} results for {len(ranges)} ranges")
    for (start, stop), data in zip(ranges, got):
        check_slice(library, source, start, stop, data)


def check_equal(library: str, what: str, got: Any, expected: Any) -> None:
    if got != expected:
        raise VerificationError(f"{library}: {what} differs from the source")
