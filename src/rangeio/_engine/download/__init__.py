"""Downloads as programs: haul (one request) and download (retries), crash-safe on disk.

``job.py`` holds a download's settings, counters and records; ``single.py`` one connection
(haul); ``parallel.py`` segments over several; ``finish.py`` the verification and the rename.
download() here runs attempts until the file is complete."""

from __future__ import annotations

import logging

from rangeio._engine.download.job import (
    AUTO,
    DEFAULT_ATTEMPTS,
    DOWNLOAD_RETRIES,
    Connections,
    DownloadJob,
    DownloadResult,
    HaulResult,
    Progress,
    haul_arguments,
    new_job,
    on_the_clock,
    saved_state,
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
            if job.connections > 1:
                return (yield from parallel(job))
            return (yield from haul(job))
        except PartialDownloadError as exc:
            # An attempt raises what is worth another one (is_retryable, in ask/receive and
            # the parallel coordinator) as a PartialDownloadError; anything else it raises (a
            # 404, a TLS failure, a redirect loop, a checksum mismatch) ends the download here.
            failures += 1
            delay = job.retries.delay(failures, getattr(exc, "retry_after", None))
            if delay is None:
                raise
            log.info("download of %s interrupted (%s); retrying in %.2fs", job.url, exc, delay)
            yield Sleep(delay)


__all__ = [
    "AUTO",
    "Connections",
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
