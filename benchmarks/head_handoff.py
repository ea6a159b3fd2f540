"""Measure what handing a send to a helper thread costs per request (`_sync/handoff.py`).

A borrowed client whose head the watchdog cannot cut (requests, niquests, httpx, a borrowed
urllib3 PoolManager) sends on a helper thread, so that a dripped head is abandoned at
``Timeout.head``; with ``head=None`` there is no deadline and no hop. This opens one file on nginx
(loopback, no delaying proxy: the hop's cost is not hidden behind latency) through the same
borrowed client three ways and times ``--reads`` small reads (100 bytes at offsets 16 KiB
apart, so each read is one request on a kept-alive connection):

- ``head=None``: no deadline, no watchdog, no hop;
- ``watchdog only``: ``head=60`` with the same transport told it can be cut (``cuts_head``
  forced True, which it is not: a benchmark-only wrapper), so the send stays on the caller's
  thread and only the watchdog's arming is paid, as rangeio's own urllib3 pool pays it;
- ``handed off``: ``head=60`` as a user gets it: watchdog and helper thread.

The hop's own cost is the difference of the last two. The ways alternate, ``--repeats`` times;
every byte is checked. Reported: medians per request, and the median of the per-repeat ratios.

    .venv/bin/python benchmarks/head_handoff.py                  # requests.Session, 2000 reads
    .venv/bin/python benchmarks/head_handoff.py --client httpx --reads 500 --repeats 3
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import rangeio

REPO = Path(__file__).resolve().parent.parent
SPACING = 16 * 1024
READ = 100


def make_client(name: str) -> Any:
    if name == "requests":
        import requests

        return requests.Session()
    if name == "httpx":
        import httpx

        return httpx.Client()
    if name == "niquests":
        import niquests

        return niquests.Session()
    if name == "pool":
        import urllib3

        return urllib3.PoolManager()
    raise SystemExit(f"unknown client {name!r}")


def cuttable(client: Any) -> Any:
    """The client's transport, claiming it can be cut during the head (it cannot: only for
    measuring the send without the hop; the benchmark's servers never drip)."""
    from rangeio._transport import make_transport

    transport = make_transport(client)
    transport.cuts_head = True  # type: ignore[attr-defined]
    return transport


def run_once(url: str, data: bytes, client: Any, reads: int, head: float | None) -> float:
    timeout = rangeio.Timeout(connect=10, read=60, head=head)
    with rangeio.open(url, client=client, timeout=timeout, prefetch_bytes=0) as f:
        offsets = [i * SPACING for i in range(reads)]
        random.Random(reads).shuffle(offsets)
        before = f.stats.requests
        started = time.perf_counter()
        for offset in offsets:
            f.seek(offset)
            got = f.read(READ)
            if got != data[offset : offset + READ]:
                raise SystemExit(f"!!! BYTES DIFFER FROM THE SOURCE at {offset}")
        elapsed = time.perf_counter() - started
        requests = f.stats.requests - before
    if requests != reads:
        raise SystemExit(f"expected {reads} requests, saw {requests}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--client", default="requests", help="requests, httpx, niquests, pool")
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    sys.path.insert(0, str(REPO / "tests"))
    from servers.nginx import Nginx

    data = random.Random(7).randbytes(args.reads * SPACING)
    with tempfile.TemporaryDirectory(prefix="rangeio-handoff-") as tmp:
        nginx = Nginx(Path(tmp))
        url = nginx.add_file("f.bin", data)
        nginx.start()
        try:
            client = make_client(args.client)
            run_once(url, data, client, min(args.reads, 200), None)  # warm: imports, connection
            watched_client = cuttable(client)
            direct: list[float] = []
            watched: list[float] = []
            handed: list[float] = []
            for _ in range(args.repeats):
                direct.append(run_once(url, data, client, args.reads, None))
                watched.append(run_once(url, data, watched_client, args.reads, 60.0))
                handed.append(run_once(url, data, client, args.reads, 60.0))
            client.close()
        finally:
            nginx.stop()

    def per_request(times: list[float]) -> float:
        return statistics.median(times) / args.reads * 1e6

    def ratio(over: list[float], under: list[float]) -> str:
        ratios = [o / u for o, u in zip(over, under, strict=True)]
        return f"{statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})"

    print(f"{args.client}: {args.reads} range reads of {READ} B, {args.repeats} repeats, nginx")
    print(f"  head=None:                 {per_request(direct):8.1f} us per request (median)")
    print(f"  head=60, watchdog only:    {per_request(watched):8.1f} us per request")
    print(f"  head=60, handed off:       {per_request(handed):8.1f} us per request")
    hop = per_request(handed) - per_request(watched)
    print(
        f"  the hop: {hop:+.1f} us per request; handed off / watchdog only: "
        f"{ratio(handed, watched)}; handed off / head=None: {ratio(handed, direct)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
