"""Files that travel: every face pickles as a description (URL, options, position, pinned
identity), sends nothing until its first I/O on the other side, refuses a changed file there, and never
carries a credential unasked; process pools (fork and spawn) and a dask LocalCluster read them."""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import io
import multiprocessing
import pickle
import tarfile
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest

import rangeio
import rangeio.aio
from rangeio.formats import ParquetPlan, PngImage, TarIndex, ZipStream
from rangeio.testing import Faults, FaultServer
from tests import pickle_workers
from tests.adapters import AsyncFacade, Opener
from tests.conftest import make_bytes, make_parquet

DATA = make_bytes(300_000, seed=17)
CHANGED = DATA[::-1]  # same size: only the validators can tell
SECRET = "Bearer s3cr3t-token-value"


def travel(obj: Any) -> Any:
    return pickle.loads(pickle.dumps(obj))


def revive(opener: Opener, f: Any) -> Any:
    """``f`` (an opener's file) pickled and unpickled, behind the same facade."""
    if opener.is_async:
        return AsyncFacade(opener._loop, travel(f.file))  # type: ignore[arg-type]
    return travel(f)


def pickled(opener: Opener, f: Any) -> bytes:
    return pickle.dumps(f.file if opener.is_async else f)


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer({"/data.bin": DATA}) as s:
        s.add_file("/weak.bin", DATA, etag="weak")
        s.add_file("/dated.bin", DATA, etag="none")
        yield s


# -- round trips ------------------------------------------------------------------------------


def test_http_file_round_trip_every_adapter(server: FaultServer, opener: Opener) -> None:
    f = opener(server.url("/data.bin"))
    f.seek(1234)
    assert f.read(100) == DATA[1234:1334]
    twin = revive(opener, f)
    try:
        # No request on unpickling: position and size are known at once.
        assert twin.stats.requests == 0
        assert (twin.tell(), twin.size) == (1334, len(DATA))
        assert twin.read(5000) == DATA[1334:6334]
        assert twin.stats.requests >= 1
        twin.seek(-10, io.SEEK_END)
        assert twin.read() == DATA[-10:]
        assert twin.read_ranges([(0, 10), (200_000, 200_100)]) == [
            DATA[0:10],
            DATA[200_000:200_100],
        ]
        # The original is untouched and reads on.
        assert f.read(10) == DATA[1334:1344]
    finally:
        twin.close()
        f.close()


def test_first_read_there_is_one_request_under_the_pinned_etag(server: FaultServer) -> None:
    with rangeio.open(server.url("/data.bin")) as f:
        f.seek(200_000)
        blob = pickle.dumps(f)
    server.clear_log()
    with pickle.loads(blob) as twin:
        assert twin.read(4096) == DATA[200_000:204_096]
        assert twin.stats.requests == 1  # no second open, no prefetch
    (request,) = server.requests
    assert request.headers["if-match"] == server.etag("/data.bin")
    assert request.range is not None and request.range.startswith("bytes=200000-")


def test_unpickled_file_pickles_again_before_any_read(server: FaultServer) -> None:
    with rangeio.open(server.url("/data.bin")) as f:
        f.seek(77)
        once = travel(f)
    twice = travel(once)  # never read: it still knows its identity and position
    assert (twice.tell(), twice.read(3)) == (77, DATA[77:80])
    assert once.stats.requests == 0


def test_closed_file_does_not_pickle(server: FaultServer) -> None:
    f = rangeio.open(server.url("/data.bin"))
    f.close()
    with pytest.raises(ValueError, match="closed"):
        pickle.dumps(f)


def test_unopened_async_file_travels_as_url(server: FaultServer) -> None:
    unopened = rangeio.aio.AsyncHttpFile(server.url("/data.bin"), headers={"Authorization": SECRET})
    blob = pickle.dumps(unopened)
    assert b"s3cr3t" not in blob

    async def main() -> bytes:
        f = pickle.loads(blob)
        async with f:
            return bytes(await f.read(50))

    assert asyncio.run(main()) == DATA[:50]


def test_range_stream_round_trip(server: FaultServer) -> None:
    with rangeio.RangeStream(server.url("/data.bin")) as rs:
        rs.add((100, 5000), name="a")
        rs.add((9000, 12000), name="b", activate=False)
        assert rs.read(10) == DATA[100:110]
        twin = travel(rs)
    with twin:
        assert twin.stats.requests == 0
        assert (twin.active.name, twin.tell()) == ("a", 10)
        assert twin.read(20) == DATA[110:130]
        assert twin.activate("b").read() == DATA[9000:12000]
        assert [r.name for r in twin.ranges.values()] == ["a", "b"]


def test_single_request_range_stream_round_trip(server: FaultServer) -> None:
    with rangeio.RangeStream(server.url("/data.bin"), single_request=True) as rs:
        rs.add((100, 200), name="a")
        rs.add((500, 900), name="b")
        rs.read(10)
        twin = travel(rs)
    with twin:
        assert twin.single_request
        assert twin.read(7) == DATA[510:517]
        assert twin.activate("a").read() == DATA[100:200]


def test_async_range_stream_round_trip(server: FaultServer) -> None:
    async def main() -> None:
        async with rangeio.aio.RangeStream(server.url("/data.bin")) as rs:
            await rs.add((100, 200), name="a")
            await rs.add((500, 900), name="b")
            rs.activate("a")
            assert await rs.read(10) == DATA[100:110]
            twin = travel(rs)
        async with twin:
            assert await twin.read(5) == DATA[110:115]
            assert await twin.activate("b").read() == DATA[500:900]

    asyncio.run(main())


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for i in range(20):
            z.writestr(f"m{i}.txt", make_bytes(3000, seed=i))
    return buf.getvalue()


def _tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for i in range(5):
            info = tarfile.TarInfo(f"t{i}.bin")
            info.size = 1000 + i
            t.addfile(info, io.BytesIO(make_bytes(1000 + i, seed=i)))
    return buf.getvalue()


def _png() -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    rows = b"".join(b"\x00" + bytes([y] * 8) for y in range(4))
    ihdr = struct.pack(">IIBBBBB", 8, 4, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def test_format_readers_round_trip(server: FaultServer) -> None:
    pytest.importorskip("pyarrow")
    server.add_file("/a.zip", _zip())
    server.add_file("/a.tar", _tar())
    server.add_file("/a.parquet", make_parquet())
    server.add_file("/a.png", _png())
    with ZipStream(server.url("/a.zip")) as z:
        zt = travel(z)
    with zt:
        # The directory travelled: the member costs its own request, no index read.
        assert [m.name for m in zt.members()] == [f"m{i}.txt" for i in range(20)]
        assert zt.read("m7.txt") == make_bytes(3000, seed=7)
    with TarIndex(server.url("/a.tar")) as t:
        tt = travel(t)
    with tt:
        assert tt.read("t3.bin") == make_bytes(1003, seed=3)
    with ParquetPlan(server.url("/a.parquet")) as p:
        pt = travel(p)
        assert (pt.num_rows, pt.column_paths()) == (p.num_rows, p.column_paths())
        assert pt.stats.requests == 0  # the footer travelled; parsed again, nothing sent
    with PngImage(server.url("/a.png")) as img:
        it = travel(img)
    with it:
        assert list(it.rows()) == [bytes([y] * 8) for y in range(4)]


def test_async_format_readers_round_trip(server: FaultServer) -> None:
    """rangeio.aio.formats' readers pickle as the sync ones do: what they parsed and their
    AsyncHttpFile's description; the copy reads on its own loop, with no request for the
    index."""
    pytest.importorskip("pyarrow")
    server.add_file("/a.zip", _zip())
    server.add_file("/a.tar", _tar())
    server.add_file("/a.parquet", make_parquet())
    formats = rangeio.aio.formats

    async def pickled() -> tuple[Any, Any, Any]:
        async with formats.zip.open(server.url("/a.zip")) as z:
            zt = travel(z)
        async with formats.tar.open(server.url("/a.tar")) as t:
            tt = travel(t)
        async with formats.parquet.open(server.url("/a.parquet")) as p:
            pt = travel(p)
        return zt, tt, pt

    zt, tt, pt = asyncio.run(pickled())

    async def revived() -> None:
        server.clear_log()
        async with zt:
            assert zt.namelist() == [f"m{i}.txt" for i in range(20)]
            assert await zt.read("m7.txt") == make_bytes(3000, seed=7)
        async with tt:
            assert await tt.read("t3.bin") == make_bytes(1003, seed=3)
        async with pt:
            assert pt.num_rows == 20_000
            assert pt.stats.requests == 0  # the footer travelled
        assert len(server.requests) == 2  # one member each, no index read

    asyncio.run(revived())


def test_fsspec_files_and_filesystem_round_trip(server: FaultServer) -> None:
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("rangeio", skip_instance_cache=True)
    url = server.url("/data.bin")
    with fs.open(url) as f:
        f.seek(4000)
        f.read(1)
        twin = travel(f)
    with twin:
        assert (twin.tell(), twin.read(10)) == (4001, DATA[4001:4011])
    assert travel(fs).cat_file(url, 10, 20) == DATA[10:20]

    async def main() -> None:
        af = await fs.open_async(url)
        af.seek(9)
        async_twin = travel(af)
        await af.close()
        assert await async_twin.read(3) == DATA[9:12]
        await async_twin.close()

    asyncio.run(main())


# -- the pinned identity ----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/data.bin", "/weak.bin", "/dated.bin"])
def test_changed_file_on_the_other_side_raises(
    server: FaultServer, opener: Opener, path: str
) -> None:
    """Strong ETag (If-Match: 412), weak ETag and Last-Modified alone (judged on the answer)."""
    f = opener(server.url(path))
    f.seek(50_000)
    blob = pickled(opener, f)
    f.close()
    server.replace(path, CHANGED)
    twin = pickle.loads(blob)
    twin = AsyncFacade(opener._loop, twin) if opener.is_async else twin  # type: ignore[arg-type]
    try:
        with pytest.raises(rangeio.RemoteChangedError):
            twin.read(10)
        with pytest.raises(rangeio.RemoteChangedError):  # and again: never the new bytes
            twin.read(10)
    finally:
        twin.close()


def test_changed_file_raises_for_a_range_stream(server: FaultServer) -> None:
    with rangeio.RangeStream(server.url("/dated.bin")) as rs:
        rs.add((10, 20))
        blob = pickle.dumps(rs)
    server.replace("/dated.bin", CHANGED)
    with pickle.loads(blob) as twin, pytest.raises(rangeio.RemoteChangedError):
        twin.read()


# -- what a pickle carries --------------------------------------------------------------------


def test_headers_stay_behind_by_default(server: FaultServer) -> None:
    with rangeio.open(server.url("/data.bin"), headers={"Authorization": SECRET}) as f:
        blob = pickle.dumps(f)
    assert SECRET.encode() not in blob
    assert b"s3cr3t" not in blob
    server.clear_log()
    with pickle.loads(blob) as twin:
        twin.read(10)
    assert server.requests and all("authorization" not in r.headers for r in server.requests)


def test_pickle_headers_true_sends_them(server: FaultServer) -> None:
    with rangeio.open(
        server.url("/data.bin"), headers={"Authorization": SECRET}, pickle_headers=True
    ) as f:
        blob = pickle.dumps(f)
    assert SECRET.encode() in blob
    server.clear_log()
    with pickle.loads(blob) as twin:
        twin.read(10)
    assert [r.headers.get("authorization") for r in server.requests] == [SECRET]


def _secret_clients() -> list[tuple[str, Any]]:
    made: list[tuple[str, Any]] = []
    import requests

    session = requests.Session()
    session.auth = ("alice", "pw-requests-secret")
    session.headers["X-Api-Key"] = "key-requests-secret"
    made.append(("requests", session))
    import httpx

    made.append(
        (
            "httpx",
            httpx.Client(auth=("alice", "pw-httpx-secret"), headers={"X-Api-Key": "key-httpx"}),
        )
    )
    import niquests

    nsession = niquests.Session()
    nsession.auth = ("alice", "pw-niquests-secret")
    made.append(("niquests", nsession))
    return made


@pytest.mark.parametrize("kind", ["requests", "httpx", "niquests"])
def test_borrowed_client_is_not_pickled(server: FaultServer, kind: str) -> None:
    client = dict(_secret_clients())[kind]
    f = rangeio.open(server.url("/data.bin"), client=client)
    f.read(10)
    blob = pickle.dumps(f)
    f.close()
    client.close()  # the twin never uses it: it reads through rangeio's own pool
    for secret in (b"pw-", b"key-", b"alice", kind.encode() + b"."):
        assert secret not in blob
    with pickle.loads(blob) as twin:
        assert twin.read(10) == DATA[10:20]
    assert all("authorization" not in r.headers for r in server.requests[-1:])


def test_async_borrowed_client_is_not_pickled(server: FaultServer) -> None:
    import httpx

    async def main() -> bytes:
        client = httpx.AsyncClient(auth=("alice", "pw-async-secret"))
        async with rangeio.aio.open(server.url("/data.bin"), client=client) as f:
            blob = pickle.dumps(f)
        await client.aclose()
        assert b"pw-async" not in blob and b"alice" not in blob
        twin = pickle.loads(blob)
        try:
            return bytes(await twin.read(10))
        finally:
            await twin.close()

    assert asyncio.run(main()) == DATA[:10]


def test_filesystem_pickle_leaves_client_and_headers(server: FaultServer) -> None:
    fsspec = pytest.importorskip("fsspec")
    import requests

    session = requests.Session()
    session.auth = ("alice", "pw-fs-secret")
    fs = fsspec.filesystem(
        "rangeio", client=session, headers={"Authorization": SECRET}, skip_instance_cache=True
    )
    blob = pickle.dumps(fs)
    assert b"pw-fs" not in blob and b"s3cr3t" not in blob
    assert pickle.loads(blob).client is not session


def test_client_factory_serves_unpickled_files(server: FaultServer) -> None:
    import requests

    seen: list[str] = []
    session = requests.Session()
    session.hooks["response"].append(lambda r, *a, **k: seen.append(r.url))
    with rangeio.open(server.url("/data.bin")) as f:
        blob = pickle.dumps(f)
    asked: list[str] = []

    def factory(url: str) -> Any:
        asked.append(url)
        return session

    rangeio.set_client_factory(factory)
    try:
        with pickle.loads(blob) as twin:
            assert twin.read(10) == DATA[:10]
    finally:
        rangeio.set_client_factory(None)
    assert asked == [server.url("/data.bin")]
    assert seen and all(u.startswith(server.origin) for u in seen)
    with pytest.raises(TypeError):
        rangeio.set_client_factory("not callable")  # type: ignore[arg-type]


def test_async_client_factory_serves_unpickled_files(server: FaultServer) -> None:
    import httpx

    async def main() -> None:
        requests_seen: list[str] = []

        async def hook(request: Any) -> None:
            requests_seen.append(str(request.url))

        client = httpx.AsyncClient(event_hooks={"request": [hook]})
        async with rangeio.aio.open(server.url("/data.bin")) as f:
            blob = pickle.dumps(f)
        rangeio.aio.set_client_factory(lambda url: client)
        try:
            twin = pickle.loads(blob)
            assert await twin.read(10) == DATA[:10]
            await twin.close()
        finally:
            rangeio.aio.set_client_factory(None)
            await client.aclose()
        assert requests_seen

    asyncio.run(main())


def test_client_factory_in_spawned_workers(server: FaultServer) -> None:
    """The recipe of docs/distributed.md: the factory registered by the pool's initializer."""
    with (
        rangeio.open(server.url("/data.bin")) as f,
        concurrent.futures.ProcessPoolExecutor(
            1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=rangeio.set_client_factory,
            initargs=(pickle_workers.counting_session,),
        ) as pool,
    ):
        data, responses = pool.submit(pickle_workers.read_through_factory, f).result()
    assert (data, responses) == (DATA[:10], 1)


def test_redirect_target_travels_unless_presigned(server: FaultServer) -> None:
    server.add_file("/plain", b"")
    server.set_faults("/plain", Faults(redirect_to="/data.bin"))
    presigned = "/data.bin?X-Amz-Date=20990101T000000Z&X-Amz-Expires=3600&X-Amz-Signature=ab"
    server.add_file("/signed", b"")
    server.set_faults("/signed", Faults(redirect_to=presigned))
    for path, first_request in (("/plain", "/data.bin"), ("/signed", "/signed")):
        with rangeio.open(server.url(path)) as f:
            blob = pickle.dumps(f)
        server.clear_log()
        with pickle.loads(blob) as twin:
            assert twin.url == server.url(path)
            assert twin.read(10) == DATA[:10]
        assert server.requests[0].path == first_request
    assert b"X-Amz-Signature" not in pickle.dumps(pickle.loads(blob))


# -- other processes --------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_process_pool_reads_pickled_files(server: FaultServer, method: str) -> None:
    files = []
    for at in (0, 100_000, 250_000):
        f = rangeio.open(server.url("/data.bin"))
        f.seek(at)
        files.append(f)
    context = multiprocessing.get_context(method)
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=context) as pool:
        results = list(pool.map(pickle_workers.read_at, files))
        server.replace("/data.bin", CHANGED)
        errors = list(pool.map(pickle_workers.read_error, files))
    for f, (pid, position, digest, requests) in zip(files, results):
        assert pid != multiprocessing.current_process().pid
        assert position == f.tell()
        assert digest == hashlib.sha256(DATA[position : position + 1000]).hexdigest()
        assert requests >= 1
        f.close()
    assert errors == ["RemoteChangedError"] * 3


def test_workers_share_the_disk_cache_of_the_pinned_version(
    server: FaultServer, tmp_path: Any
) -> None:
    """A file opened with ``cache_dir`` and sent to workers: the bytes the first worker fetched
    are served to a later one (another process) from the directory, with no request, as the
    version the driver opened; after the file changes, a read the disk cannot serve raises."""
    big = make_bytes(2_000_000, seed=23)
    server.add_file("/big.bin", big)
    f = rangeio.open(server.url("/big.bin"), cache_dir=str(tmp_path), prefetch_bytes=0)
    f.seek(300_000)
    context = multiprocessing.get_context("spawn")
    want = hashlib.sha256(big[300_000:301_000]).hexdigest()
    for turn in range(2):
        before = len(server.requests)
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
            digest, requests, disk_hits = pool.submit(
                pickle_workers.read_at_with_disk_hits, f
            ).result()
        assert digest == want, (turn, requests, disk_hits)
        if turn == 0:
            assert requests >= 1 and len(server.requests) > before, (requests, disk_hits)
        else:
            assert (requests, disk_hits) == (0, 1), "served from the directory"
            assert len(server.requests) == before
    server.replace("/big.bin", big[::-1])
    f.seek(1_000_000)  # bytes no worker fetched: the server is asked, and the change is seen
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        assert pool.submit(pickle_workers.read_error, f).result() == "RemoteChangedError"
    f.close()


def test_dask_local_cluster_reads_pickled_files(tmp_path: Any) -> None:
    distributed = pytest.importorskip("distributed")
    dask_bag = pytest.importorskip("dask.bag")
    dd = pytest.importorskip("dask.dataframe")
    pytest.importorskip("pyarrow")
    import pandas as pd

    tables = [pd.DataFrame({"x": range(i * 100, i * 100 + 100), "y": [i] * 100}) for i in range(4)]
    parquet = {}
    for i, table in enumerate(tables):
        buf = io.BytesIO()
        table.to_parquet(buf, index=False)
        parquet[f"/t{i}.parquet"] = buf.getvalue()
    blobs = {f"/b{i}.bin": make_bytes(50_000, seed=100 + i) for i in range(6)}
    with (
        FaultServer({**parquet, **blobs}) as srv,
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            worker_dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        files = [rangeio.open(srv.url(p)) for p in blobs]
        bag = dask_bag.from_sequence(files, npartitions=3).map(pickle_workers.sha_of_rest)
        assert bag.compute() == [hashlib.sha256(b).hexdigest() for b in blobs.values()]
        urls = [f"rangeio://{srv.url(p)}" for p in parquet]
        frame = dd.read_parquet(urls).compute()
        assert sorted(frame["x"]) == list(range(400))
        assert len(client.scheduler_info()["workers"]) == 2
        for f in files:
            f.close()
