"""Measure the async shell's CPU per cache miss: µs per random 4 KiB read that must fetch.

Every read is a miss (read-ahead off, prefetch off, a file much larger than the reads touch),
so the time per read is the per-miss cost of AsyncHttpFile + AsyncRunner + the engine programs
plus the transport. ``--transport instant`` (the default) answers from memory with no network,
which isolates rangeio's own overhead; ``--transport server`` uses a local FaultServer through
the default async client (aiohttp, else httpx).

    .venv/bin/python benchmarks/async_miss_cpu.py                      # instant, 3 repeats
    .venv/bin/python benchmarks/async_miss_cpu.py --transport server --reads 2000
    .venv/bin/python benchmarks/async_miss_cpu.py --cursors 8 --repeats 5 --profile
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import random
import time
from collections.abc import AsyncIterator
from typing import Any

from rangeio.aio import AsyncHttpFile
from rangeio.testing.server import FaultServer

KiB = 1024
MiB = 1024 * KiB
SIZE = 256 * MiB
READ = 4 * KiB
# Offsets on a coarse grid far apart: no read ever lands in bytes an earlier one cached.
GRID = 64 * KiB


class _InstantResponse:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self._body = body

    async def iter_raw(self) -> AsyncIterator[bytes]:
        if self._body:
            yield self._body

    async def aclose(self) -> None:
        pass


class InstantTransport:
    """An AsyncTransport answering single ranges from a zero-filled file, with no I/O."""

    def __init__(self, size: int) -> None:
        self._size = size

    async def send(self, request: Any, timeout: Any) -> _InstantResponse:
        spec = request.headers.get("range") or request.headers.get("Range")
        assert spec is not None and spec.startswith("bytes="), spec
        first, _, last = spec[len("bytes=") :].partition("-")
        if first == "":  # suffix range
            start, stop = max(self._size - int(last), 0), self._size
        else:
            start = int(first)
            stop = min(int(last) + 1, self._size) if last else self._size
        headers = {
            "content-range": f"bytes {start}-{stop - 1}/{self._size}",
            "content-length": str(stop - start),
            "etag": '"instant"',
            "accept-ranges": "bytes",
        }
        body = bytes(stop - start) if request.method != "HEAD" else b""
        return _InstantResponse(206, headers, body)

    async def aclose(self) -> None:
        pass


async def _measure(
    url: str, client: Any, reads: int, cursors: int, seed: int
) -> tuple[float, float]:
    """(wall µs, process CPU µs) per miss; CPU time is steadier on a busy machine, but with
    ``--transport server`` it includes the server's threads."""
    rng = random.Random(seed)
    slots = rng.sample(range(SIZE // GRID), reads)
    offsets = [s * GRID for s in slots]
    options: dict[str, Any] = {
        "prefetch_bytes": 0,
        "readahead_max": 0,
        "stride_readahead_max": 0,
        "cache_bytes": 64 * MiB,
    }
    async with AsyncHttpFile(url, client=client, **options) as f:
        files = [f] + [f.clone() for _ in range(cursors - 1)]
        parts = [offsets[i::cursors] for i in range(cursors)]

        async def run(cursor: AsyncHttpFile, part: list[int]) -> None:
            for off in part:
                cursor.seek(off)
                got = await cursor.read(READ)
                assert len(got) == READ

        started, cpu_started = time.perf_counter(), time.process_time()
        await asyncio.gather(*(run(c, p) for c, p in zip(files, parts)))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        misses = f.stats.cache_misses
        assert misses >= reads, f"expected {reads} misses, saw {misses}"
    return elapsed / reads * 1e6, cpu / reads * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transport", choices=["instant", "server"], default="instant")
    parser.add_argument("--reads", type=int, default=4000)
    parser.add_argument("--cursors", type=int, default=1, help="concurrent clones reading")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one run")
    args = parser.parse_args()

    server: FaultServer | None = None
    if args.transport == "server":
        server = FaultServer({"/big.bin": bytes(SIZE)}).start()
        url = server.url("/big.bin")
    else:
        url = "http://instant.invalid/big.bin"

    def client() -> Any:
        return InstantTransport(SIZE) if server is None else None

    try:
        asyncio.run(_measure(url, client(), min(args.reads, 200), args.cursors, 0))  # warm up
        results = [
            asyncio.run(_measure(url, client(), args.reads, args.cursors, seed))
            for seed in range(1, args.repeats + 1)
        ]
        if args.profile:
            profile = cProfile.Profile()
            profile.enable()
            asyncio.run(_measure(url, client(), args.reads, args.cursors, 99))
            profile.disable()
            pstats.Stats(profile).sort_stats("tottime").print_stats(25)
    finally:
        if server is not None:
            server.stop()
    print(
        f"{args.transport} transport, {args.cursors} cursor(s), {args.reads} misses x {args.repeats}"
    )
    for name, values in (("wall", [w for w, _ in results]), ("cpu ", [c for _, c in results])):
        runs = " ".join(f"{v:.1f}" for v in values)
        median = sorted(values)[len(values) // 2]
        print(f"  {name} µs per miss: min {min(values):.1f} median {median:.1f} (runs: {runs})")


if __name__ == "__main__":
    main()
