"""The disk cache across processes: process A reads, then process B does the same with the same cache_dir.

Each reader is its own process (``--worker``), reading through a 20 ms delaying proxy in front of
nginx: a Parquet file's footer and two column chunks of one row group (pyarrow on the HttpFile),
and a zip's central directory plus one member (zipfile on the HttpFile). The table gives the
requests, body bytes and wall time of each process, as the proxy counted them:

- A: a cold directory;
- B: the same, same directory (one revalidating request per file, no body);
- B, immutable=True: no request at all;
- B after the files changed on the server: the new bytes, checked against the new files.

    python benchmarks/disk_cache.py [--delay-ms 20] [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fixtures import Fixtures, Servers, Sizes, make_parquet, make_zip  # noqa: E402


def worker(parquet_url: str, zip_url: str, cache_dir: str, immutable: bool) -> dict[str, Any]:
    """One process's reads; returns what it read, to be checked by the parent."""
    import hashlib
    import zipfile

    import pyarrow.parquet as pq

    import rangeio

    out: dict[str, Any] = {}
    started = time.perf_counter()
    with rangeio.open(parquet_url, cache_dir=cache_dir, immutable=immutable) as f:
        pf = pq.ParquetFile(f)
        group = pf.metadata.num_row_groups // 3
        table = pf.read_row_group(group, columns=["id", "value"])
        out["parquet_rows"] = table.num_rows
        out["parquet_first_id"] = table.column("id")[0].as_py()
    with rangeio.open(zip_url, cache_dir=cache_dir, immutable=immutable) as f:
        archive = zipfile.ZipFile(f)
        names = archive.namelist()
        member = names[len(names) // 3]
        out["zip_members"] = len(names)
        out["zip_member_sha256"] = hashlib.sha256(archive.read(member)).hexdigest()
    out["seconds"] = time.perf_counter() - started
    return out


def run_worker(urls: dict[str, str], cache_dir: str, immutable: bool = False) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable,
            __file__,
            "--worker",
            urls["table.parquet"],
            urls["many.zip"],
            cache_dir,
            "1" if immutable else "0",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(done.stdout))


def expected(fixtures: Fixtures) -> dict[str, Any]:
    import hashlib

    assert fixtures.zip is not None and fixtures.parquet is not None
    members = fixtures.zip.names
    return {
        "parquet_rows": fixtures.parquet.expected.num_rows,  # type: ignore[attr-defined]
        "parquet_first_id": fixtures.parquet.expected.column("id")[0].as_py(),  # type: ignore[attr-defined]
        "zip_members": len(members),
        "zip_member_sha256": hashlib.sha256(
            # The member a third of the way in, as the worker picks it.
            _member(fixtures, members[len(members) // 3])
        ).hexdigest(),
    }


def _member(fixtures: Fixtures, name: str) -> bytes:
    import io
    import zipfile

    assert fixtures.zip is not None
    return zipfile.ZipFile(io.BytesIO(fixtures.zip.data)).read(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay-ms", type=float, default=20.0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--worker", nargs=4, metavar=("PARQUET", "ZIP", "DIR", "IMMUTABLE"))
    args = parser.parse_args()
    if args.worker:
        parquet_url, zip_url, cache_dir, immutable = args.worker
        print(json.dumps(worker(parquet_url, zip_url, cache_dir, immutable == "1")))
        return
    sizes = Sizes.quick() if args.quick else Sizes()
    fixtures = Fixtures(sizes, big=b"x")
    fixtures.zip = make_zip(sizes.zip_members)
    fixtures.parquet = make_parquet(sizes.parquet_row_groups, sizes.parquet_rows_per_group)
    servers = Servers(fixtures, args.delay_ms)
    rows: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="rangeio-diskcache-") as cache_dir:

            def measure(label: str, want: dict[str, Any], immutable: bool = False) -> None:
                servers.proxy.reset()
                got = run_worker(fixtures.urls, cache_dir, immutable)
                counted = servers.proxy.snapshot()
                for key, value in want.items():
                    if got[key] != value:
                        raise SystemExit(f"{label}: {key} is {got[key]!r}, expected {value!r}")
                rows.append((label, got, counted))

            before = expected(fixtures)
            measure("A (cold directory)", before)
            measure("B (same directory)", before)
            measure("B, immutable=True", before, immutable=True)
            # Change both files on the server (same names): B must read the new ones.
            fixtures.zip = make_zip(sizes.zip_members + 7)
            fixtures.parquet = make_parquet(
                sizes.parquet_row_groups + 1, sizes.parquet_rows_per_group
            )
            time.sleep(1.1)  # a new second, so that nginx's Last-Modified (and ETag) move on
            servers.nginx.add_file("many.zip", fixtures.zip.data)
            servers.nginx.add_file("table.parquet", fixtures.parquet.data)
            measure("B after the files changed", expected(fixtures))
    finally:
        servers.close()
    print(
        f"delay {args.delay_ms:g} ms per request; parquet footer + 2 column chunks, zip dir + 1 member"
    )
    print(f"| {'process':<28} | requests | body bytes | wall (s) |")
    print(f"| {'-' * 28} | -------: | ---------: | -------: |")
    for label, got, counted in rows:
        print(
            f"| {label:<28} | {counted['requests']:>8} | {counted['body_bytes']:>10,} "
            f"| {got['seconds']:>8.3f} |"
        )


if __name__ == "__main__":
    main()
