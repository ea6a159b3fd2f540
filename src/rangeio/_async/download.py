"""rangeio.aio.haul and rangeio.aio.download: the same downloads, run by the asyncio runner."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rangeio._async.runner import AsyncRunner
from rangeio._async.transports import make_async_transport
from rangeio._core.download import DownloadPolicy
from rangeio._core.options import Timeout
from rangeio._core.retry import NO_RETRY, RetryPolicy
from rangeio._engine import download as engine
from rangeio._engine.download import DownloadResult, HaulResult, Progress
from rangeio._engine.ops import Program
from rangeio.errors import RangeioError


async def haul(
    url: str,
    *where: Any,
    dest: str | Path | None = None,
    client: Any = None,
    headers: Mapping[str, str] | None = None,
    sha256: str | None = None,
    timeout: Timeout | float | tuple[float, float] | None = None,
    policy: DownloadPolicy | None = None,
    on_progress: Progress | None = None,
    allow_https_downgrade: bool = False,
    allow_redirects: bool = True,
    verify: Any = True,
) -> HaulResult:
    """Async twin of rangeio.haul: one call = one HTTP request."""
    target, client = engine.haul_arguments(where, dest, client)
    job = engine.new_job(
        url,
        target,
        headers=headers,
        sha256=sha256,
        timeout=timeout,
        retries=NO_RETRY,
        policy=policy,
        on_progress=on_progress,
        allow_https_downgrade=allow_https_downgrade,
        allow_redirects=allow_redirects,
        verify=verify,
        one_request=True,
    )
    return await _run(job, client, engine.haul(job), verify)


async def download(
    url: str | Sequence[str],
    dest: str | Path,
    *,
    client: Any = None,
    connections: int = 1,
    sha256: str | None = None,
    retries: RetryPolicy | int | None = None,
    on_progress: Progress | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: Timeout | float | tuple[float, float] | None = None,
    policy: DownloadPolicy | None = None,
    allow_https_downgrade: bool = False,
    allow_redirects: bool = True,
    verify: Any = True,
) -> DownloadResult:
    """Async twin of rangeio.download (``url`` may be the mirrors of one file, as there);
    file I/O runs on worker threads, never on the loop."""
    job = engine.new_job(
        url,
        dest,
        headers=headers,
        sha256=sha256,
        timeout=timeout,
        retries=retries,
        policy=policy,
        on_progress=on_progress,
        connections=connections,
        allow_https_downgrade=allow_https_downgrade,
        allow_redirects=allow_redirects,
        verify=verify,
    )
    return await _run(job, client, engine.download(job), verify)


async def _run(
    job: engine.DownloadJob, client: Any, program: Program[DownloadResult], verify: Any
) -> DownloadResult:
    # One more than the connections (per mirror, for each): checkpoints and the prefix hash run beside the transfers.
    transport = make_async_transport(client, verify)
    runner = AsyncRunner(transport, max_concurrency=job.all_connections + 1)
    try:
        # Inside the outer try: a downloader refused the lock (DownloadLockedError) still closes
        # the runner, so it leaves no connection pool (an aiohttp session) behind.
        await asyncio.to_thread(job.files.lock.acquire)
        done = False
        try:
            result = await runner.run(program)
            done = True
            return result
        except RangeioError as exc:
            exc.state = await asyncio.to_thread(engine.saved_state, job.files, job.urls)
            raise
        finally:
            await asyncio.to_thread(job.files.unlock, done)
    finally:
        await runner.aclose()
