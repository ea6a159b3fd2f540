"""The disk cache across processes: process A reads, then process B does the same with the same cache_dir.

Each reader is its own process (``--worker``), reading through a 20 ms delaying proxy in front of
nginx: a Parquet file's footer and two column chunks of one row group (pyarrow on the HttpFile),
and a zip's central directory plus one member (zipfile on the HttpFile). The table gives the
requests, body bytes and wall time of each process, as the proxy counted them:

- A: a cold directory;
- B: the same, same directory (one revalidating request per file, no body);
- B, immutable=True: no request at all;
- B after the files changed on the server: the new bytes, checked against the new files.

The same for fsspec's ``blockcache::`` and ``simplecache::`` (``cache_storage`` the directory), as
peers, and hctef's ``HttpFile(url, cache_dir=...)`` when hctef is installed (it declares Python
>= 3.12, but its sync HttpFile runs on 3.11: ``pip install --ignore-requires-python hctef``); a peer
that serves the old bytes after the change is marked STALE.

    python benchmarks/disk_cache.py [--delay-ms 20] [--quick]
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fixtures import Fixtures, Servers, Sizes, make_parquet, make_zip  # noqa: E402

KINDS = ("rangeio", "rangeio, no cache_dir", "fsspec blockcache::", "fsspec simplecache::", "hctef")


def available(kind: str) -> bool:
    if kind != "hctef":
        return True
    try:
        import hctef  # noqa: F401
    except ImportError:
        return False
    return True


def opener(kind: str, cache_dir: str, immutable: bool) -> Any:
    """``open(url)`` for a context manager giving a binary file, through ``kind``'s disk cache."""
    if kind == "rangeio":
        import urllib3  # noqa: F401  (as every peer's, its imports are not timed)

        import rangeio

        open_ = rangeio.open  # the lazy name resolved: the file engine loads here, untimed
        return lambda url: open_(url, cache_dir=cache_dir, immutable=immutable)
    if kind == "rangeio, no cache_dir":  # the baseline: what the disk cache costs and saves
        import urllib3  # noqa: F401

        import rangeio

        plain = rangeio.open
        return lambda url: plain(url)
    if kind == "hctef":
        import hctef

        def open_hctef(url: str) -> Any:
            f = hctef.HttpFile(url, cache_dir=cache_dir, immutable=immutable or None).open()
            return io.BufferedReader(_Raw(f), buffer_size=64 * 1024)

        return open_hctef
    import fsspec

    protocol = kind.split()[1].rstrip(":")
    return lambda url: fsspec.open(
        f"{protocol}::{url}", "rb", **{protocol: {"cache_storage": cache_dir}}
    )


class _Raw(io.RawIOBase):
    """hctef's HttpFile as a raw io file (it is not an io.IOBase: pyarrow would see no ``closed``)."""

    def __init__(self, f: Any) -> None:
        self._f = f

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._f.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        return int(self._f.seek(offset, whence))

    def tell(self) -> int:
        return int(self._f.tell())

    def close(self) -> None:
        if not self.closed:
            self._f.close()
        super().close()


def worker(
    kind: str, parquet_url: str, zip_url: str, cache_dir: str, immutable: bool
) -> dict[str, Any]:
    """One process's reads; returns what it read, to be checked by the parent."""
    import hashlib
    import zipfile

    import pyarrow.parquet as pq

    open_ = opener(kind, cache_dir, immutable)
    out: dict[str, Any] = {}
    started = time.perf_counter()
    with open_(parquet_url) as f:
        pf = pq.ParquetFile(f)
        group = pf.metadata.num_row_groups // 3
        table = pf.read_row_group(group, columns=["id", "value"])
        out["parquet_rows"] = table.num_rows
        out["parquet_first_id"] = table.column("id")[0].as_py()
    with open_(zip_url) as f:
        archive = zipfile.ZipFile(f)
        names = archive.namelist()
        member = names[len(names) // 3]
        out["zip_members"] = len(names)
        out["zip_member_sha256"] = hashlib.sha256(archive.read(member)).hexdigest()
    out["seconds"] = time.perf_counter() - started
    return out


def run_worker(
    kind: str, urls: dict[str, str], cache_dir: str, immutable: bool = False
) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable,
            __file__,
            "--worker",
            kind,
            urls["table.parquet"],
            urls["many.zip"],
            cache_dir,
            "1" if immutable else "0",
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise SystemExit(f"{kind}: the worker failed:\n{done.stderr}")
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
    parser.add_argument("--worker", nargs=5, metavar=("KIND", "PARQUET", "ZIP", "DIR", "IMMUTABLE"))
    args = parser.parse_args()
    if args.worker:
        kind, parquet_url, zip_url, cache_dir, immutable = args.worker
        print(json.dumps(worker(kind, parquet_url, zip_url, cache_dir, immutable == "1")))
        return
    sizes = Sizes.quick() if args.quick else Sizes()
    fixtures = Fixtures(sizes, big=b"x")
    originals = (
        make_zip(sizes.zip_members),
        make_parquet(sizes.parquet_row_groups, sizes.parquet_rows_per_group),
    )
    changed = (
        make_zip(sizes.zip_members + 7),
        make_parquet(sizes.parquet_row_groups + 1, sizes.parquet_rows_per_group),
    )
    fixtures.zip, fixtures.parquet = originals
    servers = Servers(fixtures, args.delay_ms)
    rows: list[tuple[str, str, str, dict[str, Any], dict[str, Any]]] = []

    def serve(files: tuple[Any, Any]) -> None:
        fixtures.zip, fixtures.parquet = files
        servers.nginx.add_file("many.zip", fixtures.zip.data)
        servers.nginx.add_file("table.parquet", fixtures.parquet.data)

    try:
        for kind in KINDS:
            if not available(kind):
                print(f"({kind} is not installed: skipped)")
                continue
            serve(originals)
            with tempfile.TemporaryDirectory(prefix="rangeio-diskcache-") as cache_dir:

                def measure(kind: str, label: str, immutable: bool = False) -> None:
                    want = expected(fixtures)
                    servers.proxy.reset()
                    got = run_worker(kind, fixtures.urls, cache_dir, immutable)
                    counted = servers.proxy.snapshot()
                    wrong = [key for key, value in want.items() if got[key] != value]
                    if wrong and kind == "rangeio":
                        raise SystemExit(f"{kind} {label}: wrong {wrong}")
                    rows.append((kind, label, "STALE" if wrong else "ok", got, counted))

                measure(kind, "A (cold directory)")
                measure(kind, "B (same directory)")
                if kind in ("rangeio", "hctef"):
                    measure(kind, "B, immutable=True", immutable=True)
                # Both files change on the server (same names; sizes and ETags change): B must
                # read the new ones.
                serve(changed)
                measure(kind, "B after the files changed")
    finally:
        servers.close()
    print(
        f"delay {args.delay_ms:g} ms per request; parquet footer + 2 column chunks, zip dir + 1 member"
    )
    print(f"| {'library':<21} | {'process':<26} | requests | body bytes | wall (s) | bytes |")
    print(f"| {'-' * 21} | {'-' * 26} | -------: | ---------: | -------: | ----- |")
    for kind, label, verdict, got, counted in rows:
        print(
            f"| {kind:<21} | {label:<26} | {counted['requests']:>8} | {counted['body_bytes']:>10,} "
            f"| {got['seconds']:>8.3f} | {verdict:<5} |"
        )


if __name__ == "__main__":
    main()
