"""Real third-party readers over HTTP, side by side: rangeio, fsspec's http filesystem, GDAL.

Every job (``jobs.py``) reads data the benchmark wrote with the real tools, from nginx behind
the delaying proxy (20 ms per request by default), once per side, cold. The table gives, per
side, requests, connections (TCP connections the proxy accepted), MiB (response bytes through
the proxy, headers included) and wall seconds;
the time ratio rangeio / fsspec; whether every result matched the local file; and rangeio's
``stats.bytes_fetched`` against the body bytes the proxy passed.

    .venv/bin/python benchmarks/readers/run.py [--delay-ms 20] [--only tar,zarr] [--output PATH]

Exits 1 if a reader returned a wrong result or raised, or if rangeio's stats differ from the
proxy by more than 1 %; a row where rangeio uses more requests or body bytes than fsspec is marked
(``more req`` / ``more MiB``) but does not change the exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from rig import BENCHMARKS, Served, stats_vs_proxy  # noqa: E402  (puts benchmarks/ on the path)

from harness import Row  # noqa: E402


def cell(row: Row | None) -> str:
    if row is None:
        return "-"
    if row.error is not None:
        return row.status
    return f"{row.requests} req, {row.connections} conn, {row.mib:.2f} MiB, {row.wall_s:.2f} s"


def verdict(rio: Row | None, peer: Row | None) -> str:
    """Where rangeio's default uses more than fsspec's (issue 12's "Done when")."""
    if rio is None or peer is None or rio.error or peer.error:
        return "-"
    worse = []
    if rio.requests > peer.requests:
        worse.append("more req")
    # Body bytes: a 206 carries a Content-Range header that a HEAD or a 200 does not (about 30
    # bytes), so equal transfers would count as "more" by headers alone.
    if rio.extra.get("body_bytes", 0) > peer.extra.get("body_bytes", 0):
        worse.append("more MiB")
    return ", ".join(worse) or "ok"


def _warm_imports() -> None:
    """Import what the sides load lazily (the filesystems fsspec finds by protocol, and
    aiohttp, which rangeio's async files and fsspec's http filesystem create on first use), so
    that the first row to need one does not pay 0.1-0.2 s of imports in its wall time."""
    for name in ("aiohttp", "urllib3", "rangeio.fsspec", "fsspec.implementations.http"):
        try:
            __import__(name)
        except ImportError:
            pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay-ms", type=float, default=20.0)
    parser.add_argument("--only", action="append", help="job keys or prefixes (comma-separated)")
    parser.add_argument("--output", type=Path, default=BENCHMARKS / "results" / "readers.json")
    args = parser.parse_args(argv)
    only = {k for arg in args.only or [] for k in arg.split(",") if k} or None
    warnings.filterwarnings("ignore", category=FutureWarning)

    from jobs import make_jobs

    _warm_imports()

    served = Served(args.delay_ms)
    errors: list[str] = []
    peer_errors: list[str] = []
    lines: list[str] = []
    results: list[dict[str, Any]] = []
    try:
        print("writing the data with the real tools ...", flush=True)
        jobs, skipped = make_jobs(served.www, only)
        for line in skipped:
            print(line)
        served.start()
        print(f"nginx behind the delaying proxy (+{args.delay_ms:g} ms per request)\n", flush=True)
        for job in jobs:
            print(job.title, flush=True)
            rows = {side: served.run(job, side) for side in job.sides}
            rio, peer, gdal = rows.get("rangeio"), rows.get("fsspec"), rows.get("gdal")
            ok = all(row.error is None for row in rows.values())
            for side, row in rows.items():
                # A peer that cannot do the job is a result (its cell says ERROR); wrong bytes
                # from anyone, or rangeio failing, is the benchmark's failure.
                if row.error and (side == "rangeio" or row.status == "MISMATCH"):
                    errors.append(f"{job.key} {side}: {row.error}")
                elif row.error:
                    peer_errors.append(f"{job.key} {side}: {row.error}")
            stats_cell, problem = stats_vs_proxy(rio) if rio is not None else ("-", None)
            if problem:
                errors.append(f"{job.key} rangeio: {problem}")
            ratio = "-"
            if rio and peer and not (rio.error or peer.error) and peer.wall_s > 0:
                ratio = f"{rio.wall_s / peer.wall_s:.2f}"
            line = " | ".join(
                [
                    job.title,
                    cell(rio),
                    cell(peer),
                    cell(gdal) if gdal is not None else "-",
                    ratio,
                    "yes" if ok else "NO",
                    stats_cell,
                    verdict(rio, peer),
                ]
            )
            lines.append(f"| {line} |")
            for side, row in rows.items():
                for note in row.notes:
                    print(f"    {side}: {note}")
            print(f"    {lines[-1]}\n", flush=True)
            results.append(
                {
                    "key": job.key,
                    "title": job.title,
                    "rows": {side: row.as_json() for side, row in rows.items()},
                }
            )
    finally:
        served.close()
    header = (
        "| reader / job | rangeio | fsspec | GDAL /vsicurl/ | time rangeio / fsspec "
        "| results ok | rangeio stats - proxy | rangeio vs fsspec |"
    )
    print(f"\n{args.delay_ms:g} ms per request\n")
    print(header)
    print("|" + " --- |" * 8)
    print("\n".join(lines))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"delay_ms": args.delay_ms, "jobs": results}, indent=1))
    for error in peer_errors:
        print(f"(peer failed: {error.splitlines()[0][:200]})")
    for error in errors:
        print(f"!!! {error}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
