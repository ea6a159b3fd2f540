"""Files that travel to dask workers: rangeio against fsspec's http filesystem on a LocalCluster.

A ``dask.distributed.LocalCluster`` with 2 worker processes (1 thread each), all on loopback,
reads from nginx behind the delaying proxy (``--delay-ms`` per request; requests and response
body bytes are counted there, the same way for both libraries):

- ``read_parquet``: ``dask.dataframe.read_parquet`` over ``--files`` remote Parquet files
  (``rangeio://http://...`` against ``http://...``), two of their four columns, summed.
- ``bag of open files``: the driver opens ``--files`` remote files (``rangeio.open`` against
  ``fsspec.filesystem("http").open``), a ``dask.bag`` sends the open files to the workers
  (pickled), and each worker reads ``--reads`` random 64 KiB ranges of each and hashes them.
  The driver's opens are counted too (a third row opens with ``prefetch_bytes=0``).
- Both again with one ``cache_dir`` shared by the driver and the workers, run twice (one run
  each, not a median): the second run makes only the opens' revalidating requests (a 304 each).

Every result is checked against the source. Reported: the median wall seconds over
``--repeats`` runs, and the requests and body bytes of one run.

    .venv/bin/python benchmarks/dask_cluster.py [--files 20] [--reads 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Not named distributed.py (as issue 17 has it): with this folder on sys.path, as the other
# benchmarks put it, that file would shadow the package (dask imports `distributed` at compute).
HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from fixtures import load_nginx_class  # noqa: E402
from proxy import ProxyProcess  # noqa: E402

MiB = 1024 * 1024
BLOB_BYTES = 8 * MiB
PIECE = 64 * 1024
ROWS = 200_000
ROW_GROUPS = 4


def make_parquet(seed: int) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(seed)
    table = pa.table(
        {
            "a": [rng.randrange(1000) for _ in range(ROWS)],
            "b": [rng.random() for _ in range(ROWS)],
            "c": [rng.randrange(10**9) for _ in range(ROWS)],
            "d": [f"s{rng.randrange(10**6)}" for _ in range(ROWS)],
        }
    )
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=ROWS // ROW_GROUPS)
    return buf.getvalue()


def offsets_for(index: int, reads: int) -> list[int]:
    rng = random.Random(index)
    return [rng.randrange(BLOB_BYTES - PIECE) for _ in range(reads)]


def hash_pieces(item: tuple[Any, list[int]]) -> str:
    """Runs in a worker: the SHA-256 of the pieces read at ``offsets`` of the pickled file."""
    file, offsets = item
    digest = hashlib.sha256()
    for at in offsets:
        file.seek(at)
        digest.update(file.read(PIECE))
    file.close()
    return digest.hexdigest()


def expected_hash(data: bytes, offsets: list[int]) -> str:
    digest = hashlib.sha256()
    for at in offsets:
        digest.update(data[at : at + PIECE])
    return digest.hexdigest()


def open_rangeio(url: str) -> Any:
    import rangeio

    return rangeio.open(url)


def open_rangeio_lean(url: str) -> Any:
    """Without the open's prefetch (1 MiB from the end for a URL naming no format), which a
    driver that only hands its files on never reads."""
    import rangeio

    return rangeio.open(url, prefetch_bytes=0)


def open_rangeio_cached(url: str, cache_dir: str) -> Any:
    import rangeio

    return rangeio.open(url, cache_dir=cache_dir)


def open_fsspec(url: str) -> Any:
    import fsspec

    return fsspec.filesystem("http").open(url, "rb")


def run_bag(
    opener: Callable[[str], Any], urls: list[str], reads: int, expected: list[str]
) -> float:
    import dask.bag

    began = time.perf_counter()
    items = [(opener(u), offsets_for(i, reads)) for i, u in enumerate(urls)]
    got = dask.bag.from_sequence(items, npartitions=len(urls)).map(hash_pieces).compute()
    wall = time.perf_counter() - began
    if got != expected:
        raise AssertionError("a worker read other bytes than the source's")
    return wall


def run_parquet(
    urls: list[str], expected: tuple[int, float], storage_options: dict[str, Any] | None = None
) -> float:
    import dask.dataframe as dd

    began = time.perf_counter()
    frame = dd.read_parquet(urls, columns=["a", "b"], storage_options=storage_options)
    sums = frame.sum().compute()
    wall = time.perf_counter() - began
    got = (int(sums["a"]), float(sums["b"]))
    if got[0] != expected[0] or abs(got[1] - expected[1]) > 1e-6 * max(1.0, abs(expected[1])):
        raise AssertionError(f"read_parquet summed {got}, the source {expected}")
    return wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--reads", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--delay-ms", type=float, default=20.0)
    args = parser.parse_args(argv)

    import distributed
    import pyarrow.parquet as pq

    parquet = {f"t{i}.parquet": make_parquet(i) for i in range(args.files)}
    blobs = {f"b{i}.bin": random.Random(100 + i).randbytes(BLOB_BYTES) for i in range(args.files)}
    tables = [pq.read_table(io.BytesIO(b), columns=["a", "b"]) for b in parquet.values()]
    parquet_sums = (
        sum(int(t["a"].to_pandas().sum()) for t in tables),
        sum(float(t["b"].to_pandas().sum()) for t in tables),
    )
    bag_hashes = [
        expected_hash(data, offsets_for(i, args.reads)) for i, data in enumerate(blobs.values())
    ]
    rows: list[tuple[str, str, float, int, int]] = []
    with tempfile.TemporaryDirectory(prefix="rangeio-bench-distributed-") as tmp:
        nginx = load_nginx_class()(Path(tmp))
        for name, data in {**parquet, **blobs}.items():
            (nginx.www / name).write_bytes(data)
        nginx.start()
        proxy = ProxyProcess(nginx.port, args.delay_ms)
        try:
            with (
                distributed.LocalCluster(
                    n_workers=2,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                    worker_dashboard_address=None,
                ) as cluster,
                distributed.Client(cluster),
            ):
                blob_urls = [f"{proxy.origin}/{n}" for n in blobs]
                parquet_urls = [f"{proxy.origin}/{n}" for n in parquet]
                workloads: list[tuple[str, str, Callable[[], float]]] = [
                    (
                        "read_parquet",
                        "rangeio",
                        lambda: run_parquet([f"rangeio://{u}" for u in parquet_urls], parquet_sums),
                    ),
                    (
                        "read_parquet",
                        "fsspec http",
                        lambda: run_parquet(parquet_urls, parquet_sums),
                    ),
                    (
                        "bag of open files",
                        "rangeio",
                        lambda: run_bag(open_rangeio, blob_urls, args.reads, bag_hashes),
                    ),
                    (
                        "bag of open files",
                        "rangeio, prefetch_bytes=0",
                        lambda: run_bag(open_rangeio_lean, blob_urls, args.reads, bag_hashes),
                    ),
                    (
                        "bag of open files",
                        "fsspec http",
                        lambda: run_bag(open_fsspec, blob_urls, args.reads, bag_hashes),
                    ),
                ]
                for workload, library, run in workloads:
                    walls, counts = [], {}
                    for repeat in range(args.repeats):
                        proxy.reset()
                        walls.append(run())
                        if repeat == 0:
                            counts = proxy.snapshot()
                    rows.append(
                        (
                            workload,
                            library,
                            statistics.median(walls),
                            counts["requests"],
                            counts["body_bytes"],
                        )
                    )
                # A disk cache shared by the driver and the workers (one cache_dir): the same
                # workload twice. The second run pays the opens' revalidations (a 304 each) and
                # nothing the first run stored.
                shared: list[tuple[str, Callable[[str], float]]] = [
                    (
                        "read_parquet",
                        lambda d: run_parquet(
                            [f"rangeio://{u}" for u in parquet_urls],
                            parquet_sums,
                            {"cache_dir": d},
                        ),
                    ),
                    (
                        "bag of open files",
                        lambda d: run_bag(
                            lambda url: open_rangeio_cached(url, d),
                            blob_urls,
                            args.reads,
                            bag_hashes,
                        ),
                    ),
                ]
                for workload, run_in in shared:
                    with tempfile.TemporaryDirectory(prefix="rangeio-bench-dask-cache-") as d:
                        for label in ("first run", "second run"):
                            proxy.reset()
                            wall = run_in(d)
                            counts = proxy.snapshot()
                            rows.append(
                                (
                                    workload,
                                    f"rangeio, shared cache_dir, {label}",
                                    wall,
                                    counts["requests"],
                                    counts["body_bytes"],
                                )
                            )
        finally:
            proxy.close()
            nginx.stop()
    print(
        f"dask LocalCluster, 2 worker processes; {args.files} files; "
        f"+{args.delay_ms:g} ms/request; median of {args.repeats}"
    )
    print("| workload | library | median s | requests | body MiB |")
    print("| --- | --- | --- | --- | --- |")
    for workload, library, wall, requests, body in rows:
        print(f"| {workload} | {library} | {wall:.2f} | {requests} | {body / MiB:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
