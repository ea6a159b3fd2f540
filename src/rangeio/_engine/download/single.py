"""One connection: haul, one exchange to the end of the file, written as it arrives; the file completes or the error carries durable progress."""

from __future__ import annotations

import logging
from typing import Any

from rangeio._core import control
from rangeio._core.download import (
    Assessment,
    Complete,
    Reset,
    Restart,
    Resume,
    Start,
    identity_of,
)
from rangeio._core.download_exchange import DownloadExchange
from rangeio._core.identity import Identity
from rangeio._core.redirects import ResolvedUrl
from rangeio._core.retry import is_retryable
from rangeio._disk import PartFile, PartFiles
from rangeio._engine.download.finish import algorithms_for, finish
from rangeio._engine.download.job import (
    DownloadJob,
    DownloadResult,
    advanced,
    already_done,
    begin,
    claimable,
    keep_tail,
    new_record,
    on_the_clock,
    partial_error,
    progress_discarded,
    request_counter,
)
from rangeio._engine.drive import drive
from rangeio._engine.ops import (
    Blocking,
    Join,
    Program,
    Spawn,
)
from rangeio.errors import (
    NetworkError,
    PartialDownloadError,
    RemoteChangedError,
)

log = logging.getLogger("rangeio.download")


def haul(job: DownloadJob, *, one_request: bool = True) -> Program[DownloadResult]:
    """One attempt: one exchange (`DownloadExchange`) to the end of the file, written to
    ``.part`` as it arrives; complete the file, or raise PartialDownloadError with the durable
    progress so far. ``one_request`` (rangeio.haul): one HTTP request, redirect hops aside (the
    job's retry policy is NO_RETRY, and a 206 that stops short ends the attempt); download()
    passes False, and the exchange then resumes cuts and asks for what a short 206 lacked."""
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
    pinned = identity_of(record) if record is not None and cursor else None
    exchange = new_exchange(
        job, job.url, cursor, None, pinned, plain=not cursor, one_request=one_request
    )
    writer = Writer(job, record if cursor else None, cursor, tail)
    return (yield from writer.run(exchange))


def new_exchange(
    job: DownloadJob,
    url: str,
    cursor: int,
    stop: int | None,
    pinned: Identity | None,
    *,
    plain: bool = False,
    one_request: bool = False,
) -> DownloadExchange:
    """The exchange for the bytes of ``url`` from ``cursor`` (to ``stop``, or the end), of the
    version ``pinned`` names (None: a first request). ``plain``: a first request without Range
    (haul's); a parallel download's first asks ``bytes=0-`` to learn whether ranges work.
    ``url`` is a parameter: a segment may ask another URL of the same file."""
    return DownloadExchange(
        cursor,
        stop,
        first_url=url,
        target=ResolvedUrl(url),
        user_headers=job.headers,
        pinned=pinned,
        retry=job.retries,
        allow_downgrade=job.allow_https_downgrade,
        follow_redirects=job.allow_redirects,
        plain=plain,
        one_request=one_request,
    )


class Writer:
    """The sink of a one-connection download (`_engine/drive.py` Sink): every chunk the
    exchange places is written to ``.part`` at its offset, progress is checkpointed as the
    policy says, and a Restart resets ``.part`` durably (``PartFiles.begin``) before the
    exchange hands over a byte of it. ``record`` is the one on disk a resume continues (None:
    the file starts at byte 0 with the first answer).

    Checkpoints run beside the transfer (one at a time), so an fdatasync never stalls the
    socket; a crash then loses at most one interval plus what arrived during one checkpoint.
    Not ``beside``: in a spawned program, which must not Join (`_engine/ops.py`), they run in
    line instead (the socket waits for each fdatasync)."""

    def __init__(
        self,
        job: DownloadJob,
        record: control.ControlRecord | None,
        offset: int,
        tail: bytearray,
        *,
        beside: bool = True,
    ) -> None:
        self.job = job
        self.record = record
        self.offset = offset
        self.tail = tail
        self.fd: PartFile | None = None
        self.whole = False  # the bytes came in a 200 (Content-MD5 applies to it)
        self._beside = beside
        self._background = _Background()
        self._checkpointed = offset
        self._last_time = 0.0
        self.count = request_counter(job)

    def run(self, exchange: DownloadExchange) -> Program[DownloadResult]:
        """Drive ``exchange`` to its end, then finish the file (or raise with its progress)."""
        return self.finish_after(exchange, drive(exchange, self.job.timeout, self.count, sink=self))

    def finish_after(
        self, exchange: DownloadExchange, driving: Program[Any]
    ) -> Program[DownloadResult]:
        """Run ``driving`` (the exchange's loop), then conclude: verify and rename the file."""
        try:
            yield from self._guarded(driving)
            return (yield from self._conclude(exchange))
        finally:
            if self.fd is not None:
                yield Blocking(self.fd.close)

    # -- the sink ------------------------------------------------------------------------------

    def opened(self, exchange: DownloadExchange) -> Program[None]:
        job, files = self.job, self.job.files
        answer = exchange.answer
        clock = yield from on_the_clock(job)
        job.peak_connections = max(job.peak_connections, 1)
        if isinstance(answer, Restart):
            yield from self._close()
            if self.offset or self.record is not None:
                # The server sends the whole file (a new version, or Range ignored): it is
                # written from byte 0 in this same call. files.begin() makes a record of the new
                # version at cursor 0 durable before it truncates, so no crash leaves old bytes
                # claimed valid.
                log.info(
                    "download of %s restarts from byte 0 with the 200 answer (%s)",
                    job.url,
                    answer.changed or "the server ignored Range",
                )
            job.reused = 0
            record = new_record(job, answer.identity, answer.length, 0, b"")
            algorithms = algorithms_for(exchange.headers, whole=True)
            self.fd = yield from begin(job, record, answer.length)
            self.record, self.offset, self.tail, self.whole = record, 0, bytearray(), True
            self._checkpointed = 0
            yield Blocking(self.fd.start_hashing, (algorithms, 0))
            exchange.restarted()
        elif self.fd is None:
            assert isinstance(answer, Resume)
            algorithms = algorithms_for(exchange.headers, whole=False)
            if self.record is None:  # a first request answered 206 (``bytes=0-``)
                self.record = new_record(job, answer.identity, answer.total, 0, b"")
                self.fd = yield from begin(job, self.record, answer.total)
            else:
                old = self.record
                total = answer.total if answer.total is not None else old.total
                self.record = new_record(
                    job, identity_of(old).merged(answer.identity), total, self.offset, self.tail
                )
                self.fd = PartFile((yield Blocking(files.reopen)))
            yield Blocking(self.fd.start_hashing, (algorithms, self.offset))
        else:
            # A Resume within the exchange (after a cut) goes on writing the file already open;
            # its headers are the ones the finish reads, and they describe a part, not the whole.
            self.whole = False
        self._last_time = clock.monotonic()

    def received(self, exchange: DownloadExchange) -> Program[None]:
        start, data = exchange.take()
        if not data:
            return
        job, fd, record = self.job, self.fd, self.record
        assert fd is not None and record is not None
        yield Blocking(fd.write, (data, start))
        self.offset = start + len(data)
        job.transferred += len(data)
        keep_tail(self.tail, data)
        if job.on_progress is not None:
            job.on_progress(self.offset, record.total)
        self._background.raise_failure()
        assert job.clock is not None
        now = job.clock.monotonic()
        due = job.policy.checkpoint_due(self.offset - self._checkpointed, now - self._last_time)
        if due and not self._background.running:
            snapshot = advanced(record, self.offset, self.tail)
            if self._beside:
                self._background.handle = yield Spawn(
                    self._background.checkpoint(job.files, fd, snapshot)
                )
            else:
                yield Blocking(job.files.checkpoint, (fd, snapshot))
            self._checkpointed, self._last_time = self.offset, now

    def resuming(self, exchange: DownloadExchange) -> Program[None]:
        """A cut (or a short 206) is resumed: what arrived is made durable first, so a crash
        during the wait that follows loses none of it."""
        if self.fd is not None:
            yield from self._background.wait()
            self._background.raise_failure()
            yield from self._checkpoint()
            if self.offset and not claimable(self.offset, self.record):
                # No record can hold this version, so nothing of it is durable progress: a
                # resume would splice bytes no validator pins. Ask for the whole file again.
                exchange.start_over()

    # -- around it -----------------------------------------------------------------------------

    def _checkpoint(self) -> Program[None]:
        assert self.fd is not None and self.record is not None
        yield Blocking(
            self.job.files.checkpoint, (self.fd, advanced(self.record, self.offset, self.tail))
        )
        self._checkpointed = self.offset

    def _close(self) -> Program[None]:
        """Close ``.part`` (a Restart begins it again), once no checkpoint of it runs."""
        yield from self._background.wait()
        self._background.raise_failure()
        if self.fd is not None:
            fd, self.fd = self.fd, None
            yield Blocking(fd.close)

    def _guarded(self, driving: Program[Any]) -> Program[None]:
        """Run the exchange's loop; whatever stops it keeps the progress made (checkpointed),
        but not a failed write or sync: that must never be checkpointed. What is worth another
        attempt (is_retryable) becomes a PartialDownloadError with the durable progress."""
        try:
            yield from driving
        except NetworkError as exc:
            yield from self._background.wait()
            if self.fd is not None:
                yield from self._checkpoint()
            if not is_retryable(exc):
                # Our own verdict on the body (longer than declared), a 404, a TLS failure:
                # another attempt would get the same.
                raise
            raise partial_error(exc, self.offset, self.record) from exc
        except BaseException as exc:
            # A bad body, Ctrl-C, a progress callback raising: the progress is saved.
            if not isinstance(exc, GeneratorExit):
                yield from self._background.wait()
            if self.fd is not None and not isinstance(exc, (OSError, GeneratorExit)):
                yield from self._checkpoint()
            raise

    def _conclude(self, exchange: DownloadExchange) -> Program[DownloadResult]:
        job, files = self.job, self.job.files
        answer = exchange.answer
        if isinstance(answer, Reset):
            yield from self._close()
            log.warning("restarting download of %s: %s", job.url, answer.reason)
            yield Blocking(files.discard)
            job.reused = 0  # what an earlier attempt left is gone: nothing of it is reused
            raise progress_discarded(
                f"remote file changed, progress discarded: {answer.reason}"
            ) from RemoteChangedError(answer.reason)
        if isinstance(answer, Complete):
            if self.fd is None:
                self.fd = PartFile((yield Blocking(files.reopen)))
            else:
                yield from self._settle()
            return (
                yield from finish(
                    job, self.fd, answer.total, self.record, exchange.headers, whole=False
                )
            )
        yield from self._settle()
        record, offset = self.record, self.offset
        assert self.fd is not None and record is not None
        end, total = exchange.end, record.total
        if end is not None and offset < end:
            # A 206 that stopped short of the end (a server capping its answers), in a haul:
            # the bytes are durable, and the next attempt asks for the rest.
            raise PartialDownloadError(
                f"server sent bytes up to {offset} of {end}",
                bytes_done=claimable(offset, record),
                total=total,
            )
        final_total = total if total is not None else offset
        return (
            yield from finish(job, self.fd, final_total, record, exchange.headers, whole=self.whole)
        )

    def _settle(self) -> Program[None]:
        """The body is over: the checkpoint beside it ends, and the last one is written."""
        yield from self._background.wait()
        self._background.raise_failure()
        if self.offset > self._checkpointed:
            yield from self._checkpoint()


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
