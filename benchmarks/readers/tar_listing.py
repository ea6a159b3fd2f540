"""tarfile over HTTP: list a 1,043-member tar and extract one member, rangeio against fsspec.

``tarfile.open(fileobj=f).getnames()`` reads a 512-byte header, seeks forward over the member's
data, reads the next header: forward-strided access. The tar (``tests/servers/tarball.py``)
is generated with ``tarfile`` from a fixed seed (mixed sizes: most small, some up to 320 KiB),
served by nginx behind the benchmarks' delaying proxy, which counts requests, round trips,
connections, response bytes and body bytes. Every byte a reader returns is checked against the source (the ``Verified``
wrapper), the names against the archive's, the extracted member against its bytes; for rangeio
``stats.bytes_fetched`` is compared with the body bytes the proxy passed.

    .venv/bin/python benchmarks/readers/tar_listing.py [--delay-ms 20] [--output PATH]

Exits 1 if a reader returned wrong bytes or raised, or if rangeio's stats disagree with the
proxy by more than 1 %; a missed target is reported but does not change the exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parent.parent
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

from rig import stats_vs_proxy  # noqa: E402  (the one stats check of benchmarks/readers)

from fixtures import load_nginx_class  # noqa: E402  (puts tests/ on the path too)
from harness import Meter, Row, VerificationError, Verified, check_equal, measure  # noqa: E402
from peers import Library, fsspec_library, rangeio_library  # noqa: E402
from proxy import ProxyProcess  # noqa: E402
from report import format_scenario  # noqa: E402
from scenarios import Scenario, judge  # noqa: E402

load_nginx_class()
from servers.tarball import make_member_tar  # noqa: E402

TAR_NAME = "members.tar"


@dataclass
class TarFixture:
    data: bytes
    names: list[str]
    one: str  # the member extracted: a third of the way in
    one_bytes: bytes


def make_tar() -> TarFixture:
    data, contents = make_member_tar()
    names = list(contents)
    one = names[len(names) // 3]
    return TarFixture(data, names, one, contents[one])


def run_tar(proxy: ProxyProcess, lib: Library, url: str, fx: TarFixture, *, extract: bool) -> Row:
    def body(meter: Meter, row: Row) -> None:
        meter.start()
        opened = lib.open(url)
        try:
            meter.opened()
            f = Verified(opened.file, fx.data, lib.name)
            with tarfile.open(fileobj=f) as tar:  # type: ignore[call-overload]
                check_equal(lib.name, "the member names", tar.getnames(), fx.names)
                if extract:
                    member = tar.extractfile(fx.one)
                    if member is None:
                        raise VerificationError(f"{lib.name}: {fx.one} is not a file")
                    check_equal(lib.name, f"member {fx.one}", member.read(), fx.one_bytes)
            meter.stop()
            row.library_stats = opened.stats()
            row.extra["bytes_verified"] = f.bytes_checked
        finally:
            opened.close()

    print(f"    {lib.name} ...", flush=True)
    row = measure(proxy, lib.name, body)
    # The counters stay until the next row resets them: read the bodies' bytes after the close.
    row.extra["body_bytes"] = proxy.snapshot()["body_bytes"]
    return row


def check_stats(row: Row) -> str | None:
    """rangeio's own count of body bytes against the proxy's; an error, or None."""
    return stats_vs_proxy(row)[1]


def libraries() -> list[Library]:
    libs = [
        rangeio_library(),
        rangeio_library("rangeio prefetch_direction=START", prefetch_direction="START"),
    ]
    fsspec = fsspec_library()
    if isinstance(fsspec, str):
        print(f"fsspec: unavailable ({fsspec})")
    else:
        libs.append(fsspec)
    return libs


def scenario(
    proxy: ProxyProcess, url: str, fx: TarFixture, *, extract: bool, number: int
) -> tuple[Scenario, list[str]]:
    what = "list + extract one" if extract else "list"
    title = (
        f"tar {what}: tarfile getnames(){' + extractfile(one).read()' if extract else ''} "
        f"on a {len(fx.names):,}-member tar ({len(fx.data) / 2**20:.1f} MiB)"
    )
    print(title, flush=True)
    rows = [run_tar(proxy, lib, url, fx, extract=extract) for lib in libraries()]
    errors = [f"{row.library}: {row.error}" for row in rows if row.error]
    peer = next((row for row in rows if row.library == "fsspec" and row.error is None), None)
    for row in rows:
        if row.library_stats is None:
            continue
        problem = check_stats(row)
        if problem:
            errors.append(f"{row.library}: {problem}")
        if peer is not None:
            judge(row, f"<= fsspec's {peer.requests} req", row.requests <= peer.requests)
    return Scenario(f"tar-{'extract' if extract else 'list'}", number, title, rows), errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay-ms", type=float, default=20.0)
    parser.add_argument("--output", type=Path, default=BENCHMARKS / "results" / "tar_listing.json")
    args = parser.parse_args(argv)
    fx = make_tar()
    tmp = tempfile.TemporaryDirectory(prefix="rangeio-bench-tar-")
    nginx = load_nginx_class()(Path(tmp.name))
    nginx.add_file(TAR_NAME, fx.data)
    nginx.start()
    errors: list[str] = []
    results: list[dict[str, Any]] = []
    try:
        proxy = ProxyProcess(nginx.port, args.delay_ms)
        try:
            url = f"{proxy.origin}/{TAR_NAME}"
            print(f"nginx behind the delaying proxy (+{args.delay_ms:g} ms per request)\n")
            runs: list[Callable[[], tuple[Scenario, list[str]]]] = [
                lambda: scenario(proxy, url, fx, extract=False, number=1),
                lambda: scenario(proxy, url, fx, extract=True, number=2),
            ]
            for run in runs:
                done, problems = run()
                errors += problems
                print(format_scenario(done), flush=True)
                results.append(
                    {
                        "key": done.key,
                        "title": done.title,
                        "rows": [row.as_json() for row in done.rows],
                    }
                )
        finally:
            proxy.close()
    finally:
        nginx.stop()
        tmp.cleanup()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"delay_ms": args.delay_ms, "scenarios": results}, indent=1))
    for error in errors:
        print(f"!!! {error}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
