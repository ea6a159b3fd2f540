"""Many cursors on one file: shared fetches, bounded concurrency, cancellation and close safety."""

from __future__ import annotations

import asyncio
import signal
import threading
from typing import Any

import pytest

import rangeio
import rangeio.aio
from rangeio.testing import Faults, FaultServer
from tests.poll import until, wait_until

DATA = "/data.bin"


def data_requests(server: FaultServer) -> list[str | None]:
    return [r.range for r in server.requests if r.path == DATA]


@pytest.mark.parametrize("client_kind", ["aiohttp", "httpx"])
def test_32_async_cursors_share_overlapping_fetches(
    fault_server: FaultServer, client_kind: str
) -> None:
    data = fault_server.get_file(DATA)

    async def main() -> None:
        client: Any = None
        if client_kind == "httpx":
            import httpx

            client = httpx.AsyncClient()
        async with rangeio.aio.open(fault_server.url(DATA), client=client, prefetch_bytes=0) as f:
            fault_server.faults = Faults(delay=0.2)
            fault_server.clear_log()
            cursors = [f.clone() for _ in range(32)]
            base = 1_000_000

            async def read(i: int, cursor: rangeio.aio.AsyncHttpFile) -> bytes:
                cursor.seek(base + (i % 4) * 1000)
                return await cursor.read(3000)

            results = await asyncio.gather(*(read(i, c) for i, c in enumerate(cursors)))
            for i, got in enumerate(results):
                start = base + (i % 4) * 1000
                assert got == data[start : start + 3000]
            # Every cursor wanted bytes inside [base, base + 3000 + 3000 + 8 KiB): the first
            # fetch covers most, later ones only the parts not already in flight.
            assert len(fault_server.requests) <= 4
            assert f.stats.bytes_fetched <= 3000 * 2 + 8192 * 4
            for c in cursors:
                await c.close()
        if client is not None:
            await client.aclose()

    asyncio.run(main())


def test_max_concurrency_bounds_connections(fault_server: FaultServer) -> None:
    data = fault_server.get_file(DATA)

    async def main() -> None:
        async with rangeio.aio.open(
            fault_server.url(DATA), prefetch_bytes=0, max_concurrency=3
        ) as f:
            fault_server.faults = Faults(delay=0.05)
            cursors = [f.clone() for _ in range(12)]

            async def read(i: int, cursor: rangeio.aio.AsyncHttpFile) -> None:
                cursor.seek(i * 200_000)
                assert await cursor.read(1000) == data[i * 200_000 : i * 200_000 + 1000]

            await asyncio.gather(*(read(i, c) for i, c in enumerate(cursors)))
            assert len(fault_server.requests) == 13
            # rangeio's own aiohttp pool opens a connection per concurrent request only.
            assert fault_server.connections <= 3 + 1

    asyncio.run(main())


def test_cancelling_one_reader_leaves_the_shared_fetch(fault_server: FaultServer) -> None:
    data = fault_server.get_file(DATA)

    async def main() -> None:
        async with rangeio.aio.open(fault_server.url(DATA), prefetch_bytes=0) as f:
            fault_server.faults = Faults(delay=0.3)
            fault_server.clear_log()
            first, second = f.clone(), f.clone()
            first.seek(2_000_000)
            second.seek(2_000_000)
            remote = f._remote
            assert remote is not None
            task_a = asyncio.create_task(first.read(4096))
            await until(lambda: len(fault_server.requests) == 1, "a's fetch to be in flight")
            task_b = asyncio.create_task(second.read(4096))
            # b counts its miss, then its next wait is a's fetch (nothing awaits in between).
            await until(lambda: remote.stats.cache_misses == 2, "b to wait on a's fetch")
            assert not task_a.done()  # the answer is delayed 0.3 s: a is still fetching
            task_a.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task_a
            assert await task_b == data[2_000_000:2_004_096]
            assert data_requests(fault_server) == ["bytes=2000000-2008191"]
            # The cancelled cursor is still usable, and its bytes are cached by now.
            first.seek(2_000_000)
            assert await first.read(10) == data[2_000_000:2_000_010]
            assert len(fault_server.requests) == 1

    asyncio.run(main())


def test_closing_during_reads_raises_cleanly(fault_server: FaultServer) -> None:
    async def main() -> None:
        f = await rangeio.aio.open(fault_server.url(DATA), prefetch_bytes=0)
        clone = f.clone()
        fault_server.faults = Faults(delay=0.5)
        clone.seek(1_500_000)
        fault_server.clear_log()
        reading = asyncio.create_task(clone.read(10))
        await until(lambda: len(fault_server.requests) == 1, "the read's request")
        assert not reading.done()
        await f.close()
        with pytest.raises(ValueError, match="closed file"):
            await reading
        with pytest.raises(ValueError, match="closed file"):
            await clone.read(1)
        with pytest.raises(ValueError, match="closed file"):
            clone.seek(0)
        await clone.close()  # idempotent, and harmless after the parent
        await f.close()

    asyncio.run(main())


def test_closing_a_clone_keeps_the_parent(fault_server: FaultServer) -> None:
    data = fault_server.get_file(DATA)

    async def main() -> None:
        async with rangeio.aio.open(fault_server.url(DATA)) as f:
            clone = f.clone()
            await clone.close()
            assert clone.closed and not f.closed
            f.seek(0)
            assert await f.read(5) == data[:5]

    asyncio.run(main())


def test_sync_clones_from_many_threads(fault_server: FaultServer) -> None:
    data = fault_server.get_file(DATA)
    with rangeio.open(fault_server.url(DATA), prefetch_bytes=0) as f:
        fault_server.faults = Faults(delay=0.1)
        fault_server.clear_log()
        errors: list[BaseException] = []

        def work(i: int) -> None:
            try:
                with f.clone() as cursor:
                    start = 700_000 + (i % 8) * 512
                    cursor.seek(start)
                    assert cursor.read(2048) == data[start : start + 2048]
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not errors
        # Sixteen readers of overlapping ranges: no byte is fetched twice (each plan is
        # [start, start + 8 KiB), so together they span [700000, 711776)); +1: the open probe.
        assert f.stats.bytes_fetched <= 711_776 - 700_000 + 1
        assert len(fault_server.requests) <= 8
        assert not f.closed  # closing clones never closes the parent
    with pytest.raises(ValueError):
        f.clone()


def test_sync_close_while_another_thread_reads(fault_server: FaultServer) -> None:
    f = rangeio.open(fault_server.url(DATA), prefetch_bytes=0)
    clone = f.clone()
    fault_server.faults = Faults(delay=0.5)
    outcome: list[BaseException | bytes] = []

    def read() -> None:
        clone.seek(1_000_000)
        try:
            outcome.append(clone.read(10))
        except BaseException as exc:  # inspected below
            outcome.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    threading.Event().wait(0.1)
    f.close()
    reader.join(10)
    assert not reader.is_alive()
    # Either the read finished first, or it failed with the closed-file error: never a hang.
    assert isinstance(outcome[0], (bytes, ValueError, rangeio.NetworkError))


def test_no_async_client_installed_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from rangeio._async.transports import make_async_transport

    real_import = builtins.__import__

    def refuse(name: str, *args: Any, **kwargs: Any) -> Any:
        if name in ("aiohttp", "httpx"):
            raise ImportError(f"no module named {name}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", refuse)
    with pytest.raises(ImportError, match=r"rangeio\[aiohttp\]"):
        make_async_transport(None)


def test_async_client_given_to_sync_open_is_refused() -> None:
    import niquests

    with pytest.raises(TypeError, match="rangeio.aio"):
        rangeio.open("http://127.0.0.1:9/x", client=niquests.AsyncSession())


def test_max_concurrency_bounds_sync_cursors_too(fault_server: FaultServer) -> None:
    """A cursor's fetch runs in the cursor's own thread (Spawn.joined_next), under a slot of
    the same bound as the pool's: 12 threads at once still make at most 3 requests at a time,
    so rangeio's urllib3 pool opens at most 3 connections."""
    data = fault_server.get_file(DATA)
    with rangeio.open(fault_server.url(DATA), prefetch_bytes=0, max_concurrency=3) as f:
        fault_server.faults = Faults(delay=0.05)
        cursors = [f.clone() for _ in range(12)]
        got: dict[int, bytes] = {}

        def read(i: int, cursor: rangeio.HttpFile) -> None:
            cursor.seek(i * 200_000)
            got[i] = cursor.read(1000)

        threads = [threading.Thread(target=read, args=(i, c)) for i, c in enumerate(cursors)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert all(i in got for i in range(12)), "a reader did not finish"
        for i in range(12):
            assert got[i] == data[i * 200_000 : i * 200_000 + 1000]
        assert len(fault_server.requests) == 13
        assert fault_server.connections <= 3


def test_ctrl_c_in_the_fetching_reader_leaves_a_sharing_reader_its_bytes(
    fault_server: FaultServer,
) -> None:
    """A sync read's own fetch runs in the reading thread (Spawn.joined_next). Ctrl-C there
    stops it and reaches that thread only: a second reader waiting on the same fetch asks again
    and gets its bytes, with no KeyboardInterrupt in its own thread and no hang."""
    data = fault_server.get_file(DATA)
    with rangeio.open(fault_server.url(DATA), prefetch_bytes=0) as f:
        other = f.clone()
        remote = f._remote
        fault_server.faults = Faults(delay=1.0)
        fault_server.clear_log()
        main = threading.get_ident()
        outcome: dict[str, Any] = {}

        def second_reader() -> None:
            wait_until(lambda: len(fault_server.requests) == 1, "the first reader's request")
            other.seek(2_000_000)
            try:
                outcome["bytes"] = other.read(4096)
            except BaseException as exc:  # recorded: the assertion below names it
                outcome["error"] = exc

        def ctrl_c() -> None:
            wait_until(lambda: remote.stats.cache_misses == 2, "the second reader's miss")
            signal.pthread_kill(main, signal.SIGINT)

        helpers = [threading.Thread(target=second_reader), threading.Thread(target=ctrl_c)]
        for thread in helpers:
            thread.start()
        f.seek(2_000_000)
        with pytest.raises(KeyboardInterrupt):
            f.read(4096)
        for thread in helpers:
            thread.join(30)
        assert not any(thread.is_alive() for thread in helpers), "a reader hung"
        assert "error" not in outcome, outcome.get("error")
        assert outcome["bytes"] == data[2_000_000:2_004_096]
        # The file stays usable in the interrupted thread too.
        f.seek(2_000_000)
        assert f.read(4096) == data[2_000_000:2_004_096]
