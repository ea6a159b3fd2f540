"""`make demo`: read a remote zip listing and a parquet footer from an embedded loopback server.

Every job checks what it got, and the demo exits non-zero when a check fails: the checks are
explicit (not ``assert``, which ``python -O`` strips), so `make demo` and tests/test_demo.py can
fail.
"""

from __future__ import annotations

import hashlib
import io
import random
import sys
import tempfile
import zipfile
from pathlib import Path

import rangeio
from rangeio.testing import Faults, FaultServer


def _sample_zip(members: int = 2000) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for i in range(members):
            archive.writestr(f"logs/day-{i:04d}.txt", f"entry {i}\n".encode() * 50)
        # A large stored member, so the archive is far bigger than what listing it costs.
        archive.writestr("blob.bin", random.Random(7).randbytes(8 << 20), zipfile.ZIP_STORED)
    return buf.getvalue()


def _sample_parquet() -> bytes | None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return None
    n = 400_000
    table = pa.table(
        {
            "id": range(n),
            "score": [i * 0.25 for i in range(n)],
            "tag": [f"t{i % 97}" for i in range(n)],
        }
    )
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=100_000)
    return buf.getvalue()


def _verdict(checks: dict[str, bool]) -> str:
    """ "ok", or "FAIL: " and the checks that failed."""
    failed = [what for what, held in checks.items() if not held]
    return "ok" if not failed else "FAIL: " + ", ".join(failed)


def main() -> int:
    """Run the jobs, print their table; 0 when every job checks out, else 1."""
    rows: list[tuple[str, int, int, str]] = []
    zip_bytes = _sample_zip()
    big = random.Random(11).randbytes(24 << 20)
    files = {"/archive.zip": zip_bytes, "/big.bin": big}
    parquet = _sample_parquet()
    if parquet is not None:
        files["/table.parquet"] = parquet
    with FaultServer(files) as server:
        print(f"embedded range server on {server.origin}")

        with rangeio.open(server.url("/archive.zip")) as f, zipfile.ZipFile(f) as archive:
            names = archive.namelist()
            member = archive.read("logs/day-1234.txt")
            check = _verdict(
                {
                    "member bytes": member == b"entry 1234\n" * 50,
                    "member count": len(names) == 2001,
                    # Listing the zip costs a small part of it, or the demo proves nothing.
                    "fetched a small part": f.stats.bytes_fetched < len(zip_bytes) // 4,
                }
            )
            print(
                f"zip: {len(names)} members listed, one read, archive is {f.size / 2**20:.1f} MiB"
            )
            rows.append(("zip listing + 1 member", f.stats.requests, f.stats.bytes_fetched, check))

        if parquet is not None:
            import pyarrow.parquet as pq

            with rangeio.open(server.url("/table.parquet")) as f:
                pf = pq.ParquetFile(f)
                meta = pf.metadata
                group = pf.read_row_group(2, columns=["id", "score"])
                check = _verdict(
                    {
                        "first id of row group 2": group.column("id")[0].as_py() == 200_000,
                        "rows": meta.num_rows == 400_000,
                    }
                )
                print(
                    f"parquet: {meta.num_rows} rows in {meta.num_row_groups} row groups; read 2 columns of one"
                )
                rows.append(
                    ("parquet footer + 2 columns", f.stats.requests, f.stats.bytes_fetched, check)
                )
        else:
            rows.append(("parquet (install pyarrow)", 0, 0, "skipped"))

        with rangeio.open(server.url("/archive.zip"), prefetch_bytes=0) as f:
            wanted = [(i * 97_003, i * 97_003 + 4096) for i in range(40)]
            pieces = f.read_ranges(wanted)
            check = _verdict({"bytes": pieces == [zip_bytes[a:b] for a, b in wanted]})
            rows.append(("read_ranges: 40 x 4 KiB", f.stats.requests, f.stats.bytes_fetched, check))

        with tempfile.TemporaryDirectory() as tmp:
            dest = Path(tmp) / "big.bin"
            # The first attempt is cut after 10 MiB, as a dropped link would be.
            server.faults = Faults(truncate_after=10 << 20, times=1)
            first_attempt = 0
            cut = False
            try:
                rangeio.haul(server.url("/big.bin"), dest=dest)
            except rangeio.PartialDownloadError as exc:
                cut = True
                first_attempt = exc.bytes_done
                print(f"download: cut after {exc.bytes_done:,} durable bytes; resuming")
            server.clear_faults()
            result = rangeio.haul(server.url("/big.bin"), dest=dest)
            verified = result.sha256 == hashlib.sha256(big).hexdigest()
            print(
                f"download: resumed with {result.bytes_reused:,} bytes reused, "
                f"{result.bytes_transferred:,} transferred, SHA-256 {'verified' if verified else 'WRONG'}"
            )
            requests = sum(1 for r in server.requests if r.path == "/big.bin")
            fetched = first_attempt + result.bytes_transferred
            # The job shows a resume, so it proves one happened: the first attempt was cut, the
            # second asked the server again and reused what the first had made durable.
            check = _verdict(
                {
                    "first attempt cut": cut and 0 < first_attempt < len(big),
                    "two requests": requests >= 2,
                    "bytes reused": result.bytes_reused > 0,
                    "only the rest transferred": result.bytes_transferred < len(big),
                    "SHA-256": verified and dest.read_bytes() == big,
                }
            )
            rows.append(("download, cut then resumed", requests, fetched, check))

    print()
    print(f"{'job':<30} {'requests':>8} {'bytes':>12}  check")
    for job, requests, fetched, check in rows:
        print(f"{job:<30} {requests:>8} {fetched:>12,}  {check}")
    failed = [job for job, _, _, check in rows if check.startswith("FAIL")]
    if failed:
        print(f"demo FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
