"""Benchmark rangeio.download against curl, aria2c (and pyhaul where it installs), on loopback.

Scenario A: a 1 GiB file straight from nginx on 127.0.0.1, one connection per client; rangeio
(durable and hashed) judged by the median of its per-round ratios to ``curl && sync``.
Scenario B: 64 MiB and 256 MiB files through a shaping proxy (shaper.py, its own process): 40 ms
added to every request, 25 MB/s per connection; rangeio's default (connections="auto"), 8 and
1 connections, aria2c -x8 -s8 -k1M.
Scenario C: a 512 MiB file straight from nginx (an uncapped link): rangeio auto against
rangeio with 1 connection and aria2c -x8 -s8 -k1M.
Walls and ratios are medians of the runs (the machine is shared: read ratios within one run).
Every client runs as a child process (CPU time and peak RSS from its rusage) and every output
file's SHA-256 is checked against the source. See benchmarks/README.md ("Downloads").

    .venv/bin/python benchmarks/download/run.py            # full run, about 2 minutes
    .venv/bin/python benchmarks/download/run.py --quick    # 128 MiB / 64 MiB, under a minute
    .venv/bin/python benchmarks/download/run.py --only B --sizes-b 64,1024
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import clients  # noqa: E402
import processes  # noqa: E402
from origin import AccessLog, Source, make_source, sha256_file, start_nginx  # noqa: E402
from shaper import ShaperProcess  # noqa: E402

MiB = 1024 * 1024
GOAL_A = 1.1  # rangeio (1 connection), median per-round ratio to `curl && sync -d`: <= 1.1x
DELAY_MS = 40.0
RATE_MBPS = 25.0
PARALLEL = 8
SINGLE_MAX = 256 * 1024 * 1024  # scenario B runs single-connection rows up to this size


@dataclass(frozen=True)
class Settings:
    size_a: int
    sizes_b: tuple[int, ...]
    size_c: int
    repeats: int = 3
    repeats_a: int = 5  # A's verdict is a median of per-round ratios: more rounds
    budget_a_s: float = 90.0  # a client gets another repeat only while it has used less
    budget_b_s: float = 15.0


@dataclass
class Run:
    wall_s: float | None = None
    cpu_s: float | None = None
    peak_mib: float | None = None
    requests: int | None = None  # as the server side saw them (nginx log / shaping proxy)
    connections: int | None = None
    sha_ok: bool = False
    status: str = "ok"  # ok, WRONG BYTES, ERROR, TIMEOUT
    error: str = ""
    client_report: dict[str, Any] = field(default_factory=dict)  # python_peer.py's answer
    server: dict[str, Any] = field(default_factory=dict)
    origin: dict[str, Any] = field(default_factory=dict)  # nginx's count behind the proxy
    leftovers: list[str] = field(default_factory=list)
    startup_cpu_s: float = 0.0


@dataclass
class Row:
    client: clients.Client
    runs: list[Run] = field(default_factory=list)

    @property
    def spent(self) -> float:
        return sum(r.wall_s or 0.0 for r in self.runs)

    @property
    def failed(self) -> bool:
        return any(r.status != "ok" for r in self.runs)

    @property
    def median(self) -> float | None:
        """The median wall time of the good runs (None if any run failed)."""
        walls = sorted(r.wall_s for r in self.runs if r.status == "ok" and r.wall_s is not None)
        if not walls or self.failed:
            return None
        mid = len(walls) // 2
        return walls[mid] if len(walls) % 2 else (walls[mid - 1] + walls[mid]) / 2

    @property
    def best(self) -> Run | None:
        good = [r for r in self.runs if r.status == "ok" and r.wall_s is not None]
        if good:
            return min(good, key=lambda r: r.wall_s or 0.0)
        return self.runs[0] if self.runs else None


# -- counting requests: nginx's access log (A) or the shaping proxy (B) ------------------------


class LogCounter:
    def __init__(self, log: AccessLog) -> None:
        self.log = log

    def begin(self) -> None:
        self.log.mark()

    def end(self, run: Run) -> None:
        self.log.settle()
        counts = self.log.counts()
        run.server = counts
        run.requests, run.connections = counts["requests"], counts["connections"]


class ShaperCounter:
    def __init__(self, shaper: ShaperProcess, log: AccessLog) -> None:
        self.shaper = shaper
        self.log = log

    def begin(self) -> None:
        self.log.mark()
        self.shaper.reset()

    def end(self, run: Run) -> None:
        self.log.settle()
        snap = self.shaper.snapshot()
        run.server = snap
        run.requests, run.connections = snap["requests"], snap["connections"]
        run.origin = self.log.counts()


# -- running ---------------------------------------------------------------------------------


def run_once(
    client: clients.Client,
    url: str,
    source: Source,
    work: Path,
    label: str,
    counter: LogCounter | ShaperCounter,
    timeout: float,
) -> Run:
    run = Run()
    run_dir = work / label
    run_dir.mkdir(parents=True)
    dest = run_dir / "download.bin"
    try:
        os.sync()  # earlier runs' write-back is not this run's
        counter.begin()
        try:
            proc = processes.run(
                client.argv(url, dest), timeout=timeout, handshake=client.handshake
            )
        except Exception as exc:
            run.status, run.error = "ERROR", f"{type(exc).__name__}: {exc}"
            counter.end(run)
            return run
        counter.end(run)
        run.wall_s = proc.wall_s
        run.cpu_s = proc.cpu_s
        run.peak_mib = proc.peak_rss_kib / 1024 if proc.peak_rss_kib is not None else None
        run.startup_cpu_s = proc.startup_cpu_s
        run.client_report = proc.answer
        if proc.timed_out:
            run.status, run.error = "TIMEOUT", f"killed after {timeout:.0f} s"
        elif proc.returncode != 0:
            detail = proc.answer.get("error") or proc.stderr.strip().splitlines()[-1:]
            run.status, run.error = "ERROR", f"exit {proc.returncode}: {detail}"
        if dest.exists():
            size = dest.stat().st_size
            run.sha_ok = size == source.size and sha256_file(dest) == source.sha256
            if run.status == "ok" and not run.sha_ok:
                run.status, run.error = "WRONG BYTES", f"{size} bytes, SHA-256 differs"
        elif run.status == "ok":
            run.status, run.error = "ERROR", "no output file"
        reported = proc.answer.get("sha256")
        if reported and reported != source.sha256 and run.status == "ok":
            run.status, run.error = "WRONG BYTES", f"the client reported SHA-256 {reported}"
        run.leftovers = sorted(p.name for p in run_dir.iterdir() if p.name != dest.name)
        return run
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def run_rows(
    name: str,
    rows: list[Row],
    url: str,
    source: Source,
    work: Path,
    counter: LogCounter | ShaperCounter,
    settings: Settings,
    budget: float,
    timeout: float,
) -> None:
    """Rounds of every client back to back (so that a slow moment of the machine hits all of
    them); a client repeats only while its runs so far took less than ``budget`` seconds and
    none failed."""
    repeats = settings.repeats_a if name == "A" else settings.repeats
    for round_no in range(repeats):
        # Each round starts with the next client, so that none always runs first (right after
        # the source was written, say) or always after the same neighbour.
        shift = round_no % len(rows)
        for row in rows[shift:] + rows[:shift]:
            if round_no and (row.failed or row.spent + (row.runs[-1].wall_s or 0) > budget):
                continue
            label = f"{name}-{len(row.runs) + 1}-{row.client.kind}-{row.client.connections}"
            run = run_once(row.client, url, source, work, label, counter, timeout)
            row.runs.append(run)
            wall = f"{run.wall_s:.2f} s" if run.wall_s is not None else "-"
            print(f"  {row.client.name}: run {len(row.runs)}: {wall} {run.status}", flush=True)


# -- reporting -------------------------------------------------------------------------------


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def sent_mib(run: Run) -> float | None:
    """Response bytes the client was sent: through the shaping proxy (B, headers included),
    or nginx's body bytes (A)."""
    sent = run.server.get("response_bytes", run.server.get("body_bytes"))
    return sent / MiB if sent is not None else None


def row_table(rows: list[Row], size: int, refs: dict[str, Row | None]) -> tuple[str, list[dict]]:
    columns: list[tuple[str, str, int]] = [
        ("peer", "<", max(len(row.client.name) for row in rows)),
        ("runs", ">", 4),
        ("median s", ">", 8),
        ("best s", ">", 7),
        ("CPU s", ">", 6),
        ("peak MiB", ">", 8),
        ("req", ">", 4),
        ("conns", ">", 5),
        ("MiB sent", ">", 8),
        ("MB/s", ">", 7),
    ]
    columns += [(f"vs {key}", ">", max(len(key) + 3, 7)) for key in refs]
    columns.append(("sha ok", "<", 11))

    def line(values: list[str]) -> str:
        return "  ".join(f"{v:{a}{w}}" for v, (_, a, w) in zip(values, columns)).rstrip()

    out = [line([c[0] for c in columns]), line(["-" * c[2] for c in columns])]
    data = []
    for row in rows:
        best = row.best
        ref_walls = {k: (r.median if r else None) for k, r in refs.items()}
        wall = row.median
        ratios = {k: _ratio(wall, w) for k, w in ref_walls.items()}
        if best is None:
            continue
        sha = "yes" if best.status == "ok" else best.status
        out.append(
            line(
                [
                    row.client.name,
                    str(len(row.runs)),
                    _fmt(wall, ".3f"),
                    _fmt(best.wall_s, ".3f"),
                    _fmt(best.cpu_s, ".2f"),
                    _fmt(best.peak_mib, ".1f"),
                    _fmt(best.requests, "d"),
                    _fmt(best.connections, "d"),
                    _fmt(sent_mib(best), ".1f"),
                    _fmt(size / wall / 1e6 if wall else None, ".0f"),
                    *(_fmt(ratios[k], ".2f", "x") for k in refs),
                    sha,
                ]
            )
        )
        data.append(
            {
                "peer": row.client.name,
                "kind": row.client.kind,
                "connections_asked": row.client.connections,
                "best": asdict(best),
                "median_s": wall,
                "walls_s": [r.wall_s for r in row.runs],
                "ratios": ratios,
                "runs": [asdict(r) for r in row.runs],
            }
        )
    return "\n".join(out), data


def row_notes(rows: list[Row]) -> list[str]:
    notes = []
    for row in rows:
        name = row.client.name
        walls = ", ".join(_fmt(r.wall_s, ".2f") for r in row.runs)
        parts = [f"runs {walls} s"] if len(row.runs) > 1 else []
        for run in row.runs:
            if run.status != "ok":
                parts.append(f"{run.status}: {run.error}")
        best = row.best
        if best is not None and row.client.handshake and best.client_report:
            report = best.client_report
            if "requests" in report:
                parts.append(f"its own count: {report['requests']} request(s)")
            parts.append(f"interpreter start + imports left out (CPU {best.startup_cpu_s:.2f} s)")
        used = best.client_report.get("connections") if best is not None else None
        if row.client.connections == clients.AUTO and used is not None:
            parts.append(f"auto used {used} connection(s) at most")
        if best is not None and row.client.connections > 1 and best.connections == 1:
            parts.append(
                f"asked for {row.client.connections} connections, used 1 "
                "(parallel segments not active in this version)"
            )
        if best is not None and best.leftovers:
            parts.append(f"left behind: {', '.join(best.leftovers)}")
        if best is not None and best.origin and best.origin.get("requests") != best.requests:
            parts.append(f"nginx saw {best.origin.get('requests')} requests")
        if parts:
            notes.append(f"    {name}: {'; '.join(parts)}")
    return notes


def find(rows: list[Row], kind: str, connections: int) -> Row | None:
    for row in rows:
        if row.client.kind == kind and row.client.connections == connections:
            return row
    return None


def goal_line(
    text: str, row: Row | None, ref: Row | None, limit: float, ref_name: str
) -> dict[str, Any]:
    a = row.median if row else None
    b = ref.median if ref else None
    if a is None or b is None:
        missing = ref_name if a is not None else "rangeio"
        verdict = {"goal": text, "ratio": None, "met": None, "why": f"no valid {missing} run"}
        print(f"  goal: {text}: not judged ({verdict['why']})")
        return verdict
    ratio = a / b
    met = ratio <= limit
    print(f"  goal: {text}: {ratio:.2f}x (medians) -> {'MET' if met else 'MISSED'}")
    return {"goal": text, "ratio": ratio, "met": met}


def paired_ratios(row: Row | None, ref: Row | None) -> list[float]:
    """``row``'s wall time over ``ref``'s, round by round (run i of each ran in round i, side
    by side), for the rounds where both succeeded."""
    if row is None or ref is None:
        return []
    return [
        a.wall_s / b.wall_s
        for a, b in zip(row.runs, ref.runs)
        if a.status == b.status == "ok" and a.wall_s is not None and b.wall_s
    ]


def median_goal(
    text: str, row: Row | None, ref: Row | None, limit: float | None, ref_name: str
) -> dict[str, Any]:
    """The verdict: the median of the per-round ratios (``limit`` None: reported, not judged)."""
    ratios = paired_ratios(row, ref)
    if not ratios:
        print(f"  {text}: not judged (no round where rangeio and {ref_name} both succeeded)")
        return {"goal": text, "ratio": None, "met": None, "why": f"no paired {ref_name} run"}
    median = statistics.median(ratios)
    spread = ", ".join(f"{r:.2f}" for r in ratios)
    verdict = "" if limit is None else (" -> MET" if median <= limit else " -> MISSED")
    print(f"  {text}: median {median:.2f}x over {len(ratios)} rounds ({spread}){verdict}")
    met = None if limit is None else median <= limit
    return {"goal": text, "ratio": median, "ratios": ratios, "met": met}


def report(
    title: str, rows: list[Row], size: int, refs: dict[str, Row | None]
) -> list[dict[str, Any]]:
    table, data = row_table(rows, size, refs)
    print()
    print(title)
    print(table)
    for note in row_notes(rows):
        print(note)
    return data


# -- scenarios -------------------------------------------------------------------------------


def scenario_a(
    settings: Settings, nginx: Any, log: AccessLog, www: Path, work: Path, available: dict
) -> dict[str, Any]:
    size = settings.size_a
    print(f"\nA. {size / MiB:.0f} MiB from nginx on 127.0.0.1, no delay, one connection each")
    started = time.monotonic()
    source = make_source(www / "a.bin", size)
    print(
        f"  source generated in {time.monotonic() - started:.1f} s (sha256 {source.sha256[:16]}...)"
    )
    chosen = [clients.rangeio_client(1)]
    if available.get("curl"):
        chosen += [clients.curl(), clients.curl_synced(), clients.curl_durable()]
    if available.get("aria2c"):
        chosen.append(clients.aria2c(1))
    if available.get("pyhaul"):
        chosen.append(clients.pyhaul_client())
    rows = [Row(c) for c in chosen]
    timeout = 60 + size / 20e6
    try:
        run_rows(
            "A",
            rows,
            nginx.url("a.bin"),
            source,
            work,
            LogCounter(log),
            settings,
            settings.budget_a_s,
            timeout,
        )
    finally:
        source.path.unlink(missing_ok=True)
    curl_row = find(rows, "curl", 1)
    synced_row = find(rows, "curl-sync", 1)
    title = f"A. {size / MiB:.0f} MiB, loopback, no delay (best of up to {settings.repeats_a})"
    data = report(title, rows, size, {"curl": curl_row, "curl && sync": synced_row})
    rio = find(rows, "rangeio", 1)
    goal = median_goal(
        f"goal: rangeio connections=1 (durable, hashed) <= {GOAL_A}x `curl && sync -d`",
        rio,
        synced_row,
        GOAL_A,
        "curl && sync",
    )
    same_work = median_goal(
        "like for like: rangeio against curl && sync -d && SHA-256 (one step after another)",
        rio,
        find(rows, "reference", 1),
        None,
        "the reference",
    )
    bare = median_goal("rangeio against bare curl (not durable)", rio, curl_row, None, "curl")
    return {
        "size": size,
        "source_sha256": source.sha256,
        "rows": data,
        "goals": [goal],
        "ratios": {"reference": same_work, "curl": bare},
    }


def scenario_b(
    settings: Settings,
    nginx: Any,
    log: AccessLog,
    www: Path,
    work: Path,
    available: dict,
    size: int,
) -> dict[str, Any]:
    print(
        f"\nB. {size / MiB:.0f} MiB through the shaping proxy: +{DELAY_MS:.0f} ms per request, "
        f"{RATE_MBPS:.0f} MB/s per connection"
    )
    source = make_source(www / "b.bin", size)
    shaper = ShaperProcess(nginx.port, DELAY_MS, RATE_MBPS)
    try:
        chosen = [clients.rangeio_client(clients.AUTO), clients.rangeio_client(PARALLEL)]
        # One connection's time is size / 25 MB/s (43 s for 1 GiB): those rows only run where
        # that stays short.
        single = size <= SINGLE_MAX
        if single:
            chosen.append(clients.rangeio_client(1))
        if single and available.get("curl"):
            chosen.insert(0, clients.curl())
        if available.get("aria2c"):
            chosen.insert(0, clients.aria2c(PARALLEL))
        if available.get("pyhaul"):
            chosen.append(clients.pyhaul_client())
        rows = [Row(c) for c in chosen]
        timeout = 60 + 2 * size / (RATE_MBPS * 1e6)
        counter = ShaperCounter(shaper, log)
        run_rows(
            f"B{size // MiB}",
            rows,
            f"{shaper.origin}/b.bin",
            source,
            work,
            counter,
            settings,
            # Up to 256 MiB, 15 s per client; more for a larger file, so that the parallel
            # rows still get their repeats (a 1 GiB run is about 7 s).
            settings.budget_b_s * max(1.0, size / SINGLE_MAX),
            timeout,
        )
    finally:
        shaper.close()
        source.path.unlink(missing_ok=True)
    curl_row = find(rows, "curl", 1)
    aria_row = find(rows, "aria2c", PARALLEL)
    title = (
        f"B. {size / MiB:.0f} MiB, +{DELAY_MS:.0f} ms/request, {RATE_MBPS:.0f} MB/s per connection "
        f"(medians of up to {settings.repeats}; one connection's floor: "
        f"{size / (RATE_MBPS * 1e6):.1f} s)"
    )
    data = report(title, rows, size, {"curl": curl_row, "aria2": aria_row})
    goals = [
        goal_line(
            f"rangeio default (auto) wall <= aria2c -x{PARALLEL} -s{PARALLEL} -k1M",
            find(rows, "rangeio", clients.AUTO),
            aria_row,
            1.0,
            "aria2c",
        ),
        goal_line(
            f"rangeio connections={PARALLEL} wall <= aria2c -x{PARALLEL} -s{PARALLEL} -k1M",
            find(rows, "rangeio", PARALLEL),
            aria_row,
            1.0,
            "aria2c",
        ),
    ]
    return {
        "size": size,
        "source_sha256": source.sha256,
        "delay_ms": DELAY_MS,
        "rate_mb_per_s_per_connection": RATE_MBPS,
        "rows": data,
        "goals": goals,
    }


def scenario_c(
    settings: Settings, nginx: Any, log: AccessLog, www: Path, work: Path, available: dict
) -> dict[str, Any]:
    size = settings.size_c
    print(f"\nC. {size / MiB:.0f} MiB from nginx on 127.0.0.1, no delay, no cap: auto vs 1")
    source = make_source(www / "c.bin", size)
    chosen = [clients.rangeio_client(clients.AUTO), clients.rangeio_client(1)]
    if available.get("aria2c"):
        chosen.append(clients.aria2c(PARALLEL))
    rows = [Row(c) for c in chosen]
    try:
        run_rows(
            "C",
            rows,
            nginx.url("c.bin"),
            source,
            work,
            LogCounter(log),
            settings,
            settings.budget_a_s,
            60 + size / 20e6,
        )
    finally:
        source.path.unlink(missing_ok=True)
    one = find(rows, "rangeio", 1)
    title = f"C. {size / MiB:.0f} MiB, loopback, uncapped (medians of up to {settings.repeats})"
    data = report(title, rows, size, {"rangeio 1": one, "aria2": find(rows, "aria2c", PARALLEL)})
    goal = goal_line(
        "rangeio default (auto) wall <= rangeio connections=1",
        find(rows, "rangeio", clients.AUTO),
        one,
        1.0,
        "rangeio connections=1",
    )
    return {"size": size, "source_sha256": source.sha256, "rows": data, "goals": [goal]}


# -- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="128 MiB for A, 64 MiB for B and C (a smoke run)"
    )
    parser.add_argument("--only", choices=["A", "B", "C", "a", "b", "c"], help="run one scenario")
    parser.add_argument("--size-a-mib", type=int, help="override scenario A's file size")
    parser.add_argument(
        "--sizes-b",
        type=lambda t: tuple(int(x) for x in t.split(",")),
        help="scenario B's file sizes in MiB, comma-separated (default 64,256)",
    )
    parser.add_argument("--size-c-mib", type=int, help="override scenario C's file size")
    parser.add_argument(
        "--repeats",
        type=int,
        help="rounds: every client once per round (default 5 for A, whose verdict is a "
        "median of per-round ratios, 3 for B and C)",
    )
    parser.add_argument(
        "--tmp-dir",
        type=Path,
        help="where the served file and the downloads go (default: the system temp dir)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=HERE.parent / "results" / "download.json",
        help="JSON results (default benchmarks/results/download.json, git-ignored)",
    )
    args = parser.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be >= 1")
    return args


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    size_a = (128 if args.quick else 1024) * MiB
    sizes_b = tuple(n * MiB for n in (args.sizes_b or ((64,) if args.quick else (64, 256))))
    size_c = (args.size_c_mib or (64 if args.quick else 512)) * MiB
    if args.size_a_mib:
        size_a = args.size_a_mib * MiB
    settings = Settings(size_a, sizes_b, size_c)
    if args.repeats is not None:
        settings = Settings(size_a, sizes_b, size_c, args.repeats, args.repeats)
    only = args.only.upper() if args.only else None
    signal.signal(signal.SIGTERM, _terminate)

    available, unavailable = clients.availability()
    if not processes.gnu_time_available():
        unavailable.append(
            f"peak memory: unavailable (no {processes.GNU_TIME}: apt-get install -y time)"
        )
    for line in unavailable:
        print(line)
    import rangeio

    versions = {
        "rangeio": getattr(rangeio, "__version__", None),
        **available,
        "python": platform.python_version(),
    }
    started = time.monotonic()
    results: dict[str, Any] = {
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "versions": versions,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "unavailable": unavailable,
        "scenarios": {},
    }
    tmp = tempfile.TemporaryDirectory(prefix="rangeio-dl-bench-", dir=args.tmp_dir)
    root = Path(tmp.name)
    nginx = None
    try:
        nginx = start_nginx(root / "nginx")
        log = AccessLog(root / "nginx" / "access.log")
        work = root / "out"
        work.mkdir()
        if only in (None, "A"):
            results["scenarios"]["A"] = scenario_a(settings, nginx, log, nginx.www, work, available)
        if only in (None, "B"):
            for size in settings.sizes_b:
                results["scenarios"][f"B{size // MiB}"] = scenario_b(
                    settings, nginx, log, nginx.www, work, available, size
                )
        if only in (None, "C"):
            results["scenarios"]["C"] = scenario_c(settings, nginx, log, nginx.www, work, available)
    finally:
        if nginx is not None:
            nginx.stop()
        tmp.cleanup()
    results["seconds"] = round(time.monotonic() - started, 1)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{results['seconds']:.0f} s in all; results in {args.output}")
    bad = [
        f"{name}: {row['peer']}"
        for name, scenario in results["scenarios"].items()
        for row in scenario["rows"]
        if any(r["status"] != "ok" for r in row["runs"])
    ]
    if bad:
        print("failed or wrong bytes: " + ", ".join(bad))
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as exc:
        print(f"\ninterrupted ({exc or 'Ctrl-C'}); servers, children and temp files cleaned up")
        sys.exit(130)
