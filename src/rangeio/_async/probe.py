"""rangeio.aio.probe: the async face of rangeio.probe (the same program, run with await)."""

from __future__ import annotations

from typing import Any

from rangeio._async.runner import AsyncRunner
from rangeio._async.transports import make_async_transport
from rangeio._core.options import FileOptions
from rangeio._core.probe import ProbeResult
from rangeio._engine.probe import probe as probe_program


async def probe(
    url: str, *, client: Any = None, max_ranges: int = 2, **options: Any
) -> ProbeResult:
    """``await rangeio.aio.probe(url)``: see ``rangeio.probe``."""
    file_options = FileOptions.from_kwargs(**options)
    runner = AsyncRunner(make_async_transport(client, file_options.verify), max_concurrency=1)
    try:
        return await runner.run(probe_program(url, file_options, max_ranges=max_ranges))
    finally:
        await runner.aclose()
