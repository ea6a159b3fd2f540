"""fetch_many: a planner over many URLs, bounded, resumable, and a good citizen of the event loop."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

import rangeio.aio
from rangeio.testing import Faults, FaultServer


async def tail_planner(file: rangeio.aio.AsyncHttpFile) -> bytes:
    file.seek(-16, 2)
    return await file.read()


def test_fetch_many_bounded_resumable(tmp_path: Path) -> None:
    files = {f"/f{i}.bin": bytes([i]) * 5000 for i in range(30)}
    done_file = tmp_path / "done.txt"
    with FaultServer(files) as server:
        server.set_faults("/f7.bin", Faults(status=404))
        urls = [server.url(p) for p in files]
        handlers_before = signal.getsignal(signal.SIGINT)
        root_handlers = list(logging.getLogger().handlers)
        seen: list[str] = []

        async def first_run() -> list[rangeio.aio.FetchResult[bytes]]:
            out = []
            async for result in rangeio.aio.fetch_many(
                urls,
                tail_planner,
                concurrency=4,
                completed=done_file,
                on_result=lambda r: seen.append(r.url),
            ):
                out.append(result)
            return out

        results = asyncio.run(first_run())
        assert len(results) == 30 and sorted(seen) == sorted(urls)
        good = {r.url: r.value for r in results if r.ok}
        assert len(good) == 29 and good[server.url("/f3.bin")] == bytes([3]) * 16
        bad = [r for r in results if not r.ok]
        assert bad[0].url == server.url("/f7.bin") and isinstance(
            bad[0].error, rangeio.HTTPStatusError
        )
        assert signal.getsignal(signal.SIGINT) == handlers_before
        assert logging.getLogger().handlers == root_handlers

        server.clear_faults()
        server.clear_log()

        async def rerun() -> list[str]:
            return [
                r.url async for r in rangeio.aio.fetch_many(urls, tail_planner, completed=done_file)
            ]

        assert asyncio.run(rerun()) == [server.url("/f7.bin")]  # only the one that failed
        assert {r.path for r in server.requests} == {"/f7.bin"}
