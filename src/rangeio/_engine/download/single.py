"""One connection: haul, one request (redirects aside) that completes the file or raises with durable progress."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from rangeio._core import control
from rangeio._core.download import (
    Assessment,
    Complete,
    Hop,
    Reset,
    Restart,
    Resume,
    Start,
    identity_of,
    read_answer,
    resume_headers,
    segment_spec,
)
from rangeio._core.exchange import request_to
from rangeio._core.identity import Identity
from rangeio._core.redirects import follow
from rangeio._core.retry import is_retryable
from rangeio._disk import PartFile, PartFiles
from rangeio._engine.body import BodyReader, release
from rangeio._engine.download.finish import algorithms_for, finish
from rangeio._engine.download.job import (
    DownloadJob,
    DownloadResult,
    advanced,
    already_done,
    claimable,
    keep_tail,
    new_record,
    note_unstorable,
    on_the_clock,
    partial_error,
)
from rangeio._engine.ops import (
    Blocking,
    Close,
    Join,
    Program,
    Send,
    Spawn,
    now,
)
from rangeio.errors import (
    HTTPStatusError,
    NetworkError,
    PartialDownloadError,
    ProtocolError,
    RedirectError,
    RemoteChangedError,
)

log = logging.getLogger("rangeio.download")


def haul(job: DownloadJob) -> Program[DownloadResult]:
    """One attempt = one HTTP request (redirect hops aside): complete the file, or raise
    PartialDownloadError with the durable progress so far."""
    yield from on_the_clock(job)
    files = job.files
    assessment, tails = yield Blocking(files.inspect, (job.url,))
    if assessment.kind is Start.DONE:
        existing = yield from already_done(job, assessment)
        if existing is not None:
            return existing
        assessment = Assessment(Start.FRESH, None, "the destination does not match sha256=")
    record: control.ControlRecord | None = assessment.record
    if assessment.starts_over:
        if assessment.kind is Start.FRESH:
            log.warning("restarting download of %s: %s", job.url, assessment.reason)
        yield Blocking(files.discard)
    segment = record.segments[0] if record is not None else control.Segment(0, 0, None)
    cursor = segment.cursor
    if job.reused is None:
        job.reused = cursor
    tail = bytearray(tails.get(segment.start, b"")) if cursor else bytearray()
    spec = segment_spec(segment, to_end=True) if cursor else None
    pinned = identity_of(record) if record is not None and cursor else None

    ranged = resume_headers(segment, record, to_end=True) if cursor else {}
    response, answer = yield from ask(job, spec, ranged, pinned, cursor, record)
    if isinstance(answer, Complete):
        yield Close(response)
        fd = PartFile((yield Blocking(files.reopen)))
        try:
            return (yield from finish(job, fd, answer.total, record, response.headers, whole=False))
        finally:
            yield Blocking(fd.close)
    if isinstance(answer, Reset):
        yield Close(response)
        log.warning("restarting download of %s: %s", job.url, answer.reason)
        yield Blocking(files.discard)
        job.reused = 0  # what an earlier attempt left is gone: nothing of it is reused
        # Retryable (the next attempt starts afresh), with the change as the cause, as in parallel.
        raise PartialDownloadError(
            f"remote file changed, progress discarded: {answer.reason}", bytes_done=0, total=None
        ) from RemoteChangedError(answer.reason)
    skip = 0
    if isinstance(answer, Restart):
        if cursor:
            # The server sends the whole file (a new version, or Range ignored): it is written
            # from byte 0 in this same call. files.begin() makes a record of the new version at
            # cursor 0 durable before it truncates, so no crash leaves old bytes claimed valid.
            log.info(
                "download of %s restarts from byte 0 with the 200 answer (%s)",
                job.url,
                answer.changed or "the server ignored Range",
            )
            job.reused = 0
        total = answer.length
        record = new_record(job, answer.identity, total, 0, b"")
        note_unstorable(job, record)
        offset, end, tail, whole = 0, total, bytearray(), True
    else:
        assert isinstance(answer, Resume) and record is not None
        total = answer.total if answer.total is not None else record.total
        record = new_record(job, identity_of(record).merged(answer.identity), total, cursor, tail)
        offset, end, whole, skip = cursor, answer.range.stop, False, answer.skip
    try:
        # Inside the try: a digest header that does not parse, or a .part that cannot be opened
        # safely, still closes the response (and the .part, once open).
        algorithms = algorithms_for(response.headers, whole=whole)
        step = Blocking(files.begin, (record, total)) if whole else Blocking(files.reopen)
        opened = yield step
    except BaseException:
        yield Close(response)
        raise
    fd = PartFile(opened)
    try:
        yield Blocking(fd.start_hashing, (algorithms, offset))
        offset = yield from receive(job, response, fd, record, offset, end, tail, skip)
        yield Close(response)
        final_total = total if total is not None else offset
        if end is not None and offset < end:
            raise PartialDownloadError(
                f"connection closed after {offset} of {end} bytes",
                bytes_done=claimable(offset, record),
                total=total,
            )
        if total is not None and offset < total:
            # A 206 that stopped short of the end (a server capping its answers): the bytes are
            # durable, and the next attempt asks for the rest.
            raise PartialDownloadError(
                f"server sent bytes up to {offset} of {total}",
                bytes_done=claimable(offset, record),
                total=total,
            )
        result = yield from finish(job, fd, final_total, record, response.headers, whole=whole)
        return result
    finally:
        yield Blocking(fd.close)


def ask(
    job: DownloadJob,
    spec: Any,
    ranged: Mapping[str, str],
    pinned: Identity | None,
    cursor: int,
    record: control.ControlRecord | None,
) -> Program[tuple[Any, Any]]:
    """Send the request (following redirects) and read what the answer means. ``ranged`` holds
    the Range and If-Range headers (none for a fresh whole-file GET)."""
    url, hops = job.url, 0
    while True:
        job.requests += 1
        try:
            response = yield Send(request_to("GET", url, job.url, job.headers, ranged), job.timeout)
        except NetworkError as exc:
            if not is_retryable(exc):
                raise  # an untrusted certificate stays untrusted: not a resumable interruption
            raise partial_error(exc, cursor, record) from exc
        at = yield from now()
        try:
            answer = read_answer(spec, response.status, response.headers, pinned, cursor, now=at)
        except HTTPStatusError as exc:
            # A status answer's small body is drained so the connection is kept (drain_budget).
            yield from release(response, job.timeout, method="GET")
            if is_retryable(exc):
                raise partial_error(exc, cursor, record) from exc
            raise
        except Exception:
            yield Close(response)
            raise
        if not isinstance(answer, Hop):
            return response, answer
        yield from release(response, job.timeout, method="GET")
        if not job.allow_redirects:
            raise RedirectError(
                f"{answer.status} redirect to {answer.location!r} not followed "
                "(allow_redirects=False)",
                status=answer.status,
                location=answer.location,
            )
        hops += 1
        url = follow(url, answer.location, hops, job.url, allow_downgrade=job.allow_https_downgrade)


def receive(
    job: DownloadJob,
    response: Any,
    fd: PartFile,
    record: control.ControlRecord,
    offset: int,
    end: int | None,
    tail: bytearray,
    skip: int = 0,
    *,
    beside: bool = True,
) -> Program[int]:
    """Stream the body to disk at ``offset``, checkpointing as the policy says. The first
    ``skip`` body bytes lie before ``offset`` (a widened 206) and are dropped.

    Checkpoints run beside the transfer (one at a time), so an fdatasync never stalls the
    socket; a crash then loses at most one interval plus what arrived during one checkpoint.
    Not ``beside``: in a spawned program, which must not Join (`_engine/ops.py`), they run in
    line instead (the socket waits for each fdatasync).
    """
    files = job.files
    background = _Background()
    clock = yield from on_the_clock(job)
    last_offset, last_time = offset, clock.monotonic()
    body = BodyReader(response, job.timeout, clock)
    try:
        # Received into the .part's own buffers (PartFile.space): a chunk is a view of one,
        # written (and hashed) from there, and the next one lands in the space after it.
        while (chunk := (yield from body.next_chunk(fd.space()))) is not None:
            if skip:
                dropped = min(skip, len(chunk))
                # A copy: what is written must be what the buffer received, or a copy of it.
                chunk, skip = bytes(chunk[dropped:]), skip - dropped
                if not chunk:
                    continue
            if end is not None and offset + len(chunk) > end:
                # Bytes past the declared length are not the file's: none of them is written.
                raise ProtocolError(f"body longer than declared: more than {end} bytes in all")
            yield Blocking(fd.write, (chunk, offset))
            offset += len(chunk)
            job.transferred += len(chunk)
            keep_tail(tail, chunk)
            if job.on_progress is not None:
                job.on_progress(offset, record.total)
            background.raise_failure()
            now = clock.monotonic()
            due = job.policy.checkpoint_due(offset - last_offset, now - last_time)
            if due and not background.running:
                snapshot = advanced(record, offset, tail)
                if beside:
                    background.handle = yield Spawn(background.checkpoint(files, fd, snapshot))
                else:
                    yield Blocking(files.checkpoint, (fd, snapshot))
                last_offset, last_time = offset, now
    except NetworkError as exc:
        yield from background.wait()
        retryable = is_retryable(exc)
        complete = end is not None and offset == end and retryable
        if not complete:
            yield Blocking(files.checkpoint, (fd, advanced(record, offset, tail)))
            if not retryable:
                # Our own verdict on the body (longer than declared): a resume would get the same.
                raise
            raise partial_error(exc, offset, record) from exc
        # Every byte arrived, then the connection went (before a chunked body's last chunk,
        # say): the body is complete, and the download goes on to verify and finish it.
        last_offset = -1  # the final checkpoint below is still due
    except BaseException as exc:
        # Anything else that stops us (a bad body, Ctrl-C, a progress callback raising) keeps
        # the progress made; but not a failed write or sync: that must never be checkpointed.
        if not isinstance(exc, GeneratorExit):
            yield from background.wait()
        if not isinstance(exc, (OSError, GeneratorExit)):
            yield Blocking(files.checkpoint, (fd, advanced(record, offset, tail)))
        raise
    yield from background.wait()
    background.raise_failure()
    if offset > last_offset:
        yield Blocking(files.checkpoint, (fd, advanced(record, offset, tail)))
    return offset


class _Background:
    """The checkpoint running beside the transfer, if any, and how it ended."""

    def __init__(self) -> None:
        self.running = False
        self.handle: Any = None
        self.failure: BaseException | None = None

    def checkpoint(
        self, files: PartFiles, fd: PartFile, record: control.ControlRecord
    ) -> Program[None]:
        self.running = True
        try:
            yield Blocking(files.checkpoint, (fd, record))
        except BaseException as exc:  # reported to the transfer loop, which stops
            self.failure = exc
        finally:
            self.running = False

    def wait(self) -> Program[None]:
        if self.handle is not None:
            handle, self.handle = self.handle, None
            yield Join([handle])

    def raise_failure(self) -> None:
        if self.failure is not None:
            raise self.failure
