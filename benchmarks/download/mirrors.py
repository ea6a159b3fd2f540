"""Benchmark: a file from two mirrors, one 4x slower, against the fast mirror alone (issue 16, item 4).

One nginx on 127.0.0.1 serves the file through two shaping proxies (shaper.py, each its own
process): the fast mirror paces every connection at ``--rate`` MB/s, the slow one at a quarter
of that, both add ``--delay-ms`` to every request. The same bytes, so the same ETag: they agree.
Each client runs as a child process (`python -m rangeio get`, aria2c when installed), in
alternation, ``--repeats`` times; the median wall time of each row and its ratio to rangeio on
the fast mirror alone are printed. Goal: the two mirrors finish faster than the fast one alone
(ratio < 1). Every output's SHA-256 is checked against the source.

    .venv/bin/python benchmarks/download/mirrors.py            # 256 MiB, 5 repeats, ~2 minutes
    .venv/bin/python benchmarks/download/mirrors.py --quick    # 64 MiB, 3 repeats
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from origin import _nginx_module, make_source, sha256_file  # noqa: E402
from shaper import ShaperProcess  # noqa: E402

MiB = 1024 * 1024
SRC = str(HERE.parents[1] / "src")


def rangeio_argv(urls: list[str], dest: Path, connections: int) -> list[str]:
    return [
        sys.executable, "-m", "rangeio", "get", *urls, "-o", str(dest), "-c", str(connections),
        "-q", "--force",
    ]  # fmt: skip


def aria2c_argv(urls: list[str], dest: Path, connections: int) -> list[str]:
    # -x: connections per server, -s: in all (per server times the mirrors, as rangeio's -c).
    return [
        "aria2c", "--no-conf", "-q", "--file-allocation=falloc", "--allow-overwrite=true",
        "--auto-file-renaming=false", f"-x{connections}", f"-s{connections * len(urls)}", "-k1M",
        "-d", str(dest.parent), "-o", dest.name, *urls,
    ]  # fmt: skip


def timed(argv: list[str], timeout: float) -> tuple[float, float] | None:
    """(wall seconds, CPU seconds of the child: user + sys), None when it failed."""
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    try:
        done = subprocess.run(argv, env=env, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.stderr.write(f"{argv[0]} failed ({done.returncode}): {done.stderr.decode()[-400:]}\n")
        return None
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rate", type=float, default=25.0, help="fast mirror, MB/s per connection")
    parser.add_argument("--delay-ms", type=float, default=40.0)
    parser.add_argument("--connections", type=int, default=4, help="per mirror")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", metavar="PATH", help="also write the results here")
    args = parser.parse_args(argv)
    if args.quick:
        args.size_mib, args.repeats = 64, 3
    load = os.getloadavg()[0]  # other work on the machine, for the reader of the numbers
    with tempfile.TemporaryDirectory(prefix="rangeio-mirrors-") as tmp:
        work = Path(tmp)
        # tests/servers/nginx.py's server as it is (origin.start_nginx edits its config for
        # an access log, which this benchmark does not read).
        nginx = _nginx_module().Nginx(work / "nginx")
        source = make_source(nginx.www / "file.bin", args.size_mib * MiB)
        nginx.start()
        fast = ShaperProcess(nginx.port, args.delay_ms, args.rate)
        slow = ShaperProcess(nginx.port, args.delay_ms, args.rate / 4)
        try:
            name = source.path.name
            fast_url, slow_url = f"{fast.origin}/{name}", f"{slow.origin}/{name}"
            rows: dict[str, tuple[list[str], object]] = {
                "rangeio, fast mirror alone": ([fast_url], rangeio_argv),
                "rangeio, fast + 4x slower mirror": ([fast_url, slow_url], rangeio_argv),
            }
            if shutil.which("aria2c"):
                rows["aria2c, fast mirror alone"] = ([fast_url], aria2c_argv)
                rows["aria2c, fast + 4x slower mirror"] = ([fast_url, slow_url], aria2c_argv)
            times: dict[str, list[float]] = {label: [] for label in rows}
            cpus: dict[str, list[float]] = {label: [] for label in rows}
            shares: dict[str, list[float]] = {label: [] for label in rows}  # the slow one's
            failures: dict[str, int] = {label: 0 for label in rows}
            budget = 8 * args.size_mib * MiB / (args.rate * 1e6) + 30
            for _ in range(args.repeats):
                for label, (urls, make) in rows.items():
                    dest = work / "out.bin"
                    dest.unlink(missing_ok=True)
                    fast.reset()
                    slow.reset()
                    measured = timed(make(urls, dest, args.connections), budget)  # type: ignore[operator]
                    if measured is None or sha256_file(dest) != source.sha256:
                        failures[label] += 1
                        continue
                    times[label].append(measured[0])
                    cpus[label].append(measured[1])
                    sent = [fast.snapshot()["response_bytes"], slow.snapshot()["response_bytes"]]
                    shares[label].append(sent[1] / max(sum(sent), 1))
        finally:
            fast.close()
            slow.close()
            nginx.stop()
    reference = statistics.median(times["rangeio, fast mirror alone"] or [float("nan")])
    print(
        f"{args.size_mib} MiB; fast mirror {args.rate:g} MB/s per connection, slow "
        f"{args.rate / 4:g} MB/s, +{args.delay_ms:g} ms per request; {args.connections} "
        f"connections per mirror; median of {args.repeats} (shared, noisy machine)"
    )
    print(f"load average at the start: {load:.1f}, at the end: {os.getloadavg()[0]:.1f}")
    print(
        f"{'client':<36} {'median s':>9} {'CPU s':>6} {'slow %':>6} {'runs':>5} "
        f"{'vs rangeio fast alone':>22}"
    )
    results = {}
    for label, walls in times.items():
        median = statistics.median(walls) if walls else None
        ratio = median / reference if median is not None else None
        cpu = statistics.median(cpus[label]) if cpus[label] else None
        results[label] = {
            "median_s": median,
            "runs": walls,
            "cpu_s": cpus[label],
            "slow_mirror_share": shares[label],
            "failed": failures[label],
        }
        shown = f"{median:9.2f}" if median is not None else f"{'-':>9}"
        cpu_shown = f"{cpu:6.2f}" if cpu is not None else f"{'-':>6}"
        share = statistics.median(shares[label]) if shares[label] else None
        share_shown = f"{100 * share:6.1f}" if share is not None else f"{'-':>6}"
        print(
            f"{label:<36} {shown} {cpu_shown} {share_shown} {len(walls):>5} "
            f"{(f'{ratio:.2f}x' if ratio is not None else '-'):>22}"
        )
    both = results["rangeio, fast + 4x slower mirror"]["median_s"]
    goal = both is not None and both < reference
    print(f"goal (two mirrors faster than the fast one alone): {'met' if goal else 'NOT met'}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0 if goal and not any(failures.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
