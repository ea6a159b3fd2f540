"""Many processes on one disk cache, SIGKILLed at random: every byte served must be right.

    python benchmarks/disk_cache_kill.py [--processes 8] [--seconds 60] [--budget-mib 4]

N reader processes open a 12 MiB file on a local FaultServer again and again with one
``cache_dir`` (a small budget, so eviction runs all the time) and read random ranges, checking
every byte; the parent SIGKILLs a random reader every few hundred milliseconds and starts a new
one in its place. Halfway through, the file changes on the server: from then on every byte must
be the new version's (a read that began before the change may raise ``RemoteChangedError``
instead). At the end: the count of wrong bytes (must be 0), of kills, and the directory's size
against its budget.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src")]

import rangeio  # noqa: E402
from rangeio._core.diskcache import BLOCK_SIZE, SCAN_SHARE  # noqa: E402
from rangeio._diskcache import DiskStore  # noqa: E402
from rangeio.testing import FaultServer  # noqa: E402

MiB = 1024 * 1024
SIZE = 12 * MiB


def versions() -> tuple[bytes, bytes]:
    old = random.Random(1).randbytes(SIZE)
    return old, old[::-1]


def reader(url: str, root: str, budget: int, seed: int, generation: Any, wrong: Any) -> None:
    """Open, read random ranges, close; forever (until killed). ``generation`` says which version
    the server holds (0 old, 1 new). An open file serves the version it opened (or raises), as
    without a disk cache: a read must match a version the server held between the open (its
    request) and the read's end; a file opened after the change must read the new bytes."""
    old, new = versions()
    rng = random.Random(seed)
    while True:
        try:
            opened = generation.value
            with rangeio.open(url, cache_dir=root, cache_dir_bytes=budget, timeout=10) as f:
                for _ in range(rng.randint(1, 8)):
                    start = rng.randrange(SIZE)
                    stop = min(SIZE, start + rng.choice([100, 4096, 70_000, 600_000]))
                    f.seek(start)
                    got = f.read(stop - start)
                    allowed = set(range(opened, generation.value + 1))
                    if not any(got == (old, new)[g][start:stop] for g in allowed):
                        with wrong.get_lock():
                            wrong.value += 1
        except rangeio.RemoteChangedError:
            pass  # the file changed under an open file: refused, never mixed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--budget-mib", type=float, default=4.0)
    args = parser.parse_args()
    budget = max(int(args.budget_mib * MiB), BLOCK_SIZE)
    old, new = versions()
    ctx = multiprocessing.get_context("fork")
    generation = ctx.Value("i", 0)
    wrong = ctx.Value("i", 0)
    kills = 0
    rng = random.Random(0)
    with (
        tempfile.TemporaryDirectory(prefix="rangeio-kill-") as tmp,
        FaultServer({"/f.bin": old}) as server,
    ):
        root = str(Path(tmp) / "cache")
        url = server.url("/f.bin")

        def spawn(seed: int) -> multiprocessing.process.BaseProcess:
            p = ctx.Process(target=reader, args=(url, root, budget, seed, generation, wrong))
            p.start()
            return p

        procs = [spawn(i) for i in range(args.processes)]
        seed = args.processes
        started = time.monotonic()
        changed = False
        while time.monotonic() - started < args.seconds:
            time.sleep(rng.uniform(0.05, 0.4))
            if not changed and time.monotonic() - started > args.seconds / 2:
                server.replace("/f.bin", new)
                generation.value = 1
                changed = True
            victim = rng.randrange(len(procs))
            os.kill(procs[victim].pid or 0, signal.SIGKILL)
            procs[victim].join()
            kills += 1
            procs[victim] = spawn(seed)
            seed += 1
        for p in procs:
            os.kill(p.pid or 0, signal.SIGKILL)
            p.join()
        # What the killed processes left: each block whole and right, or refused.
        with rangeio.open(url, cache_dir=root, cache_dir_bytes=budget) as f:
            final_ok = f.read() == new
        size = DiskStore(root, budget).info().bytes
    slack = args.processes * (budget // SCAN_SHARE + 600_000)
    print(f"processes {args.processes}, {args.seconds:g} s, {kills} SIGKILLs, file changed halfway")
    print(f"wrong reads: {wrong.value}; final read of the new version right: {final_ok}")
    print(f"directory {size:,} bytes, budget {budget:,} (+ {slack:,} between scans)")
    return 0 if wrong.value == 0 and final_ok and size <= budget + slack else 1


if __name__ == "__main__":
    sys.exit(main())
