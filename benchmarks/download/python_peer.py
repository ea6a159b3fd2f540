"""One download by a Python library, in its own process (so that its CPU time and peak memory
are measured like curl's and aria2c's).

    python python_peer.py rangeio URL DEST [--connections N|auto]
    python python_peer.py pyhaul URL DEST

Protocol with the benchmark: once the imports are done it prints one JSON line
``{"ready": true, "startup_cpu_s": ...}`` and waits (at most 60 s) for a line on stdin; the
benchmark starts its clock when it sends that line. It then downloads and prints one JSON line
with what the library reported (or ``{"error": ...}`` and exits 1).
"""

from __future__ import annotations

import argparse
import json
import resource
import select
import sys
import time
import traceback
from pathlib import Path
from typing import Any


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_rangeio(url: str, dest: Path, connections: int | str) -> dict[str, Any]:
    import rangeio

    def go() -> dict[str, Any]:
        result = rangeio.download(url, dest, connections=connections)
        return {
            "size": result.size,
            "sha256": result.sha256,
            "requests": result.requests,
            "bytes_transferred": result.bytes_transferred,
            "bytes_reused": result.bytes_reused,
            "elapsed": result.elapsed,
            "connections": getattr(result, "connections", None),
            "version": getattr(rangeio, "__version__", None),
        }

    return _ready_then(go)


def run_pyhaul(url: str, dest: Path) -> dict[str, Any]:
    import niquests
    import pyhaul

    def go() -> dict[str, Any]:
        attempts = 0
        with niquests.Session() as session:
            while True:
                attempts += 1
                try:
                    pyhaul.haul(url, session, dest=dest)
                    break
                except pyhaul.PartialHaulError:
                    if attempts >= 10:
                        raise
        return {"requests": attempts, "version": getattr(pyhaul, "__version__", None)}

    return _ready_then(go)


def _ready_then(go: Any) -> dict[str, Any]:
    print(json.dumps({"ready": True, "startup_cpu_s": cpu_seconds()}), flush=True)
    ready, _, _ = select.select([sys.stdin], [], [], 60.0)
    if not ready or not sys.stdin.readline():
        raise SystemExit("no go signal from the benchmark")
    started = time.perf_counter()
    answer = go()
    answer["inner_wall_s"] = time.perf_counter() - started
    return answer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("library", choices=["rangeio", "pyhaul"])
    parser.add_argument("url")
    parser.add_argument("dest", type=Path)
    parser.add_argument(
        "--connections", type=lambda t: t if t == "auto" else int(t), default="auto"
    )
    args = parser.parse_args()
    try:
        if args.library == "rangeio":
            answer = run_rangeio(args.url, args.dest, args.connections)
        else:
            answer = run_pyhaul(args.url, args.dest)
    except Exception as exc:  # reported to the benchmark, which marks the row
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
        traceback.print_exc()
        return 1
    print(json.dumps(answer), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
