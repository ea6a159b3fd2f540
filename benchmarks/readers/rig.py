"""The real-reader benchmarks' shared rig: the served folder, the sides compared, one measured run.

A *side* is how a reader reaches HTTP: ``rangeio`` (``rangeio.open`` file objects and a fresh
``RangeioFileSystem``, the ``rangeio`` fsspec protocol), ``fsspec`` (a fresh
``fsspec.filesystem("http")`` with its defaults) or ``GDAL /vsicurl/`` (rasterio given a
``/vsicurl/`` path). Each run gets a new session of its side (new files, a new filesystem
instance, its own pool), closed afterwards, so every row starts cold. The proxy counts requests,
round trips, connections, response bytes and body bytes; rangeio's own ``stats`` (summed over
every remote file the session opened) is compared with the proxy's body bytes.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parent.parent
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

from fixtures import load_nginx_class  # noqa: E402  (puts tests/ on the path too)
from harness import Meter, Row, measure  # noqa: E402
from peers import close_fsspec  # noqa: E402
from proxy import ProxyProcess  # noqa: E402

# Stats must match what the proxy saw within this (issue 12: "within 1 %").
STATS_TOLERANCE = 0.01


class Session:
    """One cold use of a side: open files, give a filesystem, sum rangeio's stats, close."""

    name = ""
    kind = ""

    def __init__(self) -> None:
        self._closers: list[Callable[[], None]] = []
        self._fs: Any = None

    def open(self, url: str) -> Any:
        """A file object for ``url``, as a user of the side gets one."""
        raise NotImplementedError

    def filesystem(self, **kwargs: Any) -> Any:
        raise NotImplementedError

    def url(self, url: str) -> str:
        """``url`` as this side's filesystem takes it (fsspec URL form)."""
        return url

    def stats(self) -> dict[str, int] | None:
        return None

    def close(self) -> None:
        for closer in reversed(self._closers):
            try:
                closer()
            except Exception as exc:  # a failing close must not hide the row's numbers
                print(f"    ({self.name}: close failed: {type(exc).__name__}: {exc})")
        self._closers.clear()


class RangeioSession(Session):
    name = kind = "rangeio"

    def __init__(self) -> None:
        super().__init__()
        self._stats: dict[int, Any] = {}  # id -> Stats: a shared remote file counts once

    def _record(self, f: Any) -> Any:
        self._stats[id(f.stats)] = f.stats
        return f

    def open(self, url: str) -> Any:
        import rangeio

        f = self._record(rangeio.open(url))
        self._closers.append(f.close)
        return f

    def filesystem(self, **kwargs: Any) -> Any:
        if self._fs is not None and not kwargs:
            return self._fs
        from rangeio.fsspec import RangeioFileSystem

        # skip_instance_cache: fsspec would hand back an earlier row's (warm) instance.
        fs = RangeioFileSystem(skip_instance_cache=True, **kwargs)
        self.watch(fs)
        if not kwargs:
            self._fs = fs
        return fs

    def watch(self, fs: Any) -> None:
        """Count the stats of every remote file ``fs`` opens, sync or async.

        The filesystem shares one remote file per URL; its ``stats`` are those of that file.
        The benchmark reaches it through the private ``_acquire``/``_aacquire`` because a reader
        (zarr's store, DuckDB) never hands the benchmark its file objects.
        """
        acquire, aacquire = fs._acquire, fs._aacquire

        def _acquire(url: str) -> Any:
            return self._record(acquire(url))

        async def _aacquire(url: str) -> Any:
            return self._record(await aacquire(url))

        fs._acquire, fs._aacquire = _acquire, _aacquire

    def url(self, url: str) -> str:
        return "rangeio://" + url

    def stats(self) -> dict[str, int] | None:
        total: dict[str, int] = {}
        for stats in self._stats.values():
            for key, value in stats.as_dict().items():
                total[key] = total.get(key, 0) + value
        return total


class FsspecSession(Session):
    name = kind = "fsspec"

    def open(self, url: str) -> Any:
        f = self.filesystem().open(url, "rb")
        self._closers.append(f.close)
        return f

    def filesystem(self, **kwargs: Any) -> Any:
        if self._fs is not None and not kwargs:
            return self._fs
        import fsspec

        fs = fsspec.filesystem("http", skip_instance_cache=True, **kwargs)
        if not kwargs.get("asynchronous"):
            self._closers.insert(0, lambda: close_fsspec(fs))
        if not kwargs:
            self._fs = fs
        return fs

    def watch(self, fs: Any) -> None:
        pass


class GdalSession(Session):
    name = "GDAL /vsicurl/"
    kind = "gdal"


SIDES: dict[str, type[Session]] = {
    "rangeio": RangeioSession,
    "fsspec": FsspecSession,
    "gdal": GdalSession,
}


@dataclass
class Job:
    """One reader doing one thing. ``run(session, url)`` drives the reader and checks every
    result against the local file (raising ``VerificationError``); it returns notes."""

    key: str
    title: str
    file: str  # the served file (or folder) it reads
    run: Callable[[Session, str], str | None]
    sides: tuple[str, ...] = ("rangeio", "fsspec")
    # Each run reads its own hard link of the file (``cog-run3.tif``): GDAL keeps a process-wide
    # /vsicurl/ cache (and rasterio's opener a VSI plugin cache) keyed by the name, which would
    # warm the next row. A name, not a query: a query string turns off GDAL's sidecar probes
    # (``.aux.xml``, ``.msk``, ...) for the /vsicurl/ side only, and every side must be asked the same.
    fresh_name: bool = False


class Served:
    """nginx serving a temp folder, behind the delaying, counting proxy."""

    def __init__(self, delay_ms: float) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="rangeio-bench-readers-")
        self.nginx = load_nginx_class()(Path(self._tmp.name))
        self.www: Path = self.nginx.www
        self.delay_ms = delay_ms
        self.proxy: ProxyProcess | None = None
        self.runs = 0

    def start(self) -> None:
        self.nginx.start()
        self.proxy = ProxyProcess(self.nginx.port, self.delay_ms)

    def url(self, name: str) -> str:
        assert self.proxy is not None
        return f"{self.proxy.origin}/{name}"

    def close(self) -> None:
        try:
            if self.proxy is not None:
                self.proxy.close()
        finally:
            self.nginx.stop()
            self._tmp.cleanup()

    def run(self, job: Job, side: str) -> Row:
        """One cold, measured run of ``job`` on ``side``."""
        assert self.proxy is not None
        proxy = self.proxy
        self.runs += 1
        name = job.file
        if job.fresh_name:
            stem, dot, ext = job.file.rpartition(".")
            name = f"{stem}-run{self.runs}{dot}{ext}"
            os.link(self.www / job.file, self.www / name)
        url = self.url(name)
        session = SIDES[side]()
        label = session.name

        def body(meter: Meter, row: Row) -> None:
            meter.start()
            try:
                note = job.run(session, url)
                meter.stop()
                if note:
                    row.notes.append(note)
            finally:
                session.close()
            row.library_stats = session.stats()

        print(f"    {job.key}: {label} ...", flush=True)
        row = measure(proxy, label, body)
        row.extra["body_bytes"] = proxy.snapshot()["body_bytes"]
        return row


def stats_vs_proxy(row: Row) -> tuple[str, str | None]:
    """rangeio's ``stats.bytes_fetched`` against the proxy's body bytes: the cell, and an error
    if they differ by more than 1 % (None when they agree or the row has no stats)."""
    if row.library_stats is None:
        return "-", None
    fetched = row.library_stats["bytes_fetched"]
    seen = row.extra["body_bytes"]
    diff = fetched - seen
    cell = "equal" if diff == 0 else f"{diff:+,} B ({diff / max(seen, 1):+.2%})"
    row.notes.append(f"stats.bytes_fetched {fetched:,} vs proxy bodies {seen:,}")
    if abs(diff) > STATS_TOLERANCE * max(seen, 1):
        return (
            cell,
            f"stats.bytes_fetched {fetched} differs from the proxy's {seen} by more than 1 %",
        )
    return cell, None
