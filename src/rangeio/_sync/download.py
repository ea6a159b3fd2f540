"""rangeio.haul and rangeio.download: crash-safe downloads, run by the blocking runner."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rangeio._core.download import DownloadPolicy
from rangeio._core.options import Timeout
from rangeio._core.retry import NO_RETRY, RetryPolicy
from rangeio._disk import PartFiles
from rangeio._engine import download as engine
from rangeio._engine.download import DownloadResult, HaulResult, Progress
from rangeio._engine.ops import Program
from rangeio._sync.runner import SyncRunner
from rangeio._transport import make_transport
from rangeio.errors import RangeioError


def haul(
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
    """One call = one HTTP request: complete ``dest``, or raise PartialDownloadError (retryable;
    its ``bytes_done`` are durable and the next call resumes from them). A 200 to a resume is
    written from byte 0 in this same call. ``on_progress`` and ``allow_redirects`` (False: a
    3xx raises RedirectError) as for ``download``. The client is borrowed, never closed.
    Arguments in download's order, ``haul(url, dest, client=...)``; the old
    ``haul(url, client, dest=...)`` still works, with a DeprecationWarning."""
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
    return _run(job, client, engine.haul(job), verify)


def download(
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
    """Download ``url`` to ``dest``, resuming after failures (backoff, Retry-After honoured),
    verifying ``sha256`` and any digest headers. ``dest`` only ever receives the complete,
    verified file; progress lives in ``<dest>.part`` and ``<dest>.part.ctrl`` until then.
    ``verify`` and ``allow_https_downgrade`` mean what they mean for ``rangeio.open``.

    ``url`` may be a list: mirrors of one file. They must agree with the first that answers
    on the size and, where both send them, on strong ETags and digests (``_core/mirrors.py``
    says exactly what agreeing means); one that does not, that changes, ignores Range or keeps
    failing is dropped with a logged reason (``result.dropped_mirrors``) and its bytes are
    never used. Segments spread over them, ``connections`` per mirror, and a slow mirror keeps
    only its share. A resume with the same list, or any part of it holding the URL the
    control record names, goes on from the saved bytes."""
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
    return _run(job, client, engine.download(job), verify)


def _run(
    job: engine.DownloadJob, client: Any, program: Program[DownloadResult], verify: Any
) -> DownloadResult:
    # One more than the connections (per mirror, for each): checkpoints and the prefix hash run beside the transfers.
    runner = SyncRunner(make_transport(client, verify), max_concurrency=job.all_connections + 1)
    try:
        # Inside the outer try: a downloader refused the lock (DownloadLockedError) still closes
        # the runner, so it leaves no connection pool or thread pool behind.
        job.files.lock.acquire()
        done = False
        try:
            result = runner.run(program)
            done = True
            return result
        except RangeioError as exc:
            exc.state = engine.saved_state(job.files, job.urls)
            raise
        finally:
            job.files.unlock(done)
    finally:
        runner.close()


def saved_progress(url: str | Sequence[str], dest: str | Path) -> int:
    """How many bytes a new download of ``url`` (or these mirrors) to ``dest`` would resume
    from, as the disk says now (the record, checked as a resume checks it): 0 when it would
    start afresh."""
    return engine.saved_state(PartFiles(Path(dest)), url).bytes_done
