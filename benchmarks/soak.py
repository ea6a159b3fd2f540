"""Soak: mixed random reads and downloads against the fault server, faults switched on at random.

    .venv/bin/python benchmarks/soak.py                 # 10 minutes, 4 workers
    .venv/bin/python benchmarks/soak.py --minutes 1 --workers 2 --seed 7

Each worker owns a FaultServer serving one random file and loops: pick a fault from FAULTS (or
none), switch it on, run one operation (HttpFile reads, AsyncHttpFile cursors, read_ranges,
RangeStream, download with interruptions and resumes, haul until complete), then check every
byte the operation returned against the truth. The server's file may change under a read
(``change_after``), so a result is right when all its bytes belong to ONE version of the file.

It reports operations, faults hit, retries (file Stats; extra requests of downloads), typed
errors by type, untyped exceptions and corrupt results. It exits 1 if any result was corrupt or
any exception was not one of rangeio's typed errors, 2 if an operation hung.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import faulthandler
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

import rangeio  # noqa: E402
import rangeio.aio  # noqa: E402
from rangeio.testing import Faults, FaultServer  # noqa: E402

PATH = "/soak.bin"
# Short timeouts: a stuck exchange must end as a typed timeout well inside the hang watchdog,
# and a dripping body (the drip fault) must hit the low-speed floor within seconds.
TIMEOUT = rangeio.Timeout(2.0, 5.0, low_speed=rangeio.LowSpeed(4096, 2.0), head=3.0)
HANG_SECONDS = 120.0


def _times(rng: random.Random) -> int | None:
    """How many requests a fault spoils: a few (retries should win) or all of them."""
    return rng.choice([1, 1, 2, 3, None])


# name -> how to make one from a random source and the file's size. Add a line to add a fault;
# a fault the server does not know yet (an older rangeio.testing) is skipped with a note.
FAULTS: dict[str, Callable[[random.Random, int], Faults]] = {
    "truncate_after": lambda r, n: Faults(truncate_after=r.randrange(n // 2 + 1), times=_times(r)),
    "reset_after": lambda r, n: Faults(reset_after=r.randrange(n // 2 + 1), times=_times(r)),
    "reset_before_answer": lambda r, n: Faults(reset_after=0, times=r.choice([1, 2])),
    "status_503": lambda r, n: Faults(
        status=503, retry_after=r.choice([None, "0", "1"]), times=r.choice([1, 2, 3])
    ),
    "status_500": lambda r, n: Faults(status=500, times=r.choice([1, 2])),
    "status_404": lambda r, n: Faults(status=404, times=1),
    "status_503_after_first": lambda r, n: Faults(status=503, skip=1, times=1),
    "delay": lambda r, n: Faults(delay=r.uniform(0.0, 0.3)),
    "content_length_delta": lambda r, n: Faults(
        content_length_delta=r.choice([-100, -1, 1, 100]), times=_times(r)
    ),
    "change_after": lambda r, n: Faults(change_after=r.randint(1, 4)),
    "ignore_range": lambda r, n: Faults(ignore_range=True, times=_times(r)),
    "chunked": lambda r, n: Faults(chunked=True, times=_times(r)),
    "content_range_shift": lambda r, n: Faults(content_range_shift=r.choice([-1, 1]), times=1),
    "gzip": lambda r, n: Faults(gzip=True, times=1),
    "star_total": lambda r, n: Faults(star_total=True, times=_times(r)),
    "suffix_501": lambda r, n: Faults(suffix_501=True),
    "always_416": lambda r, n: Faults(always_416=True, times=1),
    "redirect_self": lambda r, n: Faults(redirect_to=PATH, times=r.choice([1, 2])),
    "throttle": lambda r, n: Faults(throttle=r.choice([500_000, 2_000_000]), times=1),
    "multipart_parts": lambda r, n: Faults(multipart_parts=r.choice([50, 5000]), times=1),
    "bad_boundary": lambda r, n: Faults(bad_boundary=r.choice(["missing", "wrong"]), times=1),
    # A true Content-Length, then filler. Not chunked: a fresh download of a chunked body that
    # never ends runs as long as the body does (as curl's would), which would only stall a worker.
    "endless": lambda r, n: Faults(endless=True, times=1),
    "drip": lambda r, n: Faults(drip=0.05, times=1),
    "header_flood": lambda r, n: Faults(header_flood=r.choice([200, 20_000]), times=1),
    "huge_header": lambda r, n: Faults(huge_header=r.choice([10_000, 1_000_000]), times=1),
    "total_delta": lambda r, n: Faults(total_delta=r.choice([-5, 5]), times=1),
    "align_ranges": lambda r, n: Faults(align_ranges=r.choice([512, 4096]), times=_times(r)),
    "overlapping_parts": lambda r, n: Faults(overlapping_parts=True, times=1),
    "early_hints": lambda r, n: Faults(early_hints=r.choice([1, 3]), times=_times(r)),
    "drip_head": lambda r, n: Faults(drip_head=0.05, times=1),
    "endless_trailers": lambda r, n: Faults(endless_trailers=0.1, times=1),
    "max_ranges": lambda r, n: Faults(max_ranges=r.choice([1, 2, 8, 64])),
    "ignore_conditionals": lambda r, n: Faults(ignore_conditionals=True, times=_times(r)),
}
NO_FAULT_SHARE = 0.3


class Interrupted(Exception):
    """Raised from a download's progress callback: the user stopping a download midway."""


class Corrupt(Exception):
    """An operation returned bytes that are not one version of the file."""


@dataclass
class Tally:
    """Everything the workers count; one lock, taken briefly once per operation."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    ops: collections.Counter[str] = field(default_factory=collections.Counter)
    ops_ok: collections.Counter[str] = field(default_factory=collections.Counter)
    faults_hit: collections.Counter[str] = field(default_factory=collections.Counter)
    typed: collections.Counter[str] = field(default_factory=collections.Counter)
    untyped: collections.Counter[str] = field(default_factory=collections.Counter)
    untyped_examples: list[str] = field(default_factory=list)
    corrupt: int = 0
    corrupt_examples: list[str] = field(default_factory=list)
    retries: int = 0
    download_extra_requests: int = 0
    resumes: int = 0
    interruptions: int = 0
    requests: int = 0
    skipped_faults: set[str] = field(default_factory=set)


@dataclass
class Op:
    """One operation's context: its server, the versions its bytes may come from, counters."""

    server: FaultServer
    url: str
    versions: list[bytes]
    rng: random.Random
    workdir: Path
    retries: int = 0
    extra_requests: int = 0
    resumes: int = 0
    interruptions: int = 0

    def check(self, pieces: list[tuple[int, bytes]], what: str) -> None:
        """All of ``pieces`` (offset, bytes) must come from one version of the file."""
        for version in self.versions:
            if all(version[s : s + len(b)] == b for s, b in pieces):
                return
        # Say which piece matches no version at all (None: each matches some, but not the same).
        bad = next(
            ((s, len(b)) for s, b in pieces if all(v[s : s + len(b)] != b for v in self.versions)),
            None,
        )
        raise Corrupt(f"{what}: bytes from no single version (first bad piece {bad})")

    def file_options(self) -> dict[str, Any]:
        r = self.rng
        return {
            "timeout": TIMEOUT,
            "retries": r.choice([0, 2, 4]),
            "cache_bytes": r.choice([64 * 1024, 512 * 1024, 64 * 1024 * 1024]),
            "prefetch_bytes": r.choice([0, 4096, 65536]),
            "max_concurrency": r.choice([1, 4, 8]),
        }

    def count_stats(self, stats: rangeio.Stats) -> None:
        self.retries += stats.retries


def random_span(rng: random.Random, size: int) -> tuple[int, int]:
    start = rng.randrange(size + 1)
    return start, min(
        size + rng.randrange(2), start + rng.choice([0, 1, 100, 4096, 70_000, 300_000])
    )


# -- operations -----------------------------------------------------------------------------


def op_sync_file(op: Op) -> None:
    r = op.rng
    with rangeio.open(op.url, **op.file_options()) as f:
        pieces: list[tuple[int, bytes]] = []
        cursors = [f] + [f.clone() for _ in range(r.randint(0, 2))]
        try:
            for _ in range(r.randint(3, 15)):
                cursor = r.choice(cursors)
                if r.random() < 0.3:  # a sequential run from wherever the cursor is
                    start = cursor.tell()
                    pieces.append((start, cursor.read(r.choice([4096, 65536]))))
                else:
                    start, stop = random_span(r, f.size)
                    cursor.seek(start)
                    pieces.append((start, cursor.read(stop - start)))
        finally:
            op.count_stats(f.stats)
        op.check(pieces, "HttpFile")
        if f.size not in {len(v) for v in op.versions}:
            raise Corrupt(f"HttpFile size {f.size}")


def op_async_file(op: Op) -> None:
    r = op.rng
    options = op.file_options()
    spans = [
        [random_span(r, len(op.versions[0])) for _ in range(r.randint(2, 6))] for _ in range(3)
    ]
    vectored = [random_span(r, len(op.versions[0])) for _ in range(r.randint(1, 5))]

    async def main() -> list[tuple[int, bytes]]:
        async with rangeio.aio.open(op.url, **options) as f:
            try:

                async def cursor_reads(plan: list[tuple[int, int]]) -> list[tuple[int, bytes]]:
                    cursor = f.clone()
                    out = []
                    for start, stop in plan:
                        cursor.seek(start)
                        out.append((start, await cursor.read(stop - start)))
                    await cursor.close()
                    return out

                results = await asyncio.gather(*(cursor_reads(p) for p in spans))
                pieces = [p for rs in results for p in rs]
                got = await f.read_ranges(vectored)
                pieces += [(s, b) for (s, _), b in zip(vectored, got)]
                return pieces
            finally:
                op.count_stats(f.stats)

    op.check(asyncio.run(main()), "AsyncHttpFile")


def op_read_ranges(op: Op) -> None:
    r = op.rng
    options = op.file_options()
    options["multipart"] = r.choice([True, False, "auto"])
    with rangeio.open(op.url, **options) as f:
        pieces: list[tuple[int, bytes]] = []
        try:
            for _ in range(r.randint(1, 3)):
                ranges = [random_span(r, f.size) for _ in range(r.randint(1, 12))]
                got = f.read_ranges(ranges)
                pieces += [(s, b) for (s, _), b in zip(ranges, got)]
        finally:
            op.count_stats(f.stats)
        op.check(pieces, "read_ranges")


def op_range_stream(op: Op) -> None:
    r = op.rng
    with rangeio.RangeStream(op.url, timeout=TIMEOUT, retries=r.choice([0, 3])) as rs:
        pieces: list[tuple[int, bytes]] = []
        try:
            for i in range(r.randint(1, 4)):
                start, stop = random_span(r, rs.total_bytes)
                rs.add((start, max(stop, start + 1)), name=f"r{i}")
            # Overlapping ranges were pruned as they were added: read what is left, in any order.
            spans = list(rs.ranges)
            for span in r.sample(spans, len(spans)):
                response = rs.add(span)  # already there: no request, it becomes the active one
                start = response.range.start + response.tell()
                # Read all of it, or abandon it partway (the stream is pruned/closed).
                n = -1 if r.random() < 0.6 else r.randrange(response.range.length + 1)
                pieces.append((start, response.read(n)))
        finally:
            op.count_stats(rs.stats)
        op.check(pieces, "RangeStream")


def op_download(op: Op) -> None:
    """download(), stopped midway by its progress callback at random, then resumed."""
    r = op.rng
    dest = op.workdir / f"dl-{r.randrange(1 << 30)}.bin"
    stop_at = r.randrange(len(op.versions[0]) + 1) if r.random() < 0.6 else None
    connections = r.choice([1, 1, 2, 3])
    use_async = r.random() < 0.3

    def progress(done: int, total: int | None) -> None:
        nonlocal stop_at
        if stop_at is not None and done >= stop_at:
            stop_at = None
            raise Interrupted

    last: BaseException | None = None
    for _ in range(4):
        kwargs: dict[str, Any] = {
            "connections": connections,
            "retries": r.choice([0, 3, 6]),
            "on_progress": progress,
            "timeout": TIMEOUT,
        }
        try:
            if use_async:
                result = asyncio.run(rangeio.aio.download(op.url, dest, **kwargs))
            else:
                result = rangeio.download(op.url, dest, **kwargs)
        except Interrupted:
            op.interruptions += 1
            op.resumes += 1
            continue
        except rangeio.RangeioError as exc:
            last = exc
            op.resumes += 1
            continue
        op.extra_requests += max(result.requests - connections, 0)
        op.check([(0, dest.read_bytes())], "download")
        if len(dest.read_bytes()) != result.size:
            raise Corrupt("download: size differs from its result")
        return
    assert last is not None or stop_at is None
    if last is not None:
        raise last


def op_haul(op: Op) -> None:
    """haul() is one request: call it again after each PartialDownloadError (it resumes)."""
    r = op.rng
    dest = op.workdir / f"haul-{r.randrange(1 << 30)}.bin"
    for attempt in range(8):
        try:
            result = rangeio.haul(op.url, dest=dest, timeout=TIMEOUT)
        except rangeio.PartialDownloadError:
            op.resumes += 1
            if attempt == 7:
                raise
            continue
        op.extra_requests += attempt
        op.check([(0, dest.read_bytes())], "haul")
        if len(dest.read_bytes()) != result.size:
            raise Corrupt("haul: size differs from its result")
        return


OPERATIONS: dict[str, Callable[[Op], None]] = {
    "HttpFile": op_sync_file,
    "AsyncHttpFile": op_async_file,
    "read_ranges": op_read_ranges,
    "RangeStream": op_range_stream,
    "download": op_download,
    "haul": op_haul,
}


# -- the loop -------------------------------------------------------------------------------


def worker(index: int, seed: int, deadline: float, tally: Tally, busy: dict[int, float]) -> None:
    rng = random.Random(seed * 1000 + index)
    size = rng.choice([70_000, 300_000, 1_100_000, 2_500_000]) + rng.randrange(4096)
    original = rng.randbytes(size)
    workdir = Path(tempfile.mkdtemp(prefix=f"soak-{index}-"))
    names = list(FAULTS)
    with FaultServer({PATH: original}) as server:
        while time.monotonic() < deadline:
            # Start each operation from the original content (a change_after may have flipped it).
            if server.get_file(PATH) != original:
                server.replace(PATH, original)
            server.clear_faults()
            server.clear_log()
            fault_name = "none" if rng.random() < NO_FAULT_SHARE else rng.choice(names)
            faults = None
            if fault_name != "none":
                try:
                    faults = FAULTS[fault_name](rng, size)
                except TypeError:  # a switch this FaultServer does not have
                    with tally.lock:
                        tally.skipped_faults.add(fault_name)
                    continue
                server.faults = faults
            kind = rng.choice(list(OPERATIONS))
            op = Op(server, server.url(PATH), [original, original[::-1]], rng, workdir)
            busy[index] = time.monotonic()
            outcome = run_one(OPERATIONS[kind], op)
            busy.pop(index, None)
            gets = [q for q in server.requests if q.method == "GET"]
            limit = faults.times if faults is not None and faults.times is not None else len(gets)
            hits = min(limit, len(gets)) if faults is not None else 0
            if faults is not None and faults.change_after is not None:
                hits = int(len(gets) >= faults.change_after)  # the file did change (once)
            record(tally, kind, fault_name, hits, op, outcome, len(server.requests))
            for leftover in workdir.iterdir():
                if leftover.is_file():
                    leftover.unlink()
    shutil.rmtree(workdir, ignore_errors=True)


def run_one(fn: Callable[[Op], None], op: Op) -> BaseException | None:
    try:
        fn(op)
    except Exception as exc:  # sorted into typed, untyped and corrupt by record()
        return exc
    return None


def record(
    tally: Tally,
    kind: str,
    fault: str,
    hits: int,
    op: Op,
    outcome: BaseException | None,
    requests: int,
) -> None:
    with tally.lock:
        tally.ops[kind] += 1
        tally.requests += requests
        if hits:
            tally.faults_hit[fault] += hits
        tally.retries += op.retries
        tally.download_extra_requests += op.extra_requests
        tally.resumes += op.resumes
        tally.interruptions += op.interruptions
        if outcome is None:
            tally.ops_ok[kind] += 1
        elif isinstance(outcome, Corrupt):
            tally.corrupt += 1
            if len(tally.corrupt_examples) < 10:
                tally.corrupt_examples.append(f"{kind} under {fault}: {outcome}")
        elif isinstance(outcome, rangeio.RangeioError):
            tally.typed[type(outcome).__name__] += 1
        else:
            name = f"{type(outcome).__module__}.{type(outcome).__qualname__}"
            tally.untyped[name] += 1
            if len(tally.untyped_examples) < 5:
                text = "".join(traceback.format_exception(outcome))
                tally.untyped_examples.append(f"{kind} under {fault}:\n{text}")


def report(tally: Tally, elapsed: float, workers: int) -> int:
    total = sum(tally.ops.values())
    print(
        f"soak: {elapsed / 60:.1f} min, {workers} workers, {total} operations, "
        f"{tally.requests} requests"
    )
    print("operations (ok / total):")
    for kind in OPERATIONS:
        print(f"  {kind:14} {tally.ops_ok[kind]:6} / {tally.ops[kind]}")
    print("faults hit (requests answered while on, up to `times`; change_after: changes made):")
    for name, n in sorted(tally.faults_hit.items(), key=lambda kv: -kv[1]):
        print(f"  {name:22} {n}")
    if tally.skipped_faults:
        print(f"faults this FaultServer lacks (skipped): {sorted(tally.skipped_faults)}")
    print(f"retries (file Stats): {tally.retries}")
    print(
        f"download extra requests (retries and resumes inside download/haul): "
        f"{tally.download_extra_requests}"
    )
    print(f"download interruptions: {tally.interruptions}, resumed calls: {tally.resumes}")
    print("typed errors by type:")
    for name, n in sorted(tally.typed.items(), key=lambda kv: -kv[1]):
        print(f"  {name:26} {n}")
    print(f"untyped exceptions: {sum(tally.untyped.values())} {dict(tally.untyped)}")
    for example in tally.untyped_examples:
        print(example)
    print(f"corrupt results: {tally.corrupt}")
    for example in tally.corrupt_examples:
        print(f"  {example}")
    return 1 if tally.corrupt or tally.untyped else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args(argv)
    print(f"seed {args.seed}", flush=True)
    tally = Tally()
    busy: dict[int, float] = {}
    start = time.monotonic()
    deadline = start + args.minutes * 60
    threads = [
        threading.Thread(
            target=worker, args=(i, args.seed, deadline, tally, busy), daemon=True, name=f"soak-{i}"
        )
        for i in range(args.workers)
    ]
    for t in threads:
        t.start()
    next_line = start + 60
    while any(t.is_alive() for t in threads):
        time.sleep(0.5)
        now = time.monotonic()
        stuck = [i for i, since in list(busy.items()) if now - since > HANG_SECONDS]
        if stuck:
            print(f"HANG: workers {stuck} stuck for more than {HANG_SECONDS:.0f} s", flush=True)
            faulthandler.dump_traceback(all_threads=True)
            report(tally, now - start, args.workers)
            os._exit(2)
        if now >= next_line:
            next_line += 60
            with tally.lock:
                print(
                    f"  {(now - start) / 60:.0f} min: {sum(tally.ops.values())} ops, "
                    f"corrupt {tally.corrupt}, untyped {sum(tally.untyped.values())}",
                    flush=True,
                )
    return report(tally, time.monotonic() - start, args.workers)


if __name__ == "__main__":
    sys.exit(main())
