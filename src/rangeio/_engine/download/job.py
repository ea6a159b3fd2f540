"""A download's settings, counters and records: the job, its result, and what every attempt shares."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rangeio._core import control
from rangeio._core.download import (
    NOTHING_SAVED,
    Assessment,
    DownloadPolicy,
    DownloadState,
    single_segment,
    state_of,
)
from rangeio._core.identity import Identity
from rangeio._core.mirrors import Drop
from rangeio._core.options import Timeout, check_verify
from rangeio._core.redirects import check_url
from rangeio._core.retry import RetryPolicy, coerce_retries
from rangeio._disk import PartFile, PartFiles
from rangeio._engine.ops import (
    Blocking,
    Clock,
    Program,
    read_clock,
)
from rangeio.errors import (
    PartialDownloadError,
    RangeioError,
)

log = logging.getLogger("rangeio.download")

Progress = Callable[[int, "int | None"], None]


@dataclass(frozen=True)
class DownloadResult:
    """A finished download. ``sha256`` is the SHA-256 of the whole file as written."""

    path: Path
    size: int
    sha256: str
    etag: str | None
    last_modified: str | None
    requests: int
    bytes_transferred: int
    bytes_reused: int
    elapsed: float
    # Mirrors of a mirrored download that stopped serving it, and why (``_core/mirrors.py``).
    dropped_mirrors: tuple[Drop, ...] = ()

    @property
    def state(self) -> DownloadState:
        """The same DownloadState a failure carries (``error.state``), here complete."""
        return DownloadState(self.size, self.size, self.etag, self.last_modified, complete=True)


HaulResult = DownloadResult


@dataclass
class DownloadJob:
    """One download's settings and the counters its attempts add up."""

    url: str
    dest: Path
    headers: Mapping[str, str] = field(default_factory=dict)
    sha256: str | None = None
    timeout: Timeout = field(default_factory=Timeout)
    retries: RetryPolicy = field(default_factory=RetryPolicy)
    policy: DownloadPolicy = field(default_factory=DownloadPolicy)
    on_progress: Progress | None = None
    connections: int = 1
    allow_https_downgrade: bool = False
    allow_redirects: bool = True
    requests: int = 0
    transferred: int = 0
    reused: int | None = None
    # The runner's clock, taken by the first program that runs the job (on_the_clock).
    clock: Clock | None = None
    started: float = 0.0
    # The other URLs of the same file (``download([url, *mirrors], dest)``); ``url`` is the
    # reference, whose validators the control record pins. ``connections`` is per mirror.
    mirrors: tuple[str, ...] = ()
    dropped: list[Drop] = field(default_factory=list)

    def __post_init__(self) -> None:
        for url in self.urls:
            check_url(url)
        self.files = PartFiles(Path(self.dest))
        if self.sha256 is not None:
            self.sha256 = self.sha256.strip().lower()

    @property
    def urls(self) -> tuple[str, ...]:
        """Every URL of the file, the reference first."""
        return (self.url, *self.mirrors)

    @property
    def all_connections(self) -> int:
        """The connections the download may have at once: ``connections`` per mirror."""
        return self.connections * len(self.urls)

    def make_reference(self, url: str) -> None:
        """``url`` (one of ``urls``) becomes the reference: the URL a resume's record names."""
        if url != self.url:
            self.mirrors = tuple(u for u in self.urls if u != url)
            self.url = url

    def next_reference(self, *, forget: bool) -> None:
        """The next mirror becomes the reference (its first request failed); ``forget``:
        the old one is left out for good (a failure no retry fixes), else it goes last."""
        if self.mirrors:
            old = self.url
            self.url, self.mirrors = self.mirrors[0], self.mirrors[1:] + (() if forget else (old,))

    def note_drop(self, drop: Drop) -> None:
        """Log a dropped mirror once per download (a later attempt may drop it again)."""
        if all((d.url, d.reason) != (drop.url, drop.reason) for d in self.dropped):
            log.warning("download to %s: %s", self.dest, drop)
            self.dropped.append(drop)


# download() retries this often by default: enough to ride out a flaky link or a rolling
# restart (with backoff up to 5 s), bounded so a dead server fails in well under a minute.
DEFAULT_ATTEMPTS = 8
DOWNLOAD_RETRIES = RetryPolicy(attempts=DEFAULT_ATTEMPTS)


def new_job(
    url: str | Sequence[str],
    dest: str | Path,
    *,
    headers: Mapping[str, str] | None,
    sha256: str | None,
    timeout: Timeout | float | tuple[float, float] | None,
    retries: RetryPolicy | int | None,
    policy: DownloadPolicy | None,
    on_progress: Progress | None = None,
    connections: int = 1,
    allow_https_downgrade: bool = False,
    allow_redirects: bool = True,
    verify: Any = True,
    one_request: bool = False,
) -> DownloadJob:
    """The job for one haul/download call, every argument checked once for both front ends
    (``verify`` only checked: the shell builds the transport from it). ``one_request``: a
    haul's, which takes one URL (mirrors are download's)."""
    check_verify(verify)
    if one_request and not isinstance(url, str):
        raise TypeError("haul() makes one request to one URL; download() takes mirrors")
    if connections < 1:
        raise ValueError("connections must be >= 1")
    urls = mirror_urls(url)
    return DownloadJob(
        urls[0],
        Path(dest),
        dict(headers or {}),
        sha256,
        Timeout.coerce(timeout),
        coerce_retries(retries, DOWNLOAD_RETRIES),
        policy or DownloadPolicy(),
        on_progress,
        connections,
        allow_https_downgrade,
        allow_redirects,
        mirrors=urls[1:],
    )


def mirror_urls(url: str | Sequence[str]) -> tuple[str, ...]:
    """The URLs of ``download(url_or_urls, ...)``: one, or the mirrors of one file in the
    order given, a repeated one once."""
    if isinstance(url, str):
        return (url,)
    urls = tuple(dict.fromkeys(url))
    if not urls:
        raise ValueError("download() needs at least one URL")
    for each in urls:
        if not isinstance(each, str):
            raise TypeError(f"a mirror URL must be a str, not {type(each).__name__}")
    return urls


def on_the_clock(job: DownloadJob) -> Program[Clock]:
    """The runner's clock, kept on ``job``; the job's time starts the first time it is asked."""
    if job.clock is None:
        job.clock = yield from read_clock()
        job.started = job.clock.monotonic()
    return job.clock


def haul_arguments(where: tuple[Any, ...], dest: Any, client: Any) -> tuple[Any, Any]:
    """``(dest, client)`` of a haul call. The order is download's: ``haul(url, dest, *,
    client=None)``. The old ``haul(url, client, dest=...)`` is told apart safely (one positional
    argument beside a ``dest`` keyword can only be the client): it still works, with a
    DeprecationWarning. Every other shape is refused rather than guessed."""
    if len(where) > 1:
        raise TypeError("haul() takes url and dest positionally; pass client= by keyword")
    if not where:
        if dest is None:
            raise TypeError("haul() needs a destination: haul(url, dest)")
        return dest, client
    if dest is None:
        return where[0], client
    if client is not None:
        raise TypeError("haul() got a client both by position and by keyword")
    warnings.warn(
        "haul(url, client, dest=...) is deprecated: call haul(url, dest, client=client), "
        "the order download() takes",
        DeprecationWarning,
        stacklevel=3,
    )
    return dest, where[0]


def saved_state(files: PartFiles, url: str | Sequence[str]) -> DownloadState:
    """What the disk holds for ``url`` now, as a resume would judge it: the ``state`` of an
    error out of haul/download (run by the shell, under the destination's lock). Nothing
    readable counts as nothing saved."""
    try:
        assessment, _ = files.inspect(url)
    except (OSError, RangeioError):
        return NOTHING_SAVED
    return state_of(assessment)


def already_done(job: DownloadJob, assessment: Assessment) -> Program[DownloadResult | None]:
    """The destination is there and no ``.part`` is: the finished download (a crash after the
    rename), unless ``sha256=`` says otherwise. Then it is not returned: it is downloaded again
    and replaced only once the new file verifies (None: the caller starts afresh)."""
    size, sha = yield Blocking(job.files.finish_done)
    if job.sha256 is None or sha == job.sha256:
        if job.reused is None:
            job.reused = size  # every byte of it is reused: bytes_reused + transferred == size
        return result_of(job, size, sha, assessment.record)
    log.warning(
        "%s has SHA-256 %s, expected %s: downloading it again", job.files.dest, sha, job.sha256
    )
    job.reused = 0
    return None


def new_record(
    job: DownloadJob, identity: Identity, total: int | None, cursor: int, tail: bytes | bytearray
) -> control.ControlRecord:
    etag = identity.etag.header_value() if identity.etag is not None else None
    return control.ControlRecord(
        url=job.url,
        total=total,
        etag=etag if identity.etag is None or identity.etag.quoted else None,
        last_modified=identity.last_modified,
        segments=_segments(cursor, total, tail),
    )


def advanced(record: control.ControlRecord, offset: int, tail: bytearray) -> control.ControlRecord:
    return control.ControlRecord(
        url=record.url,
        total=record.total,
        etag=record.etag,
        last_modified=record.last_modified,
        segments=_segments(offset, record.total, tail),
        generation=record.generation + 1,
    )


def _segments(
    cursor: int, total: int | None, tail: bytes | bytearray
) -> tuple[control.Segment, ...]:
    # An empty file has no bytes to track, so no segment (a segment is never empty).
    if total == 0:
        return ()
    return (single_segment(cursor, total, bytes(tail)),)


def keep_tail(tail: bytearray, chunk: bytes) -> None:
    tail += chunk[-control.TAIL_BYTES :]
    if len(tail) > control.TAIL_BYTES:
        del tail[: len(tail) - control.TAIL_BYTES]


def begin(job: DownloadJob, record: control.ControlRecord, total: int | None) -> Program[PartFile]:
    """Start ``.part`` afresh for ``record``, saying once what of it cannot be stored."""
    note_unstorable(job, record)
    return PartFile((yield Blocking(job.files.begin, (record, total))))


def note_unstorable(job: DownloadJob, record: control.ControlRecord) -> None:
    """Say once (a warning) what of ``record`` the control record cannot hold, and what follows."""
    fitted = control.fit(record)
    if fitted.reason:
        consequence = "" if fitted.record is not None else "; this download cannot resume"
        log.warning("download of %s: %s%s", job.url, fitted.reason, consequence)


def partial_error(
    exc: BaseException, done: int, record: control.ControlRecord | None
) -> PartialDownloadError:
    done = claimable(done, record)
    error = PartialDownloadError(
        f"download interrupted after {done} durable bytes: {exc}",
        bytes_done=done,
        total=record.total if record is not None else None,
    )
    error.retry_after = getattr(exc, "retry_after", None)  # type: ignore[attr-defined]
    return error


def request_counter(job: DownloadJob) -> Callable[..., None]:
    """The counter `_engine/drive.py` calls for a download's exchanges: requests (redirect hops
    and retries included) go to ``job.requests``; bytes are counted as they are written."""

    def count(*, requests: int = 0, fetched: int = 0, retries: int = 0) -> None:
        job.requests += requests

    return count


def progress_discarded(message: str) -> PartialDownloadError:
    """The error of an attempt that discarded its progress (the remote changed under it): the
    one a download() tries again, from byte 0, since its own exchange could not (`download`)."""
    error = PartialDownloadError(message, bytes_done=0, total=None)
    error.start_over = True  # type: ignore[attr-defined]
    return error


def starts_over(error: PartialDownloadError) -> bool:
    """Whether ``error`` discarded the progress, so another attempt starts afresh."""
    return bool(getattr(error, "start_over", False))


def claimable(done: int, record: control.ControlRecord | None) -> int:
    """The durable bytes a later attempt can resume from: none when no record may be written
    (``control.fit``), as it then starts at byte 0."""
    if record is not None and control.fit(record).record is None:
        return 0
    return done


def _elapsed(job: DownloadJob) -> float:
    assert job.clock is not None, "the job's program took the runner's clock first"
    return job.clock.monotonic() - job.started


def result_of(
    job: DownloadJob, size: int, sha: str, record: control.ControlRecord | None
) -> DownloadResult:
    return DownloadResult(
        path=job.files.dest,
        size=size,
        sha256=sha,
        etag=record.etag if record is not None else None,
        last_modified=record.last_modified if record is not None else None,
        requests=job.requests,
        bytes_transferred=job.transferred,
        bytes_reused=job.reused or 0,
        elapsed=_elapsed(job),
        dropped_mirrors=tuple(job.dropped),
    )


# -- parallel segments -----------------------------------------------------------------------
