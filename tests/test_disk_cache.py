"""The disk cache (``cache_dir``) against real servers: what a later open costs, and never stale bytes."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import rangeio
import rangeio.aio
from rangeio._core.diskcache import SCAN_SHARE
from rangeio._diskcache import DiskStore
from rangeio.testing import Faults, FaultServer
from tests.adapters import Opener
from tests.servers.nginx import Nginx

MiB = 1024 * 1024


def whole(f: object) -> bytes:
    f.seek(0)  # type: ignore[attr-defined]
    return f.read()  # type: ignore[attr-defined, no-any-return]


def test_second_open_costs_one_request_and_no_body(
    opener: Opener, fault_server: FaultServer, sample_files: dict[str, bytes], tmp_path: Path
) -> None:
    data = sample_files["data.bin"]
    url = fault_server.url("/data.bin")
    with opener(url, cache_dir=tmp_path) as f:
        f.seek(1000)
        assert f.read(300_000) == data[1000:301_000]
        f.seek(-5000, 2)
        assert f.read() == data[-5000:]
    fault_server.clear_log()
    with opener(url, cache_dir=tmp_path) as g:
        g.seek(1000)
        assert g.read(300_000) == data[1000:301_000]
        g.seek(-5000, 2)
        assert g.read() == data[-5000:]
        assert g.stats.requests == 1 and g.stats.bytes_fetched == 0
        assert g.stats.revalidations == 1 and g.stats.disk_hits > 0
    [only] = fault_server.requests
    assert only.headers["if-none-match"] == fault_server.etag("/data.bin")


def test_immutable_costs_no_request(
    opener: Opener, fault_server: FaultServer, sample_files: dict[str, bytes], tmp_path: Path
) -> None:
    data = sample_files["data.bin"]
    url = fault_server.url("/data.bin")
    with opener(url, cache_dir=tmp_path, immutable=True) as f:
        f.seek(2 * MiB)
        assert f.read(100_000) == data[2 * MiB : 2 * MiB + 100_000]
    fault_server.clear_log()
    with opener(url, cache_dir=tmp_path, immutable=True) as g:
        assert g.size == len(data)
        g.seek(2 * MiB)
        assert g.read(100_000) == data[2 * MiB : 2 * MiB + 100_000]
        assert g.stats.requests == 0
    assert fault_server.requests == []


@pytest.mark.parametrize("faults", [Faults(), Faults(ignore_conditionals=True)])
def test_a_changed_file_is_never_served_stale(
    opener: Opener, sample_files: dict[str, bytes], tmp_path: Path, faults: Faults
) -> None:
    old = sample_files["data.bin"]
    new = old[::-1]
    with FaultServer({"/f.bin": old}) as server:
        server.set_faults("/f.bin", faults)
        url = server.url("/f.bin")
        with opener(url, cache_dir=tmp_path) as f:
            assert whole(f) == old
        server.replace("/f.bin", new)
        with opener(url, cache_dir=tmp_path) as g:
            assert whole(g) == new
        # The new version is what the directory serves next.
        server.clear_log()
        with opener(url, cache_dir=tmp_path) as h:
            assert whole(h) == new
            if not faults.ignore_conditionals:
                assert h.stats.bytes_fetched == 0


def test_server_ignoring_conditionals_still_reuses_the_same_version(
    fault_server: FaultServer, sample_files: dict[str, bytes], tmp_path: Path
) -> None:
    fault_server.set_faults("/data.bin", Faults(ignore_conditionals=True))
    data = sample_files["data.bin"]
    url = fault_server.url("/data.bin")
    with rangeio.open(url, cache_dir=tmp_path) as f:
        f.seek(0)
        f.read(600_000)
    with rangeio.open(url, cache_dir=tmp_path) as g:
        assert g.read(600_000) == data[:600_000]
        # The open's own request (its 206, same ETag) is the only one: the rest is on disk.
        assert g.stats.requests == 1 and g.stats.disk_hits > 0


@pytest.mark.parametrize("etag", ["weak", "none"])
def test_weak_or_no_validator_is_not_reused(
    fault_server: FaultServer, sample_files: dict[str, bytes], tmp_path: Path, etag: str
) -> None:
    data = sample_files["data.bin"]
    fault_server.add_file("/w.bin", data, etag=etag, last_modified=False)  # type: ignore[arg-type]
    url = fault_server.url("/w.bin")
    for _ in range(2):
        with rangeio.open(url, cache_dir=tmp_path) as f:
            assert f.read(300_000) == data[:300_000]
            assert f.stats.disk_hits == 0 and f.stats.bytes_fetched >= 300_000


def test_last_modified_only_revalidates_with_if_modified_since(
    fault_server: FaultServer, sample_files: dict[str, bytes], tmp_path: Path
) -> None:
    data = sample_files["data.bin"]
    fault_server.add_file("/lm.bin", data, etag="none")
    url = fault_server.url("/lm.bin")
    with rangeio.open(url, cache_dir=tmp_path) as f:
        whole(f)
    fault_server.clear_log()
    with rangeio.open(url, cache_dir=tmp_path) as g:
        assert whole(g) == data
        assert g.stats.requests == 1 and g.stats.bytes_fetched == 0
    assert "if-modified-since" in fault_server.requests[0].headers


def test_a_corrupt_block_is_fetched_again(
    fault_server: FaultServer, sample_files: dict[str, bytes], tmp_path: Path
) -> None:
    data = sample_files["data.bin"]
    url = fault_server.url("/data.bin")
    with rangeio.open(url, cache_dir=tmp_path) as f:
        whole(f)
    blocks = sorted((tmp_path / "v1").glob("*/*.blk"))
    assert blocks
    for path in blocks[:3]:
        raw = bytearray(path.read_bytes())
        raw[-1] ^= 0xFF
        path.write_bytes(bytes(raw))
    with rangeio.open(url, cache_dir=tmp_path) as g:
        assert whole(g) == data
        assert 0 < g.stats.bytes_fetched < len(data)


def test_environment_turns_it_on(
    fault_server: FaultServer, sample_files: dict[str, bytes], tmp_path: Path
) -> None:
    url = fault_server.url("/data.bin")
    code = (
        "import sys, rangeio\n"
        "f = rangeio.open(sys.argv[1]); f.seek(-4096, 2); f.read()\n"
        "print(f.stats.requests, f.stats.bytes_fetched)\n"
    )
    env = {**os.environ, "RANGEIO_CACHE_DIR": str(tmp_path / "c")}
    outs = [
        subprocess.run(
            [sys.executable, "-c", code, url], env=env, capture_output=True, text=True, check=True
        ).stdout.split()
        for _ in range(2)
    ]
    assert outs[1] == ["1", "0"] and outs[0][0] == "1" and int(outs[0][1]) > 0
    assert (tmp_path / "c" / "v1").is_dir()


def _read_in_child(url: str, root: str, start: int, stop: int, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    with rangeio.open(url, cache_dir=root) as f:
        f.seek(start)
        out.put((f.read(stop - start), f.stats.requests, f.stats.bytes_fetched))


def test_another_process_reuses_nginx_blocks(
    nginx: Nginx, sample_files: dict[str, bytes], tmp_path: Path
) -> None:
    data = sample_files["table.parquet"]
    url = nginx.url("table.parquet")
    ctx = multiprocessing.get_context("spawn")
    results = []
    for _ in range(2):
        out: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
        p = ctx.Process(target=_read_in_child, args=(url, str(tmp_path), 0, len(data), out))
        p.start()
        results.append(out.get(timeout=30))
        p.join(timeout=30)
        assert p.exitcode == 0
    (first, _, fetched_a), (second, requests_b, fetched_b) = results
    assert first == second == data
    assert fetched_a >= len(data) and (requests_b, fetched_b) == (1, 0)


def test_options_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cache_dir_bytes"):
        rangeio.open("http://127.0.0.1:9/x", cache_dir=tmp_path, cache_dir_bytes=10)
    with pytest.raises(TypeError, match="cache_dir"):
        rangeio.open("http://127.0.0.1:9/x", cache_dir=3)
    with pytest.raises(ValueError, match="empty"):
        rangeio.open("http://127.0.0.1:9/x", cache_dir="")
    with pytest.raises(TypeError, match="immutable"):
        rangeio.open("http://127.0.0.1:9/x", immutable="yes")


def test_cli_cache_info_and_clear(
    fault_server: FaultServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rangeio import cli

    root = tmp_path / "c"
    for name in ("/data.bin", "/small.bin"):
        with rangeio.open(fault_server.url(name), cache_dir=root) as f:
            f.read()
    assert cli.main(["cache", "info", "--dir", str(root), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["entries"] == 2 and facts["blocks"] > 0 and facts["bytes"] > 3 * MiB
    # Nothing is older than a day: nothing goes.
    assert cli.main(["cache", "clear", "--dir", str(root), "--older-than", "1d"]) == 0
    assert cli.main(["cache", "info", "--dir", str(root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["entries"] == 2
    assert cli.main(["cache", "clear", "--dir", str(root)]) == 0
    assert cli.main(["cache", "info", "--dir", str(root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "dir": str(root),
        "entries": 0,
        "blocks": 0,
        "bytes": 0,
    }
    with pytest.raises(SystemExit) as usage:
        cli.main(["cache", "clear", "--older-than", "soon", "--dir", str(root)])
    assert usage.value.code == 2


def test_fsspec_storage_option(
    fault_server: FaultServer, sample_files: dict[str, bytes], tmp_path: Path
) -> None:
    import fsspec

    data = sample_files["data.bin"]
    url = fault_server.url("/data.bin")
    for _ in range(2):
        fault_server.clear_log()
        fs = fsspec.filesystem("rangeio", cache_dir=str(tmp_path), skip_instance_cache=True)
        with fs.open(url, "rb") as f:
            f.seek(-3000, 2)
            assert f.read() == data[-3000:]
    # The second filesystem's open: one conditional request, no body.
    [only] = fault_server.requests
    assert "if-none-match" in only.headers


def _random_reader(url: str, root: str, budget: int, seed: int, data: bytes, bad: Any) -> None:
    """Open, read random ranges, close, again and again; report any wrong byte."""
    rng = random.Random(seed)
    for _ in range(12):
        with rangeio.open(url, cache_dir=root, cache_dir_bytes=budget) as f:
            for _ in range(6):
                start = rng.randrange(len(data))
                stop = min(len(data), start + rng.randrange(1, 200_000))
                f.seek(start)
                if f.read(stop - start) != data[start:stop]:
                    bad.put((seed, start, stop))


def test_processes_killed_at_random_serve_no_wrong_byte(
    fault_server: FaultServer, sample_files: dict[str, bytes], tmp_path: Path
) -> None:
    data = sample_files["data.bin"]
    url = fault_server.url("/data.bin")
    root = str(tmp_path / "c")
    budget = 1 * MiB
    ctx = multiprocessing.get_context("fork")
    bad: Any = ctx.Queue()
    procs = [
        ctx.Process(target=_random_reader, args=(url, root, budget, seed, data, bad))
        for seed in range(4)
    ]
    for p in procs:
        p.start()
    rng = random.Random(1)
    victims = procs[:2]
    for p in victims:
        p.join(timeout=rng.uniform(0.2, 0.6))
        if p.is_alive():
            os.kill(p.pid or 0, signal.SIGKILL)
    for p in procs:
        p.join(timeout=60)
        assert not p.is_alive()
    assert [p.exitcode for p in procs[2:]] == [0, 0]
    assert bad.empty()
    # Every block left behind (by killed processes too) is right, or refused.
    with rangeio.open(url, cache_dir=root, cache_dir_bytes=budget) as f:
        assert whole(f) == data
    # Between two scans each process may write budget/SCAN_SHARE more (docs/disk-cache.md).
    info = DiskStore(root, budget).info()
    assert info.bytes <= budget + 5 * (budget // SCAN_SHARE + 256 * 1024)


def test_read_ranges_are_served_from_disk(
    opener: Opener, fault_server: FaultServer, sample_files: dict[str, bytes], tmp_path: Path
) -> None:
    data = sample_files["data.bin"]
    url = fault_server.url("/data.bin")
    ranges = [(10, 5000), (700_000, 900_000), (2 * MiB, 2 * MiB + 77), (len(data) - 9, len(data))]
    for second in (False, True):
        with opener(url, cache_dir=tmp_path, prefetch_bytes=0) as f:
            assert f.read_ranges(ranges) == [data[a:b] for a, b in ranges]
            if second:
                assert f.stats.requests == 1 and f.stats.bytes_fetched == 0
                assert f.stats.disk_hits >= len(ranges)


@pytest.mark.parametrize("is_async", [False, True])
def test_range_stream_is_served_from_disk(
    is_async: bool, fault_server: FaultServer, sample_files: dict[str, bytes], tmp_path: Path
) -> None:
    data = sample_files["data.bin"]
    url = fault_server.url("/data.bin")
    spans = [(100, 700_000), (2 * MiB, 2 * MiB + 5000), (len(data) - 300, len(data))]

    def read_all() -> tuple[list[bytes], rangeio.Stats]:
        if is_async:
            import asyncio

            async def run() -> tuple[list[bytes], rangeio.Stats]:
                async with rangeio.aio.RangeStream(url, cache_dir=tmp_path) as rs:
                    out = []
                    for span in spans:
                        await rs.add(span)
                        out.append(await rs.read())
                    return out, rs.stats

            return asyncio.run(run())
        with rangeio.RangeStream(url, cache_dir=tmp_path) as rs:
            out = []
            for span in spans:
                rs.add(span)
                out.append(rs.read())
            return out, rs.stats

    first, _ = read_all()
    second, stats = read_all()
    assert first == second == [data[a:b] for a, b in spans]
    assert stats.requests == 1 and stats.bytes_fetched == 0 and stats.disk_hits > 0
    # And a file opened later reuses what the stream wrote.
    with rangeio.open(url, cache_dir=tmp_path, prefetch_bytes=0) as f:
        f.seek(100)
        assert f.read(600_000) == data[100:600_100]
        assert f.stats.bytes_fetched == 0


def test_format_planner_passes_cache_dir(
    fault_server: FaultServer, sample_files: dict[str, bytes], tmp_path: Path
) -> None:
    import zipfile

    from rangeio.formats.zip import ZipStream

    url = fault_server.url("/archive.zip")
    reference = zipfile.ZipFile(io.BytesIO(sample_files["archive.zip"]))
    name = reference.namelist()[len(reference.namelist()) // 2]
    for _ in range(2):
        fault_server.clear_log()
        archive = ZipStream(url, cache_dir=tmp_path)
        try:
            assert archive.read(name) == reference.read(name)
        finally:
            archive.close()
    # The second listing and member: the open's one conditional request, answered 304.
    assert [r.headers.get("if-none-match") is not None for r in fault_server.requests] == [True]


def test_a_304_naming_another_etag_is_not_trusted(
    sample_files: dict[str, bytes], tmp_path: Path
) -> None:
    from tests.raw_server import RawConnection, RawRequest, raw_server, response_head, serve_range

    data = sample_files["data.bin"]

    def handler(conn: RawConnection, request: RawRequest) -> None:
        if request.header("if-none-match") is not None:
            # A confused cache: "not modified", but about another version than the one asked.
            conn.send(response_head(304, {"ETag": '"other"'}))
        else:
            conn.send(serve_range(data, request))

    with raw_server(handler) as server:
        with rangeio.open(server.url(), cache_dir=tmp_path) as f:
            f.seek(-1000, 2)
            assert f.read() == data[-1000:]
        with rangeio.open(server.url(), cache_dir=tmp_path) as g:
            g.seek(-1000, 2)
            assert g.read() == data[-1000:]
            # The 304 dropped the entry; the open asked again without a precondition.
            assert g.stats.requests == 2 and g.stats.disk_hits == 0
        conditional = [r.header("if-none-match") for r in server.requests]
        assert conditional == [None, '"raw-1"', None]


def test_fault_server_answers_conditional_requests(fault_server: FaultServer) -> None:
    import urllib3

    url = fault_server.url("/small.bin")
    etag = fault_server.etag("/small.bin")
    assert etag is not None
    http = urllib3.PoolManager()
    try:
        first = http.request("GET", url, headers={"Range": "bytes=0-9"})
        modified = first.headers["Last-Modified"]

        def status(**headers: str) -> int:
            answer = http.request("GET", url, headers={"Range": "bytes=0-9", **headers})
            return answer.status

        assert status(**{"If-None-Match": etag}) == 304
        assert status(**{"If-None-Match": '"other", ' + etag}) == 304
        assert status(**{"If-None-Match": '"other"'}) == 206
        assert status(**{"If-Modified-Since": modified}) == 304
        assert status(**{"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}) == 206
        # If-None-Match decides when both are sent (RFC 9110 §13.1.3).
        assert status(**{"If-None-Match": '"other"', "If-Modified-Since": modified}) == 206
        fault_server.set_faults("/small.bin", Faults(ignore_conditionals=True))
        assert status(**{"If-None-Match": etag}) == 206
    finally:
        http.clear()


def test_threads_on_clones_share_the_directory(
    fault_server: FaultServer, sample_files: dict[str, bytes], tmp_path: Path
) -> None:
    import threading

    data = sample_files["data.bin"]
    url = fault_server.url("/data.bin")
    wrong: list[tuple[int, int]] = []

    def read_some(f: Any, seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(20):
            start = rng.randrange(len(data))
            stop = min(len(data), start + rng.randrange(1, 300_000))
            f.seek(start)
            if f.read(stop - start) != data[start:stop]:
                wrong.append((start, stop))

    for _ in range(2):
        with rangeio.open(url, cache_dir=tmp_path, cache_bytes=2 * MiB) as f:
            clones = [f.clone() for _ in range(4)]
            threads = [
                threading.Thread(target=read_some, args=(c, i)) for i, c in enumerate(clones)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    assert wrong == []
    with rangeio.open(url, cache_dir=tmp_path) as g:
        assert whole(g) == data
