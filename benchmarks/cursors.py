"""16 ``clone()`` cursors reading at once: are they throttled below the parallelism they express?

Each cursor (a thread with its own ``clone()`` of one file) makes ``--reads`` random 4 KiB reads of
a 64 MiB file on nginx behind the delaying proxy (20 ms per request), all 16 at once. Runs
``max_concurrency`` None (the default: cursors get the 16 connections kept per host), 16 and 8
(the default before issue 12), alternating, ``--repeats`` times; every byte is checked against
the file; requests are counted at the proxy. Reported: median wall seconds per setting and the
ratio to the default.

    .venv/bin/python benchmarks/cursors.py [--cursors 16] [--reads 10] [--repeats 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import threading
import time
from pathlib import Path

import rangeio

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from fixtures import served_behind_proxy  # noqa: E402

MiB = 1024 * 1024
SIZE = 64 * MiB
READ = 4096


def run_once(
    url: str, data: bytes, cursors: int, reads: int, limit: int | None, seed: int
) -> float:
    rng = random.Random(seed)
    offsets = [[rng.randrange(SIZE - READ) for _ in range(reads)] for _ in range(cursors)]
    errors: list[BaseException] = []
    with rangeio.open(url, max_concurrency=limit, prefetch_bytes=0) as f:
        clones = [f.clone() for _ in range(cursors)]
        start = threading.Barrier(cursors + 1)

        def work(cursor: rangeio.HttpFile, mine: list[int]) -> None:
            try:
                start.wait()
                for pos in mine:
                    cursor.seek(pos)
                    if cursor.read(READ) != data[pos : pos + READ]:
                        raise AssertionError(f"wrong bytes at {pos}")
            except BaseException as exc:  # reported below, after the threads are joined
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(c, o)) for c, o in zip(clones, offsets)]
        for t in threads:
            t.start()
        start.wait()
        began = time.perf_counter()
        for t in threads:
            t.join()
        wall = time.perf_counter() - began
        for c in clones:
            c.close()
    if errors:
        raise errors[0]
    return wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cursors", type=int, default=16)
    parser.add_argument("--reads", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--delay-ms", type=float, default=20.0)
    args = parser.parse_args(argv)
    data = random.Random(1).randbytes(SIZE)
    settings: dict[str, int | None] = {"default (None)": None, "16": 16, "8": 8}
    walls: dict[str, list[float]] = {name: [] for name in settings}
    requests: dict[str, int] = {}
    with served_behind_proxy(
        {"f.bin": data}, args.delay_ms, prefix="rangeio-bench-cursors-"
    ) as proxy:
        url = f"{proxy.origin}/f.bin"
        for repeat in range(args.repeats):
            for name, limit in settings.items():
                proxy.reset()
                walls[name].append(run_once(url, data, args.cursors, args.reads, limit, repeat))
                requests[name] = proxy.snapshot()["requests"]
    base = statistics.median(walls["default (None)"])
    print(
        f"{args.cursors} cursors x {args.reads} random 4 KiB reads, +{args.delay_ms:g} ms/request"
    )
    print("| max_concurrency | median s | / default | requests |")
    print("| --- | --- | --- | --- |")
    for name in settings:
        med = statistics.median(walls[name])
        print(f"| {name} | {med:.3f} | {med / base:.2f} | {requests[name]} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
