"""Downloads as programs: haul (one request) and download (retries), crash-safe on disk."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rangeio._core import control, digests
from rangeio._core.download import (
    Complete,
    DownloadPolicy,
    Hop,
    Reset,
    Restart,
    Resume,
    identity_of,
    read_answer,
    resume_headers,
    segment_spec,
    single_segment,
)
from rangeio._core.exchange import BASE_HEADERS, Request
from rangeio._core.identity import Identity
from rangeio._core.options import Timeout
from rangeio._core.redirects import check_url, follow, headers_for
from rangeio._core.retry import RetryPolicy
from rangeio._disk import PartFiles, close_fd, pwrite_all
from rangeio._engine.ops import Blocking, Close, NextChunk, Program, Send, Sleep
from rangeio.errors import (
    ChecksumMismatchError,
    HTTPStatusError,
    NetworkError,
    PartialDownloadError,
    ProtocolError,
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
    allow_https_downgrade: bool = False
    requests: int = 0
    transferred: int = 0
    reused: int | None = None
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        check_url(self.url)
        self.files = PartFiles(Path(self.dest))
        if self.sha256 is not None:
            self.sha256 = self.sha256.strip().lower()


# download() retries this often by default: enough to ride out a flaky link or a rolling
# restart (with backoff up to 5 s), bounded so a dead server fails in well under a minute.
DEFAULT_ATTEMPTS = 8


def new_job(
    url: str,
    dest: str | Path,
    *,
    headers: Mapping[str, str] | None,
    sha256: str | None,
    timeout: Timeout | float | tuple[float, float] | None,
    retries: RetryPolicy | int | None,
    policy: DownloadPolicy | None,
    on_progress: Progress | None = None,
    connections: int = 1,
) -> DownloadJob:
    """The job for one haul/download call, every argument checked once for both front ends."""
    if connections < 1:
        raise ValueError("connections must be >= 1")
    if retries is None:
        retries = RetryPolicy(attempts=DEFAULT_ATTEMPTS)
    elif isinstance(retries, int):
        retries = RetryPolicy(attempts=retries + 1)
    return DownloadJob(
        url,
        Path(dest),
        dict(headers or {}),
        sha256,
        Timeout.coerce(timeout),
        retries,
        policy or DownloadPolicy(),
        on_progress,
    )


def download(job: DownloadJob) -> Program[DownloadResult]:
    """Attempts until the file is complete, resuming after every failure that allows it."""
    failures = 0
    while True:
        try:
            return (yield from haul(job))
        except PartialDownloadError as exc:
            failures += 1
            delay = job.retries.delay(failures, getattr(exc, "retry_after", None))
            if delay is None:
                raise
            log.info("download of %s interrupted (%s); retrying in %.2fs", job.url, exc, delay)
            yield Sleep(delay)


def haul(job: DownloadJob) -> Program[DownloadResult]:
    """One attempt = one HTTP request (redirect hops aside): complete the file, or raise
    PartialDownloadError with the durable progress so far."""
    files = job.files
    assessment, tails = yield Blocking(files.inspect, (job.url,))
    if assessment.kind == "done":
        size, sha = yield Blocking(files.finish_done)
        return _result(job, size, sha, assessment.record)
    record: control.ControlRecord | None = assessment.record
    if assessment.kind == "fresh":
        if assessment.reason not in ("no previous progress",):
            log.warning("restarting download of %s: %s", job.url, assessment.reason)
        yield Blocking(files.discard)
    segment = record.segments[0] if record is not None else control.Segment(0, 0, None)
    cursor = segment.cursor
    if job.reused is None:
        job.reused = cursor
    tail = bytearray(tails.get(segment.start, b"")) if cursor else bytearray()
    spec = segment_spec(segment, to_end=True) if cursor else None
    pinned = identity_of(record) if record is not None and cursor else None

    response, answer = yield from _ask(job, spec, record, segment, pinned, cursor)
    if isinstance(answer, Complete):
        yield Close(response)
        fd = _File((yield Blocking(files.reopen)))
        try:
            return (
                yield from _finish(job, fd, answer.total, record, response.headers, whole=False)
            )
        finally:
            yield Blocking(fd.close)
    if isinstance(answer, Reset):
        yield Close(response)
        yield Blocking(files.discard)
        raise PartialDownloadError(
            f"remote file changed, progress discarded: {answer.reason}", bytes_done=0, total=None
        )
    if isinstance(answer, Restart):
        total = answer.length
        record = _record(job, answer.identity, total, 0, b"")
        fd = _File((yield Blocking(files.begin, (record, total))))
        offset, end, tail = 0, total, bytearray()
    else:
        assert isinstance(answer, Resume) and record is not None
        total = answer.total if answer.total is not None else record.total
        record = _record(job, identity_of(record).merged(answer.identity), total, cursor, tail)
        fd = _File((yield Blocking(files.reopen)))
        offset, end = cursor, answer.range.stop
    try:
        offset = yield from _receive(job, response, fd, record, offset, end, tail)
        yield Close(response)
        final_total = total if total is not None else offset
        if end is not None and offset < end:
            raise PartialDownloadError(
                f"connection closed after {offset} of {end} bytes", bytes_done=offset, total=total
            )
        result = yield from _finish(
            job, fd, final_total, record, response.headers, whole=isinstance(answer, Restart)
        )
        return result
    finally:
        yield Blocking(fd.close)


def _ask(
    job: DownloadJob,
    spec: Any,
    record: control.ControlRecord | None,
    segment: control.Segment,
    pinned: Identity | None,
    cursor: int,
) -> Program[tuple[Any, Any]]:
    """Send the request (following redirects) and read what the answer means."""
    url, hops = job.url, 0
    while True:
        headers = headers_for(url, job.url, job.headers)
        headers.update(BASE_HEADERS)
        if cursor:
            headers.update(resume_headers(segment, record, to_end=True))
        job.requests += 1
        try:
            response = yield Send(Request("GET", url, headers), job.timeout)
        except NetworkError as exc:
            raise _partial(exc, cursor, record) from exc
        try:
            answer = read_answer(
                spec, response.status, response.headers, pinned, cursor, now=time.time()
            )
        except HTTPStatusError as exc:
            yield Close(response)
            if exc.is_transient:
                raise _partial(exc, cursor, record) from exc
            raise
        except Exception:
            yield Close(response)
            raise
        if not isinstance(answer, Hop):
            return response, answer
        yield Close(response)
        hops += 1
        url = follow(url, answer.location, hops, job.url, allow_downgrade=job.allow_https_downgrade)


def _receive(
    job: DownloadJob,
    response: Any,
    fd: _File,
    record: control.ControlRecord,
    offset: int,
    end: int | None,
    tail: bytearray,
) -> Program[int]:
    """Stream the body to disk at ``offset``, checkpointing as the policy says."""
    files = job.files
    last_offset, last_time = offset, time.monotonic()
    try:
        while (chunk := (yield NextChunk(response))) is not None:
            if end is not None and offset + len(chunk) > end:
                # Bytes past the declared length are not the file's: none of them is written.
                raise ProtocolError(f"body longer than declared: more than {end} bytes in all")
            yield Blocking(pwrite_all, (fd.fd, chunk, offset))
            offset += len(chunk)
            job.transferred += len(chunk)
            _keep_tail(tail, chunk)
            if job.on_progress is not None:
                job.on_progress(offset, record.total)
            now = time.monotonic()
            if job.policy.checkpoint_due(offset - last_offset, now - last_time):
                yield Blocking(files.checkpoint, (fd.fd, _advance(record, offset, tail)))
                last_offset, last_time = offset, now
    except NetworkError as exc:
        yield Blocking(files.checkpoint, (fd.fd, _advance(record, offset, tail)))
        raise _partial(exc, offset, record) from exc
    except ProtocolError:
        yield Blocking(files.checkpoint, (fd.fd, _advance(record, offset, tail)))
        raise
    if offset > last_offset:
        yield Blocking(files.checkpoint, (fd.fd, _advance(record, offset, tail)))
    return offset


def _finish(
    job: DownloadJob,
    fd: _File,
    total: int,
    record: control.ControlRecord | None,
    headers: Mapping[str, str],
    *,
    whole: bool,
) -> Program[DownloadResult]:
    """Verify the complete ``.part`` (length, SHA-256, header digests), then move it into place."""
    files = job.files
    expected = digests.from_headers(headers, body_is_representation=whole)
    algorithms = tuple(sorted({"sha256", *(e.algorithm for e in expected)}))
    hashes = yield Blocking(files.finish, (fd.fd, total, algorithms))
    if job.sha256 is not None and hashes["sha256"] != job.sha256:
        raise ChecksumMismatchError(
            f"SHA-256 of {job.url} is {hashes['sha256']}, expected {job.sha256}; "
            f"the data stays in {files.part}",
            expected=job.sha256,
            actual=hashes["sha256"],
            algorithm="sha256",
        )
    for digest in expected:
        if hashes[digest.algorithm] != digest.hex:
            raise ChecksumMismatchError(
                f"{digest.source} says {digest.algorithm} {digest.hex}, "
                f"the file has {hashes[digest.algorithm]}; the data stays in {files.part}",
                expected=digest.hex,
                actual=hashes[digest.algorithm],
                algorithm=digest.algorithm,
            )
    yield Blocking(files.commit)
    return _result(job, total, hashes["sha256"], record)


def _record(
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


def _advance(record: control.ControlRecord, offset: int, tail: bytearray) -> control.ControlRecord:
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


class _File:
    """The open ``.part``; closing twice is harmless (error paths and normal ends meet)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._open = True

    def close(self) -> None:
        if self._open:
            self._open = False
            close_fd(self.fd)


def _keep_tail(tail: bytearray, chunk: bytes) -> None:
    tail += chunk[-control.TAIL_BYTES :]
    if len(tail) > control.TAIL_BYTES:
        del tail[: len(tail) - control.TAIL_BYTES]


def _partial(
    exc: BaseException, done: int, record: control.ControlRecord | None
) -> PartialDownloadError:
    error = PartialDownloadError(
        f"download interrupted after {done} durable bytes: {exc}",
        bytes_done=done,
        total=record.total if record is not None else None,
    )
    error.retry_after = getattr(exc, "retry_after", None)  # type: ignore[attr-defined]
    return error


def _result(
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
        elapsed=time.monotonic() - job.started,
    )
