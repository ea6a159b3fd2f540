"""The seven sync scenarios. Each returns a Scenario: one Row per library, targets judged on rangeio.

The async ones (8 and up) are in scenarios_async.py; run.py puts both registries together.
"""

from __future__ import annotations

import io
import random
import statistics
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fixtures import SEED, Fixtures, Sizes
from harness import (
    Meter,
    MiB,
    Row,
    VerificationError,
    Verified,
    check_equal,
    check_ranges,
    measure,
)
from peers import Library, Peers, close_fsspec, new_fsspec_filesystem, rangeio_library
from proxy import ProxyProcess

KiB = 1024


@dataclass
class Context:
    fixtures: Fixtures
    proxy: ProxyProcess
    peers: Peers
    sizes: Sizes
    delay_ms: float
    progress: Callable[[str], None] = print

    @property
    def big(self) -> bytes:
        return self.fixtures.big

    def url(self, name: str) -> str:
        return self.fixtures.urls[name]

    def peer_libraries(self) -> list[Library]:
        return [lib for lib in (self.peers.fsspec, self.peers.hctef) if lib is not None]


@dataclass
class Scenario:
    key: str
    number: int
    title: str
    rows: list[Row]
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


# -- shared drivers ---------------------------------------------------------------------------


def run_file(
    ctx: Context,
    lib: Library,
    url: str,
    source: bytes,
    drive: Callable[[Verified, Row], None],
) -> Row:
    """Open ``url`` with ``lib``, run ``drive`` on a verifying wrapper, close; one Row."""

    def body(meter: Meter, row: Row) -> None:
        meter.start()
        opened = lib.open(url)
        try:
            meter.opened()
            f = Verified(opened.file, source, lib.name)
            drive(f, row)
            meter.stop()
            row.library_stats = opened.stats()
            row.extra["bytes_verified"] = f.bytes_checked
        finally:
            opened.close()

    ctx.progress(f"    {lib.name} ...")
    return measure(ctx.proxy, lib.name, body)


def file_libraries(ctx: Context, *extra_rangeio: Library) -> list[Library]:
    return [rangeio_library(), *extra_rangeio, *ctx.peer_libraries()]


def judge(row: Row, target: str, ok: bool) -> None:
    row.target = target
    if row.error is None:
        row.ok = ok


def reads_only(row: Row) -> tuple[int, int]:
    """Requests and response bytes after the open."""
    return row.requests - (row.open_requests or 0), row.response_bytes - (row.open_bytes or 0)


# -- 1. zip -------------------------------------------------------------------------------------


def scenario_zip(ctx: Context) -> Scenario:
    fx = ctx.fixtures.zip
    assert fx is not None

    def drive(f: Verified, row: Row) -> None:
        with zipfile.ZipFile(f) as zf:
            check_equal(row.library, "the member list", zf.namelist(), fx.names)
            check_equal(row.library, f"member {fx.member}", zf.read(fx.member), fx.member_data)

    rows = [run_file(ctx, lib, ctx.url("many.zip"), fx.data, drive) for lib in file_libraries(ctx)]
    for row in rows:
        if row.library.startswith("rangeio"):
            # The open's 16 KiB suffix (ZIP_END_PREFETCH) holds the end record, the first read
            # of the directory fetches the rest of it, then the member. A suffix holding this
            # ~330 KB directory (1 MiB: 2 requests) would cost a wheel's METADATA 25x fsspec's
            # bytes (benchmarks/readers); here it costs 1.0 MiB against 0.35 MiB.
            judge(row, "<= 3 requests", row.requests <= 3)
    title = (
        f"zip: list {len(fx.names)} members with zipfile, read one "
        f"({len(fx.data) / MiB:.1f} MiB file)"
    )
    return Scenario("zip", 1, title, rows)


# -- 2. parquet ---------------------------------------------------------------------------------


def scenario_parquet(ctx: Context) -> Scenario:
    import pyarrow.parquet as pq

    fx = ctx.fixtures.parquet
    assert fx is not None

    def drive(f: Verified, row: Row) -> None:
        pf = pq.ParquetFile(f)
        check_equal(row.library, "row group count", pf.metadata.num_row_groups, fx.num_row_groups)
        table = pf.read_row_group(fx.row_group, columns=fx.columns)
        if not table.equals(fx.expected):
            raise VerificationError(f"{row.library}: row group {fx.row_group} differs")

    url = ctx.url("table.parquet")
    rows = [run_file(ctx, lib, url, fx.data, drive) for lib in file_libraries(ctx)]
    for row in rows:
        if row.library.startswith("rangeio"):
            judge(row, "<= 3 requests", row.requests <= 3)
    title = (
        f"parquet: footer + {len(fx.columns)} column chunks of row group {fx.row_group} "
        f"({fx.num_row_groups} row groups, {len(fx.data) / MiB:.1f} MiB file)"
    )
    return Scenario("parquet", 2, title, rows)


# -- 3. tail ------------------------------------------------------------------------------------


def scenario_tail(ctx: Context) -> Scenario:
    tail = 64 * KiB

    def drive(f: Verified, row: Row) -> None:
        f.seek(-tail, io.SEEK_END)
        f.read(tail)

    rows = [run_file(ctx, lib, ctx.url("big.bin"), ctx.big, drive) for lib in file_libraries(ctx)]
    for row in rows:
        if row.library.startswith("rangeio"):
            judge(row, "1 request", row.requests == 1)
    title = f"tail: the last 64 KiB of a {len(ctx.big) / MiB:.0f} MiB file"
    return Scenario("tail", 3, title, rows)


# -- 4. random reads ----------------------------------------------------------------------------


def random_offsets(sizes: Sizes, file_size: int) -> list[int]:
    rng = random.Random(SEED + 4)
    return [
        rng.randrange(0, file_size - sizes.random_read_bytes) for _ in range(sizes.random_reads)
    ]


def scenario_random(ctx: Context) -> Scenario:
    sizes = ctx.sizes
    offsets = random_offsets(sizes, len(ctx.big))
    n, length = len(offsets), sizes.random_read_bytes
    budget = 1.5 * MiB * n / 200  # the 1.5 MiB target is for 200 reads

    def drive(f: Verified, row: Row) -> None:
        for off in offsets:
            f.seek(off)
            f.read(length)

    libs = file_libraries(ctx, rangeio_library("rangeio prefetch_bytes=0", prefetch_bytes=0))
    rows = [run_file(ctx, lib, ctx.url("big.bin"), ctx.big, drive) for lib in libs]
    for row in rows:
        req, got = reads_only(row)
        row.notes.append(f"reads alone: {req} requests, {got / MiB:.2f} MiB")
        row.extra["reads_requests"] = req
        row.extra["reads_bytes"] = got
        if row.library.startswith("rangeio"):
            judge(row, f"reads <= {n} req, <= {budget / MiB:.2f} MiB", req <= n and got <= budget)
    useful = n * length / MiB
    title = (
        f"random: {n} random {length // KiB} KiB reads (seek+read) on a "
        f"{len(ctx.big) / MiB:.0f} MiB file ({useful:.2f} MiB useful)"
    )
    notes = ["'reads alone' leaves out the open's requests; the target applies to it."]
    return Scenario("random", 4, title, rows, notes)


# -- 5. vectored reads --------------------------------------------------------------------------


def scenario_vectored(ctx: Context) -> Scenario:
    sizes = ctx.sizes
    offsets = random_offsets(sizes, len(ctx.big))
    length = sizes.random_read_bytes
    ranges = [(off, off + length) for off in offsets]
    url = ctx.url("big.bin")
    rows: list[Row] = []

    def check_all(library: str, got: list[bytes]) -> None:
        check_ranges(library, ctx.big, ranges, got)

    def rangeio_body(lib: Library, at: str = url) -> Callable[[Meter, Row], None]:
        def body(meter: Meter, row: Row) -> None:
            meter.start()
            opened = lib.open(at)
            try:
                meter.opened()
                got = opened.file.read_ranges(ranges)
                meter.stop()
                row.library_stats = opened.stats()
            finally:
                opened.close()
            check_all(row.library, got)

        return body

    variants = [
        rangeio_library("rangeio read_ranges"),
        # The path servers without multipart/byteranges (S3, GCS, many CDNs) get.
        rangeio_library("rangeio read_ranges multipart=False", multipart=False),
    ]
    for lib in variants:
        ctx.progress(f"    {lib.name} ...")
        rows.append(measure(ctx.proxy, lib.name, rangeio_body(lib)))
    # nginx's `max_ranges 64` (tests/servers/nginx.py's /capped/): a request over the cap gets
    # 200 and the whole file; read_ranges splits the refused groups and keeps multipart.
    capped = rangeio_library("rangeio read_ranges, nginx max_ranges 64")
    base, name = url.rsplit("/", 1)
    capped_url = f"{base}/capped/{name}"
    ctx.progress(f"    {capped.name} ...")
    rows.append(measure(ctx.proxy, capped.name, rangeio_body(capped, capped_url)))

    if ctx.peers.fsspec is not None:

        def fsspec_body(meter: Meter, row: Row) -> None:
            fs = new_fsspec_filesystem()
            try:
                meter.start()
                got = fs.cat_ranges(
                    [url] * len(ranges),
                    [a for a, _ in ranges],
                    [b for _, b in ranges],
                    on_error="raise",
                )
                meter.stop()
            finally:
                close_fsspec(fs)
            check_all(row.library, got)

        ctx.progress("    fsspec cat_ranges ...")
        rows.append(measure(ctx.proxy, "fsspec cat_ranges", fsspec_body))

    if ctx.peers.hctef is not None:

        def drive(f: Verified, row: Row) -> None:
            f._inner.prefetch([(a, b - a) for a, b in ranges])
            for a, _ in ranges:
                f.seek(a)
                f.read(length)

        hctef = ctx.peers.hctef
        hc = Library("hctef prefetch+read", hctef.open, hctef.kind, hctef.version)
        rows.append(run_file(ctx, hc, url, ctx.big, drive))

    for row in rows:
        req, got = reads_only(row)
        if row.open_requests is not None:
            row.notes.append(f"after open: {req} requests, {got / MiB:.2f} MiB")
        if row.library_stats:
            row.notes.append(f"own stats: {row.library_stats.get('requests')} requests")
    title = (
        f"vectored: the same {len(ranges)} ranges of {length // KiB} KiB in one call "
        f"({len(ranges) * length / MiB:.2f} MiB useful)"
    )
    notes = [
        "round trips = longest chain of requests each sent after the previous one finished:",
        f"the latency paid in a row (x {ctx.delay_ms:g} ms here). No target; compare rows.",
    ]
    return Scenario("vectored", 5, title, rows, notes)


# -- 6. sequential ------------------------------------------------------------------------------


def scenario_sequential(ctx: Context) -> Scenario:
    import urllib3

    piece = ctx.sizes.sequential_piece
    url = ctx.url("big.bin")
    source = ctx.big

    def drive(f: Verified, row: Row) -> None:
        total = 0
        while data := f.read(piece):
            total += len(data)
        if total != len(source):
            raise VerificationError(f"{row.library}: read {total} bytes of {len(source)}")

    def stream_body(meter: Meter, row: Row) -> None:
        pool = urllib3.PoolManager()
        try:
            meter.start()
            response = pool.request("GET", url, preload_content=False, decode_content=False)
            pos = 0
            while data := response.read(piece):
                if data != source[pos : pos + len(data)]:
                    raise VerificationError(f"streaming GET: bytes at {pos} differ")
                pos += len(data)
            meter.stop()
            response.release_conn()
            if pos != len(source):
                raise VerificationError(f"streaming GET: read {pos} bytes of {len(source)}")
        finally:
            pool.clear()

    baseline = "urllib3 streaming GET"
    libs = file_libraries(ctx)
    runs: dict[str, list[Row]] = {baseline: [], **{lib.name: [] for lib in libs}}
    for rep in range(ctx.sizes.sequential_repeats):
        ctx.progress(f"    repeat {rep + 1}/{ctx.sizes.sequential_repeats}: {baseline} ...")
        runs[baseline].append(measure(ctx.proxy, baseline, stream_body))
        for lib in libs:
            runs[lib.name].append(run_file(ctx, lib, url, source, drive))

    rows = [median_row(reps) for reps in runs.values()]
    base_runs = runs[baseline]
    for row, reps in zip(rows, runs.values()):
        # Each repeat runs every library back to back, so a slow moment of the machine hits
        # the GET and the library alike: the median of per-repeat ratios is steadier than
        # the ratio of medians.
        ratios = [
            r.wall_s / b.wall_s
            for r, b in zip(reps, base_runs)
            if r.error is None and b.error is None and b.wall_s > 0
        ]
        ratio = statistics.median(ratios) if ratios else None
        if ratio is not None:
            row.extra["vs_stream"] = round(ratio, 3)
            row.extra["vs_stream_each"] = [round(x, 3) for x in ratios]
            row.notes.append(f"{ratio:.2f}x the streaming GET's time (median of paired ratios)")
        if row.library.startswith("rangeio"):
            ok = ratio is not None and ratio <= 1.2 and row.requests < 100
            judge(row, "<= 1.2x GET time, < 100 req", ok)
    reps = ctx.sizes.sequential_repeats
    title = (
        f"sequential: read {len(source) / MiB:.0f} MiB in {piece // KiB} KiB pieces "
        f"vs one streaming GET (median wall of {reps})"
    )
    return Scenario("sequential", 6, title, rows)


def median_row(reps: list[Row]) -> Row:
    """The first repetition's counters with the median wall time of all repetitions."""
    failed = [r for r in reps if r.error is not None]
    row = failed[0] if failed else reps[0]
    walls = [r.wall_s for r in reps if r.error is None]
    if walls:
        row.wall_s = statistics.median(walls)
    row.extra["walls_s"] = [round(w, 4) for w in walls]
    counts = sorted({r.requests for r in reps})
    if len(counts) > 1:
        row.notes.append(f"requests varied between repeats: {counts}")
    return row


# -- 7. cached read(64) -------------------------------------------------------------------------


def scenario_read64(ctx: Context) -> Scenario:
    sizes = ctx.sizes
    warm = 1 * MiB
    per_cycle = warm // 64
    source = ctx.big
    url = ctx.url("big.bin")

    def loop(f: Any, max_calls: int, seconds: float) -> tuple[int, float]:
        read, seek = f.read, f.seek
        inner = range(per_cycle)
        calls = 0
        t0 = time.perf_counter()
        elapsed = 0.0
        while calls < max_calls and elapsed < seconds:
            seek(0)
            for _ in inner:
                read(64)
            calls += per_cycle
            elapsed = time.perf_counter() - t0
        return calls, elapsed

    def verify(f: Any, library: str) -> None:
        f.seek(0)
        for i in range(per_cycle):
            if f.read(64) != source[i * 64 : (i + 1) * 64]:
                raise VerificationError(f"{library}: read(64) at {i * 64} differs")

    def body_for(open_: Callable[[], Any], close: Callable[[Any], None], seconds: float):
        def body(meter: Meter, row: Row) -> None:
            meter.start()
            f = open_()
            try:
                meter.opened()
                if f.read(warm) != source[:warm]:
                    raise VerificationError(f"{row.library}: the first MiB differs")
                calls, elapsed = loop(f, sizes.read64_calls, seconds)
                meter.stop()
                verify(f, row.library)
            finally:
                close(f)
            row.extra["calls"] = calls
            row.extra["loop_s"] = elapsed
            row.extra["mcalls_per_s"] = calls / elapsed / 1e6

        return body

    rows: list[Row] = []
    ctx.progress("    local BufferedReader ...")
    rows.append(
        measure(
            ctx.proxy,
            "local BufferedReader(BytesIO)",
            body_for(
                lambda: io.BufferedReader(io.BytesIO(source), 8 * KiB),
                lambda f: f.close(),
                sizes.read64_seconds * 3,
            ),
        )
    )
    for lib in file_libraries(ctx):
        ctx.progress(f"    {lib.name} ...")
        holder: dict[str, Any] = {}

        def open_(lib: Library = lib, holder: dict[str, Any] = holder) -> Any:
            holder["opened"] = lib.open(url)
            return holder["opened"].file

        def close(f: Any, holder: dict[str, Any] = holder) -> None:
            holder["opened"].close()

        slow_cap = sizes.read64_seconds * (3 if lib.kind == "rangeio" else 1)
        rows.append(measure(ctx.proxy, lib.name, body_for(open_, close, slow_cap)))

    local = rows[0].extra.get("mcalls_per_s")
    rangeio_rate = rows[1].extra.get("mcalls_per_s") if len(rows) > 1 else None
    for row in rows:
        rate = row.extra.get("mcalls_per_s")
        if rate is None:
            continue
        row.wall_s = row.extra["loop_s"]
        row.notes.append(f"{row.extra['calls']:,} calls, {rate:.3f} M calls/s")
        if local:
            row.notes.append(f"{rate / local:.3f}x local")
        if rangeio_rate and not row.library.startswith("rangeio") and row is not rows[0]:
            row.notes.append(f"rangeio is {rangeio_rate / rate:.1f}x faster")
    title = (
        f"read64: cached f.read(64) rate over the first MiB (up to {sizes.read64_calls:,} calls; "
        "wall = the timed loop only)"
    )
    notes = ["Slow libraries get fewer calls (time-capped); the rate is what counts."]
    return Scenario("read64", 7, title, rows, notes)


SCENARIOS: dict[str, tuple[int, Callable[[Context], Scenario]]] = {
    "zip": (1, scenario_zip),
    "parquet": (2, scenario_parquet),
    "tail": (3, scenario_tail),
    "random": (4, scenario_random),
    "vectored": (5, scenario_vectored),
    "sequential": (6, scenario_sequential),
    "read64": (7, scenario_read64),
}
