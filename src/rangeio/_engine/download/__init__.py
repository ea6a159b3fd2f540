"""Downloads as programs: haul (one request) and download (until complete), crash-safe on disk.

``job.py`` holds a download's settings, counters and records; ``single.py`` one connection
(haul); ``parallel.py`` segments over several; ``finish.py`` the verification and the rename.
download() here runs attempts until the file is complete; the requests of each are
`DownloadExchange`s (`_core/exchange.py`), driven by `_engine/drive.py`."""

from __future__ import annotations

import logging

from rangeio._engine.download.job import (
    DEFAULT_ATTEMPTS,
    DOWNLOAD_RETRIES,
    DownloadJob,
    DownloadResult,
    HaulResult,
    Progress,
    haul_arguments,
    new_job,
    on_the_clock,
    saved_state,
    starts_over,
)
from rangeio._engine.download.parallel import parallel
from rangeio._engine.download.single import haul
from rangeio._engine.ops import Program, Sleep
from rangeio.errors import PartialDownloadError

log = logging.getLogger("rangeio.download")


def download(job: DownloadJob) -> Program[DownloadResult]:
    """Attempts until the file is complete, resuming after every failure that allows it."""
    yield from on_the_clock(job)
    failures = 0
    while True:
        try:
            if job.connections > 1 or job.mirrors:
                return (yield from parallel(job))
            return (yield from haul(job, one_request=False))
        except PartialDownloadError as exc:
            # Each exchange of an attempt retries what asking again may fix itself (its
            # RetryPolicy, is_retryable, Retry-After): what reaches here is final, except an
            # attempt that discarded its progress because the remote changed under it
            # (starts_over): that one is tried again, from byte 0, under the same policy.
            if not starts_over(exc):
                raise
            failures += 1
            delay = job.retries.delay(failures)
            if delay is None:
                raise
            log.info("download of %s interrupted (%s); retrying in %.2fs", job.url, exc, delay)
            yield Sleep(delay)


__all__ = [
    "DEFAULT_ATTEMPTS",
    "DOWNLOAD_RETRIES",
    "DownloadJob",
    "DownloadResult",
    "HaulResult",
    "Progress",
    "download",
    "haul",
    "haul_arguments",
    "new_job",
    "parallel",
    "saved_state",
]
