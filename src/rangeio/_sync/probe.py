"""rangeio.probe: what a server does with byte ranges (size, validators, suffix and multipart support)."""

from __future__ import annotations

from typing import Any

from rangeio._core.options import FileOptions
from rangeio._core.probe import ProbeResult
from rangeio._engine.probe import probe as probe_program
from rangeio._sync.runner import SyncRunner
from rangeio._transport import make_transport


def probe(url: str, *, client: Any = None, max_ranges: int = 2, **options: Any) -> ProbeResult:
    """Ask ``url`` a few small range requests and say what its server does with them: size,
    ETag and Last-Modified, whether ranges, suffix ranges (``bytes=-N``) and multipart ranges
    are honoured, the redirects on the way, the time to the first answer and in all.

    ``max_ranges``: 2 (the default) asks whether two ranges get a multipart answer; more goes
    on to find the server's cap on ranges per request (a few requests more); 0 sends no
    multipart request. ``client`` and ``options`` are those of ``rangeio.open`` (headers,
    timeout, retries, verify...). Errors are those of ``rangeio.open``.
    """
    file_options = FileOptions.from_kwargs(**options)
    runner = SyncRunner(make_transport(client, file_options.verify), max_concurrency=1)
    try:
        return runner.run(probe_program(url, file_options, max_ranges=max_ranges))
    finally:
        runner.close()
