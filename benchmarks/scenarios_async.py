"""The async scenarios (8, 9): rangeio.aio against fsspec's async HTTP filesystem and hctef.aio.

They read the same 64 MiB file and the same random 4 KiB ranges as scenario 4, so the rows
compare with the sync ones. Each row runs in its own event loop (``asyncio.run``) with a cold
library, and every byte is checked as in the sync scenarios.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import Any

from harness import AsyncVerified, Meter, MiB, Row, check_ranges, check_slice, measure
from peers import (
    AsyncLibrary,
    close_fsspec_async,
    hctef_aio_library,
    new_fsspec_async_filesystem,
    rangeio_aio_library,
)
from scenarios import Context, KiB, Scenario, judge, random_offsets

CURSORS = 16
IDEAL_FACTOR = 1.2  # scenario 8's target: wall time within this of the ideal


def run_async(ctx: Context, name: str, body: Callable[[Meter, Row], Awaitable[None]]) -> Row:
    """``measure`` for a coroutine body, in a fresh event loop (no session carried over)."""
    ctx.progress(f"    {name} ...")
    return measure(ctx.proxy, name, lambda meter, row: asyncio.run(body(meter, row)))


def run_async_file(
    ctx: Context, lib: AsyncLibrary, url: str, drive: Callable[[Any, Row], Awaitable[None]]
) -> Row:
    """Open ``url`` with ``lib``, await ``drive`` on the open file, close; one Row."""

    async def body(meter: Meter, row: Row) -> None:
        meter.start()
        opened = await lib.open(url)
        try:
            meter.opened()
            await drive(opened.file, row)
            meter.stop()
            row.library_stats = opened.stats()
        finally:
            await opened.close()

    return run_async(ctx, lib.name, body)


def spread(offsets: list[int], n: int) -> list[list[int]]:
    """Deal the offsets to ``n`` cursors: cursor i takes every n-th, starting at the i-th."""
    return [offsets[i::n] for i in range(n)]


def note_ideal(row: Row, concurrency: int, delay_ms: float) -> float | None:
    """Note the ideal wall time, ceil(requests / concurrency) x delay, and the row's ratio to it.

    The ideal is the latency floor for that many requests kept ``concurrency`` in flight:
    anything above it is time the library spent not having requests on the wire.
    """
    ideal = math.ceil(row.requests / concurrency) * delay_ms / 1000
    row.extra["concurrency"] = concurrency
    row.extra["ideal_s"] = round(ideal, 4)
    if ideal <= 0 or row.error is not None:
        return None
    ratio = row.wall_s / ideal
    row.extra["vs_ideal"] = round(ratio, 3)
    row.notes.append(
        f"ideal ceil({row.requests}/{concurrency}) x {delay_ms:g} ms = {ideal:.3f} s; "
        f"wall = {ratio:.2f}x ideal"
    )
    return ratio


# -- 8. async cursors -----------------------------------------------------------------------------


def scenario_async_cursors(ctx: Context) -> Scenario:
    sizes = ctx.sizes
    offsets = random_offsets(sizes, len(ctx.big))
    n, length = len(offsets), sizes.random_read_bytes
    parts = spread(offsets, CURSORS)
    url = ctx.url("big.bin")
    source = ctx.big
    rows: list[tuple[Row, int]] = []  # with the concurrency its ideal assumes

    async def drive(f: Any, row: Row) -> None:
        cursors = [AsyncVerified(f.clone(), source, row.library) for _ in parts]

        async def reads(cursor: AsyncVerified, part: list[int]) -> None:
            for off in part:
                cursor.seek(off)
                await cursor.read(length)

        await asyncio.gather(*(reads(c, part) for c, part in zip(cursors, parts)))
        row.extra["bytes_verified"] = sum(c.bytes_checked for c in cursors)

    # No prefetch: the open costs one tiny request and the reads are the whole story.
    libs = [
        rangeio_aio_library("rangeio.aio", prefetch_bytes=0),
        rangeio_aio_library("rangeio.aio max_concurrency=16", prefetch_bytes=0, max_concurrency=16),
    ]
    if ctx.peers.hctef_aio is not None:
        hctef = hctef_aio_library(prefetch_bytes=0)
        assert not isinstance(hctef, str)
        libs.append(hctef)
    for lib in libs:
        row = run_async_file(ctx, lib, url, drive)
        rows.append((row, min(CURSORS, lib.max_concurrency)))

    if ctx.peers.fsspec is not None:

        async def fsspec_body(meter: Meter, row: Row) -> None:
            meter.start()
            fs = await new_fsspec_async_filesystem()
            try:
                meter.opened()

                async def reads(part: list[int]) -> None:
                    for off in part:
                        got = await fs._cat_file(url, start=off, end=off + length)
                        check_slice(row.library, source, off, off + length, got)

                await asyncio.gather(*(reads(part) for part in parts))
                meter.stop()
            finally:
                await close_fsspec_async(fs)
            row.extra["bytes_verified"] = n * length

        # aiohttp's pool (100 connections) never limits 16 tasks.
        rows.append((run_async(ctx, "fsspec async _cat_file", fsspec_body), CURSORS))

    for row, concurrency in rows:
        ratio = note_ideal(row, concurrency, ctx.delay_ms)
        # With --delay-ms 0 there is no latency floor to compare with: no target.
        if row.library.startswith("rangeio") and ctx.delay_ms > 0:
            ok = ratio is not None and ratio <= IDEAL_FACTOR
            judge(row, f"<= {IDEAL_FACTOR:g}x ideal (conc {concurrency})", ok)
    title = (
        f"async cursors: {n} random {length // KiB} KiB reads from {CURSORS} concurrent "
        f"cursors on a {len(source) / MiB:.0f} MiB file (rangeio: prefetch_bytes=0)"
    )
    notes = [
        f"each cursor (clone()) takes every {CURSORS}th range: seek + await read; all gathered.",
        "ideal = ceil(req / concurrency) x delay, req counting the open; concurrency =",
        f"min({CURSORS}, the library's max_concurrency). Target on rangeio: wall <= "
        f"{IDEAL_FACTOR:g}x ideal.",
    ]
    if "hctef async" in ctx.peers.unavailable:
        notes.append(f"hctef async: unavailable ({ctx.peers.unavailable['hctef async']})")
    return Scenario("async-cursors", 8, title, [row for row, _ in rows], notes)


# -- 9. async read_ranges -------------------------------------------------------------------------


def scenario_async_read_ranges(ctx: Context) -> Scenario:
    sizes = ctx.sizes
    offsets = random_offsets(sizes, len(ctx.big))
    length = sizes.random_read_bytes
    ranges = [(off, off + length) for off in offsets]
    url = ctx.url("big.bin")
    source = ctx.big
    rows: list[Row] = []
    max_rts = 3

    async def drive(f: Any, row: Row) -> None:
        got = await f.read_ranges(ranges)
        check_ranges(row.library, source, ranges, got)

    variants = [
        rangeio_aio_library("rangeio.aio read_ranges"),
        # The path servers without multipart/byteranges (S3, GCS, many CDNs) get.
        rangeio_aio_library("rangeio.aio multipart=False", multipart=False),
    ]
    for lib in variants:
        rows.append(run_async_file(ctx, lib, url, drive))

    if ctx.peers.fsspec is not None:

        async def fsspec_body(meter: Meter, row: Row) -> None:
            meter.start()
            fs = await new_fsspec_async_filesystem()
            try:
                meter.opened()
                got = await fs._cat_ranges(
                    [url] * len(ranges),
                    [a for a, _ in ranges],
                    [b for _, b in ranges],
                    on_error="raise",
                )
                meter.stop()
            finally:
                await close_fsspec_async(fs)
            check_ranges(row.library, source, ranges, got)

        rows.append(run_async(ctx, "fsspec async _cat_ranges", fsspec_body))

    for row in rows:
        if row.library_stats:
            row.notes.append(f"own stats: {row.library_stats.get('requests')} requests")
        if row.library.startswith("rangeio"):
            judge(row, f"<= {max_rts} round trips in all", row.round_trips <= max_rts)
    title = (
        f"async read_ranges: the same {len(ranges)} ranges of {length // KiB} KiB in one "
        f"awaited call ({len(ranges) * length / MiB:.2f} MiB useful)"
    )
    notes = [
        "rangeio rows use the default open (1 MiB prefetch from the end); RTs count it.",
        f"round trips x {ctx.delay_ms:g} ms is the latency floor of a row.",
    ]
    return Scenario("async-read-ranges", 9, title, rows, notes)


ASYNC_SCENARIOS: dict[str, tuple[int, Callable[[Context], Scenario]]] = {
    "async-cursors": (8, scenario_async_cursors),
    "async-read-ranges": (9, scenario_async_read_ranges),
}
