"""The fsspec filesystem's connections: one pool per filesystem (sync) and one transport per
event loop (async) that all its files share, closed with the filesystem, never a borrowed one.

Connections are counted at the server (``FaultServer.connections``: TCP connections accepted).
"""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import textwrap
import threading
import warnings
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fsspec")

from rangeio.fsspec import RangeioFileSystem  # noqa: E402
from rangeio.testing import FaultServer  # noqa: E402
from tests.adapters import SYNC_ADAPTERS  # noqa: E402
from tests.conftest import make_bytes  # noqa: E402

FILES = {f"/part-{i}.bin": make_bytes(256 * 1024, seed=10 + i) for i in range(4)}
# Reads per file: each a range no earlier read or prefetch covers, so each is a request.
STEPS = 6
# The async clients a filesystem can use: rangeio's own aiohttp session, or one of yours.
ASYNC_CLIENTS = ["own", "aiohttp", "httpx-async", "niquests-async"]


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer(FILES) as s:
        yield s


def spans() -> Iterator[tuple[int, int]]:
    for step in range(STEPS):
        start = 16 * 1024 + step * 40_000
        yield start, start + 1000


async def async_client(kind: str) -> tuple[Any, Callable[[], Awaitable[None]], Callable[[], bool]]:
    """A client of ``kind`` made on the running loop (None: the filesystem's own), how to
    close it, and whether it is still open."""
    if kind == "own":

        async def nothing() -> None:
            pass

        return None, nothing, lambda: True
    if kind == "aiohttp":
        import aiohttp

        session = aiohttp.ClientSession()
        return session, session.close, lambda: not session.closed
    if kind == "httpx-async":
        httpx = pytest.importorskip("httpx")
        client = httpx.AsyncClient()
        return client, client.aclose, lambda: not client.is_closed
    niquests = pytest.importorskip("niquests")
    nsession = niquests.AsyncSession()
    # niquests has no "closed" flag: the borrowed session must still send (checked by a GET).
    return nsession, nsession.close, lambda: True


async def status_of_get(client: Any, url: str) -> int:
    """A plain GET through a borrowed async client (it must still work)."""
    if hasattr(client, "connector"):  # aiohttp
        async with client.get(url) as response:
            await response.read()
            return int(response.status)
    response = await client.get(url)
    return int(response.status_code)


def resource_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


# -- async: one transport per loop ---------------------------------------------------------------


@pytest.mark.parametrize("kind", ASYNC_CLIENTS)
def test_async_files_of_one_filesystem_share_keep_alive_connections(
    server: FaultServer, kind: str
) -> None:
    async def main() -> None:
        client, close_client, _ = await async_client(kind)
        fs = RangeioFileSystem(
            asynchronous=True, skip_instance_cache=True, async_client=client, prefetch_bytes=4096
        )
        try:
            for lo, hi in spans():
                for path, data in FILES.items():
                    assert await fs._cat_file(server.url(path), lo, hi) == data[lo:hi]
            await fs.close_async()
        finally:
            await close_client()

    asyncio.run(main())
    requests = len(server.requests)
    assert requests >= len(FILES) * (STEPS + 1)  # each file's open, then every read
    # One after the other, so one keep-alive connection carries them (before: one per file).
    print("ASYNC", requests, server.connections)
    assert server.connections <= 2 < requests


@pytest.mark.parametrize("kind", ASYNC_CLIENTS)
def test_closing_closes_the_filesystems_transport_never_a_borrowed_client(
    server: FaultServer, kind: str
) -> None:
    url, data = server.url("/part-0.bin"), FILES["/part-0.bin"]

    async def main() -> None:
        client, close_client, still_open = await async_client(kind)
        try:
            fs = RangeioFileSystem(asynchronous=True, skip_instance_cache=True, async_client=client)
            assert await fs._cat_file(url, 0, 10) == data[:10]
            f = await fs.open_async(server.url("/part-1.bin"))
            own = await fs.open_async(url, prefetch_bytes=0)  # options of its own: same transport
            state = fs._async_states[asyncio.get_running_loop()]
            assert own._runner is not None and own._runner.transport.transport is state.transport
            await fs.close_async()
            assert state.closed and f.closed
            await f.close()  # releases nothing, and makes no transport for that
            assert asyncio.get_running_loop() not in fs._async_states
            session = getattr(state.transport, "_session", None)
            if kind == "own":  # rangeio's aiohttp session: closed with the filesystem
                assert session is not None and session.closed
            else:  # borrowed: still open, and still the user's to use
                assert still_open()
                assert await status_of_get(client, url) == 200
            # The filesystem stays usable: a new transport for this loop.
            assert await fs._cat_file(url, 5, 9) == data[5:9]
            assert fs._async_states[asyncio.get_running_loop()] is not state
            await fs.close_async()
        finally:
            await close_client()

    asyncio.run(main())


def test_the_loops_end_closes_the_filesystems_session(server: FaultServer) -> None:
    fs = RangeioFileSystem(asynchronous=True, skip_instance_cache=True)

    async def main(fs: RangeioFileSystem) -> Any:
        assert await fs._cat_file(server.url("/part-0.bin"), 0, 4) == FILES["/part-0.bin"][:4]
        return fs._async_states[asyncio.get_running_loop()]

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        state = asyncio.run(main(fs))
        assert state.closed and state.transport._session.closed
        # The next loop gets a transport of its own; the ended loop's state is let go.
        asyncio.run(main(fs))
        assert state not in fs._async_states.values() and len(fs._async_states) == 1
        del state, fs
        gc.collect()
    assert resource_warnings(caught) == []


class LoopThread:
    """An event loop running in a thread, as zarr's and fsspec's sync layers keep one."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def stop(self) -> None:
        """Stopped, not closed: what zarr's atexit cleanup leaves."""
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def close(self) -> None:
        self.stop()
        if not self.loop.is_closed():
            self.loop.close()


@pytest.mark.parametrize(
    "how",
    ["close", "collected", "collected after the loop stopped", "collected after the loop closed"],
)
def test_a_loop_in_another_thread_leaves_no_unclosed_session(server: FaultServer, how: str) -> None:
    looper = LoopThread()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fs = RangeioFileSystem(asynchronous=True, skip_instance_cache=True)
            for path, data in FILES.items():
                assert looper.run(fs._cat_file(server.url(path), 0, 100)) == data[:100]
            session = fs._async_states[looper.loop].transport._session
            if how == "close":
                fs.close()  # from this thread: closed on the loop's, waited for
            elif how == "collected":
                del fs
                gc.collect()  # the finalizer closes it on the running loop, waited for
            elif how == "collected after the loop stopped":
                looper.stop()
                del fs
                gc.collect()  # the stopped loop is run until the close is done
            else:
                looper.close()
                del fs
                gc.collect()  # nothing can run on it: the session's connections dropped
            assert session.closed
            del session
            looper.close()
            gc.collect()
        found = resource_warnings(caught)
        if how == "collected after the loop closed":
            # asyncio itself warns of the sockets of a loop closed under them (their transports
            # and sockets, nothing can close them now); aiohttp's session and connector closed.
            found = [w for w in found if "client session" in w or "connector" in w]
        assert found == []
    finally:
        looper.close()


# -- zarr v3 by URL --------------------------------------------------------------------------


@pytest.fixture
def zarr_server(tmp_path: Path) -> Iterator[tuple[FaultServer, Any]]:
    """A zarr v3 array (8 x 8 chunks) written by zarr, served by the FaultServer."""
    zarr = pytest.importorskip("zarr")
    np = pytest.importorskip("numpy")
    values = np.arange(64 * 64, dtype="int32").reshape(64, 64)
    root = tmp_path / "arr.zarr"
    zarr.create_array(store=str(root), shape=values.shape, chunks=(8, 8), dtype="int32")[:] = values
    files = {
        "/arr.zarr/" + p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file()
    }
    with FaultServer(files) as s:
        yield s, values


_ZARR_READER = textwrap.dedent(
    """
    import io
    import sys
    import numpy as np
    import zarr
    from zarr.storage import FsspecStore
    from rangeio.fsspec import RangeioFileSystem

    store = FsspecStore.from_url(
        "rangeio://" + sys.argv[1], read_only=True, storage_options={"skip_instance_cache": True}
    )
    assert isinstance(store.fs, RangeioFileSystem) and store.fs.asynchronous
    got = zarr.open_array(store, mode="r")[:]
    out = io.BytesIO()
    np.save(out, got)
    sys.stdout.buffer.write(out.getvalue())
    # No close, and the filesystem left in a reference cycle (as a reader's wrappers leave it):
    # it is collected only at the interpreter's exit, after zarr's atexit stopped its loop.
    store.fs.cycle = store.fs
    del store
    """
)


def test_zarr_v3_by_url_shares_connections_and_exits_clean(
    zarr_server: tuple[FaultServer, Any],
) -> None:
    import io

    np = pytest.importorskip("numpy")
    server, values = zarr_server
    import rangeio

    src = str(Path(rangeio.__file__).resolve().parent.parent)  # the rangeio under test
    done = subprocess.run(
        [
            sys.executable,
            "-W",
            "always::ResourceWarning",
            "-c",
            _ZARR_READER,
            server.url("/arr.zarr"),
        ],
        capture_output=True,
        timeout=60,
        env={"PYTHONPATH": src, "PATH": "/usr/bin:/bin"},
    )
    stderr = done.stderr.decode(errors="replace")
    assert done.returncode == 0, stderr
    np.testing.assert_array_equal(np.load(io.BytesIO(done.stdout)), values)
    requests = len(server.requests)
    assert requests >= 64  # a request per chunk at least
    # zarr reads chunks concurrently (10 at a time by default): a few connections, reused
    # (before: one per chunk file), and none left unclosed at the interpreter's exit.
    print("ZARR", requests, server.connections)
    assert server.connections <= 16 < requests
    assert "Unclosed" not in stderr, stderr


# -- sync: one pool for every file -----------------------------------------------------------


@pytest.mark.parametrize("kind", SYNC_ADAPTERS)
def test_sync_files_of_one_filesystem_share_one_pool(server: FaultServer, kind: str) -> None:
    from tests.adapters import sync_client

    client, close_client = sync_client(kind)
    try:
        fs = RangeioFileSystem(skip_instance_cache=True, client=client, prefetch_bytes=4096)
        for lo, hi in spans():
            for path, data in FILES.items():
                assert fs.cat_file(server.url(path), lo, hi) == data[lo:hi]
        requests = len(server.requests)
        assert requests >= len(FILES) * (STEPS + 1)
        assert server.connections == 1 < requests
        fs.close()
        url = server.url("/part-0.bin")
        assert fs.cat_file(url, 0, 8) == FILES["/part-0.bin"][:8]  # still usable
        if kind == "urllib3":  # its own pool's connections were closed: a new one now
            assert server.connections == 2
        else:  # a borrowed client is left as it was (its connection still kept alive)
            assert server.connections == 1
    finally:
        close_client()
