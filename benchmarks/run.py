"""Benchmark rangeio (sync and async) against fsspec's HTTP filesystem and hctef, on loopback.

nginx serves generated files on 127.0.0.1; a delaying proxy (benchmarks/proxy.py, its own
process) sits in front and adds --delay-ms to every request, and counts requests and response
bytes the same way for every library. See benchmarks/README.md.

    .venv/bin/python benchmarks/run.py            # full run, a few minutes
    .venv/bin/python benchmarks/run.py --quick    # smaller files, a smoke run
    .venv/bin/python benchmarks/run.py --only zip,tail
    .venv/bin/python benchmarks/run.py --only async-cursors,async-read-ranges   # or 8,9
    .venv/bin/python benchmarks/run.py --only zip-members,conda-metadata        # or 10,11
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from fixtures import Fixtures, Servers, Sizes, make_big, make_parquet, make_zip  # noqa: E402
from harness import MiB  # noqa: E402
from peers import AsyncLibrary, Library, Peers, find_peers  # noqa: E402
from report import print_scenario, scenario_json  # noqa: E402
from scenarios import SCENARIOS as SYNC_SCENARIOS  # noqa: E402
from scenarios import Scenario  # noqa: E402
from scenarios_async import ASYNC_SCENARIOS  # noqa: E402
from scenarios_formats import FORMAT_SCENARIOS, FormatContext, peer_versions  # noqa: E402
from scenarios_formats import build as build_format_fixtures  # noqa: E402

SCENARIOS = {**SYNC_SCENARIOS, **ASYNC_SCENARIOS, **FORMAT_SCENARIOS}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="rangeio vs fsspec HTTP vs hctef over a delaying loopback proxy"
    )
    parser.add_argument(
        "--delay-ms", type=float, default=20.0, help="delay added to each request (default 20)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="small files and few repeats: a fast smoke run"
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="SCENARIO",
        help=(
            "run only these scenarios (name or number; repeat or comma-separate): "
            + ", ".join(f"{n}={k}" for k, (n, _) in SCENARIOS.items())
        ),
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=HERE / "results" / "latest.json",
        help="where to write the JSON results (default benchmarks/results/latest.json)",
    )
    args = parser.parse_args(argv)
    args.scenarios = select(args.only, parser)
    if args.delay_ms < 0:
        parser.error("--delay-ms must be >= 0")
    return args


def select(only: list[str] | None, parser: argparse.ArgumentParser) -> list[str]:
    if not only:
        return list(SCENARIOS)
    by_number = {str(n): key for key, (n, _) in SCENARIOS.items()}
    chosen: set[str] = set()
    for item in only:
        for word in filter(None, (w.strip().lower() for w in item.split(","))):
            key = by_number.get(word, word)
            if key not in SCENARIOS:
                parser.error(f"unknown scenario {word!r}; choose from {', '.join(SCENARIOS)}")
            chosen.add(key)
    return [key for key in SCENARIOS if key in chosen]


def smoke_check(lib: Library, url: str, source: bytes) -> str | None:
    """Open, read 16 bytes at 1 MiB, close: why the library cannot be benchmarked, or None."""
    try:
        opened = lib.open(url)
        try:
            opened.file.seek(MiB)
            got = opened.file.read(16)
        finally:
            opened.close()
    except Exception as exc:
        return f"smoke test failed: {type(exc).__name__}: {exc}"
    if got != source[MiB : MiB + 16]:
        return "smoke test read wrong bytes"
    return None


async def smoke_check_async(lib: AsyncLibrary, url: str, source: bytes) -> str | None:
    """smoke_check for an async file."""
    try:
        opened = await lib.open(url)
        try:
            opened.file.seek(MiB)
            got = await opened.file.read(16)
        finally:
            await opened.close()
    except Exception as exc:
        return f"smoke test failed: {type(exc).__name__}: {exc}"
    if got != source[MiB : MiB + 16]:
        return "smoke test read wrong bytes"
    return None


def check_peers(peers: Peers, url: str, source: bytes, *, asynchronous: bool) -> None:
    for attr in ("fsspec", "hctef"):
        lib: Library | None = getattr(peers, attr)
        if lib is None:
            continue
        reason = smoke_check(lib, url, source)
        if reason is not None:
            peers.unavailable[attr] = reason
            setattr(peers, attr, None)
    if asynchronous and peers.hctef_aio is not None:
        reason = asyncio.run(smoke_check_async(peers.hctef_aio, url, source))
        if reason is not None:
            peers.unavailable["hctef async"] = reason
            peers.hctef_aio = None


def versions(peers: Peers) -> dict[str, str]:
    import rangeio

    out = {"python": platform.python_version(), "rangeio": rangeio.__version__}
    for lib in (peers.fsspec, peers.hctef):
        if lib is not None:
            out[lib.name] = lib.version
    try:
        import pyarrow

        out["pyarrow"] = pyarrow.__version__
    except ImportError:
        pass
    out.update(peer_versions())
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = Sizes.quick() if args.quick else Sizes()
    started = time.perf_counter()

    print(f"generating files ({'quick' if args.quick else 'full'} sizes) ...", flush=True)
    fixtures = Fixtures(sizes, big=make_big(sizes.big_bytes))
    if "zip" in args.scenarios:
        fixtures.zip = make_zip(sizes.zip_members)
    if "parquet" in args.scenarios:
        fixtures.parquet = make_parquet(sizes.parquet_row_groups, sizes.parquet_rows_per_group)

    formats = build_format_fixtures(args.scenarios, args.quick)

    peers = find_peers()
    servers = Servers(fixtures, args.delay_ms)
    scenarios: list[Scenario] = []
    try:
        # The format scenarios' files are served by the same nginx, behind the same proxy.
        for name, data in formats.files().items():
            servers.nginx.add_file(name, data)
            formats.urls[name] = f"{servers.proxy.origin}/{name}"
        any_async = any(key in ASYNC_SCENARIOS for key in args.scenarios)
        check_peers(peers, fixtures.urls["big.bin"], fixtures.big, asynchronous=any_async)
        print(
            f"nginx on 127.0.0.1:{servers.nginx.port}, delaying proxy on "
            f"127.0.0.1:{servers.proxy.port} (+{args.delay_ms:g} ms per request)"
        )
        for key, value in versions(peers).items():
            print(f"  {key}: {value}")
        # hctef.aio matters only to the async scenarios: no line about it otherwise.
        for name in ("fsspec", "hctef", *(["hctef async"] if any_async else [])):
            if name in peers.unavailable:
                print(f"{name}: unavailable ({peers.unavailable[name]})")
        print(flush=True)

        ctx = FormatContext(
            fixtures,
            servers.proxy,
            peers,
            sizes,
            args.delay_ms,
            progress=lambda msg: print(msg, file=sys.stderr, flush=True),
            fixtures_formats=formats,
            quick=args.quick,
        )
        for key in args.scenarios:
            number, scenario_fn = SCENARIOS[key]
            print(f"  running {number}. {key} ...", file=sys.stderr, flush=True)
            scenario = scenario_fn(ctx)
            scenarios.append(scenario)
            print_scenario(scenario)
    finally:
        servers.close()

    elapsed = time.perf_counter() - started
    failures = [
        f"{s.number}. {s.key} / {r.library}: {r.error}"
        for s in scenarios
        for r in s.rows
        if r.error is not None
    ]
    misses = [
        f"{s.number}. {s.key} / {r.library}: target {r.target}"
        for s in scenarios
        for r in s.rows
        if r.ok is False
    ]
    write_json(args, sizes, peers, scenarios, elapsed)
    print(f"targets met by rangeio: {count_met(scenarios)}; missed: {len(misses)}")
    for line in misses:
        print(f"  missed  {line}")
    print(f"total time {elapsed:.1f} s; results in {display_path(args.output)}")
    if failures:
        print("\nERRORS (wrong bytes or exceptions):")
        for line in failures:
            print(f"  {line}")
        return 1
    return 0


def count_met(scenarios: list[Scenario]) -> int:
    return sum(1 for s in scenarios for r in s.rows if r.ok is True)


def display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def write_json(
    args: argparse.Namespace,
    sizes: Sizes,
    peers: Peers,
    scenarios: list[Scenario],
    elapsed: float,
) -> None:
    doc: dict[str, Any] = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "delay_ms": args.delay_ms,
        "quick": args.quick,
        "sizes": asdict(sizes),
        "versions": versions(peers),
        "unavailable": peers.unavailable,
        "machine": {"platform": platform.platform(), "processor": platform.machine()},
        "elapsed_s": round(elapsed, 2),
        "scenarios": [scenario_json(s) for s in scenarios],
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
