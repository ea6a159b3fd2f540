"""Parallel segments: up to ``connections`` workers, each on its own segment, with work stealing."""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from typing import Any

from rangeio._core import control
from rangeio._core.download import (
    Assessment,
    Complete,
    Restart,
    Resume,
    Start,
    identity_of,
)
from rangeio._core.headers import RangeSpec
from rangeio._core.identity import Identity
from rangeio._core.retry import is_retryable
from rangeio._core.segments import SegmentTable, initial_workers
from rangeio._disk import RECEIVE_BUFFER_BYTES, PartFile, hash_into, new_hashers, pwrite_all
from rangeio._engine.body import BodyReader
from rangeio._engine.download.finish import algorithms_for, finish
from rangeio._engine.download.job import (
    DownloadJob,
    DownloadResult,
    already_done,
    begin,
    claimable,
    new_record,
    on_the_clock,
)
from rangeio._engine.download.single import ask, receive
from rangeio._engine.ops import (
    Blocking,
    Close,
    Join,
    Program,
    Sleep,
    Spawn,
)
from rangeio.errors import (
    NetworkError,
    PartialDownloadError,
    RemoteChangedError,
)

log = logging.getLogger("rangeio.download")


class _Shared:
    """What the workers of one parallel attempt share. Its lock guards the segment table (held
    only for table updates, never across I/O); checkpoints are serialised by their own lock.

    Every write to ``.part`` goes through ``write``, so that ``halt`` can stop them all: after
    it no byte is written and no record replaced, whatever the workers still blocked on the
    network do later, and the file may be closed."""

    def __init__(
        self, job: DownloadJob, table: SegmentTable, fd: PartFile, record: control.ControlRecord
    ) -> None:
        self.job = job
        self.table = table
        self.fd = fd
        self.record = record
        self.lock = threading.Lock()
        self._checkpoint_lock = threading.Lock()
        self._idle = threading.Condition(self.lock)  # notified when a write under way ends
        self._writing = 0
        self.stopped = False  # set by halt(), or by a worker that was interrupted
        self._sealed = False  # halt() wrote the last record: later checkpoints are dropped
        self.errors: list[BaseException] = []
        self.workers = 0  # workers not yet ended (set before they are spawned)
        self.hashing = False  # the prefix hasher has not ended
        self.restart: _Restarted | None = None  # a 200 a worker took over (_take_over)
        self.restarted: DownloadResult | None = None
        self.restart_error: BaseException | None = None
        self._last_bytes = table.durable_candidates
        assert job.clock is not None, "the job's program took the runner's clock first"
        self._clock = job.clock
        self._last_time = self._clock.monotonic()

    def checkpoint_due(self) -> bool:
        with self.lock:
            progress = self.table.durable_candidates - self._last_bytes
            return self.job.policy.checkpoint_due(
                progress, self._clock.monotonic() - self._last_time
            )

    def write(self, slot: int, chunk: bytes) -> int | None:
        """Write what of ``chunk`` still belongs to segment ``slot`` at its cursor, then move
        the cursor; the bytes written, or None once the attempt is stopping (nothing written).
        One blocking step: a worker cancelled meanwhile never leaves a write that halt()
        cannot see."""
        with self.lock:
            if self.stopped:
                return None
            cursor, stop = self.table.span(slot)
            piece = chunk[: max(stop - cursor, 0)]
            if not piece:
                return 0
            self._writing += 1
        written = False
        try:
            pwrite_all(self.fd.fd, piece, cursor)
            written = True
        finally:
            with self.lock:
                self._writing -= 1
                if written:
                    self.table.advance(slot, piece)
                self._idle.notify_all()
        return len(piece)

    def stop(self) -> None:
        """No write starts from now on (the workers notice at their next chunk)."""
        with self.lock:
            self.stopped = True

    def seal(self) -> None:
        """No write starts and no record of these segments is written from now on (a
        checkpoint under way finishes first): the file is about to restart for a new version."""
        with self._checkpoint_lock:
            self._sealed = True
        self.stop()

    def quiet(self) -> bool:
        """Whether the calling worker is the only thing left touching ``.part``."""
        with self.lock:
            return self.workers == 1 and not self._writing and not self.hashing

    def halt(self) -> None:
        """The attempt was interrupted (Ctrl-C, cancellation) while workers may still be
        receiving: stop every write, wait for those under way, then record every segment's
        durable cursor in one last checkpoint, as the single-connection path does."""
        with self.lock:
            self.stopped = True
            while self._writing:
                self._idle.wait()
        self.checkpoint(seal=True)

    def checkpoint(self, *, seal: bool = False) -> None:
        """Snapshot the cursors, then fdatasync, then write the record: it never claims bytes
        the sync did not cover (writes happen before their cursor moves)."""
        with self._checkpoint_lock:
            if self._sealed:
                return  # halt() wrote the last one; the file may be closed by now
            self._sealed = seal
            with self.lock:
                segments = self.table.snapshot()
                self._last_bytes = self.table.durable_candidates
                self._last_time = self._clock.monotonic()
            record = replace(self.record, segments=segments, generation=self.record.generation + 1)
            self.job.files.checkpoint(self.fd, record)
            self.record = record


def parallel(job: DownloadJob) -> Program[DownloadResult]:
    """One attempt with up to ``job.connections`` connections, each on its own segment; an
    idle connection takes half of the largest remaining segment. A server that ignores Range
    gets one connection."""
    yield from on_the_clock(job)
    files = job.files
    assessment, tails = yield Blocking(files.inspect, (job.url,))
    if assessment.kind is Start.DONE:
        existing = yield from already_done(job, assessment)
        if existing is not None:
            return existing
        assessment = Assessment(Start.FRESH, None, "the destination does not match sha256=")
    record = assessment.record
    if (
        assessment.starts_over
        or record is None
        or record.total is None
        or len(record.segments) == 0
    ):
        if assessment.kind is Start.FRESH:
            log.warning("restarting download of %s: %s", job.url, assessment.reason)
        yield Blocking(files.discard)
        if job.reused is None:
            job.reused = 0
        return (yield from _parallel_fresh(job))
    if job.reused is None:
        job.reused = control.durable_bytes(record)
    table = SegmentTable(list(record.segments), record.total, job.policy.min_segment_bytes, tails)
    fd = PartFile((yield Blocking(files.reopen)))
    try:
        return (yield from _run_workers(_Shared(job, table, fd, record), first=None))
    finally:
        yield Blocking(fd.close)


def _parallel_fresh(job: DownloadJob) -> Program[DownloadResult]:
    """The first request (``bytes=0-``) learns the size and version; its body becomes the
    first segment, which the other connections split."""
    spec = RangeSpec.open_ended(0)
    response, answer = yield from ask(job, spec, {"Range": "bytes=0-"}, None, 0, None)
    if isinstance(answer, Restart) or (isinstance(answer, Resume) and answer.total is None):
        # Range ignored (200) or size unknown: one connection streams it all.
        return (yield from _stream_whole(job, response, answer))
    if isinstance(answer, Complete):  # an empty file
        yield Close(response)
        record = new_record(job, Identity(), 0, 0, b"")
        fd = yield from begin(job, record, 0)
        try:
            return (yield from finish(job, fd, 0, record, response.headers, whole=False))
        finally:
            yield Blocking(fd.close)
    if not isinstance(answer, Resume):
        yield Close(response)
        raise PartialDownloadError(f"could not start: {answer}", bytes_done=0, total=None)
    total = answer.total
    assert total is not None
    record = new_record(job, answer.identity, total, 0, b"")
    fd = yield from begin(job, record, total)
    try:
        table = SegmentTable([], total, job.policy.min_segment_bytes, {})
        shared = _Shared(job, table, fd, record)
        with shared.lock:
            first_slot = table.claim()
        return (yield from _run_workers(shared, first=(response, first_slot)))
    finally:
        yield Blocking(fd.close)


def _stream_whole(
    job: DownloadJob, response: Any, answer: Restart | Resume, *, beside: bool = True
) -> Program[DownloadResult]:
    """Write the file from byte 0 with one connection: ``response`` carries all of it (a 200,
    or a ``bytes=0-`` 206 of unknown size). ``.part`` restarts for its version first.
    ``beside``: as for ``receive``."""
    total = answer.length if isinstance(answer, Restart) else None
    record = new_record(job, answer.identity, total, 0, b"")
    try:
        fd = yield from begin(job, record, total)
    except BaseException:
        yield Close(response)  # a .part that cannot be started still closes the answer
        raise
    try:
        end = total if isinstance(answer, Restart) else answer.range.stop
        # Hashed as it arrives (in order from byte 0): no pass over the disk at the end.
        algorithms = algorithms_for(response.headers, whole=isinstance(answer, Restart))
        yield Blocking(fd.start_hashing, (algorithms, 0))
        offset = yield from receive(job, response, fd, record, 0, end, bytearray(), beside=beside)
        yield Close(response)
        if end is not None and offset < end:
            raise PartialDownloadError(
                f"connection closed after {offset} of {end} bytes",
                bytes_done=claimable(offset, record),
                total=total,
            )
        return (
            yield from finish(
                job,
                fd,
                total if total is not None else offset,
                record,
                response.headers,
                whole=isinstance(answer, Restart),
            )
        )
    finally:
        yield Blocking(fd.close)


class _Restarted(Exception):
    """A segment's resume was answered 200: the whole file follows in ``response`` (a new
    version, or Range no longer honoured)."""

    def __init__(self, response: Any, answer: Restart) -> None:
        super().__init__(answer.changed or "the server ignored Range")
        self.response = response
        self.answer = answer


def _take_over(shared: _Shared, restart: _Restarted) -> Program[None]:
    """The 200 a segment's resume received becomes the download: the worker that received it
    writes the file from byte 0, in this attempt, once nothing else touches ``.part``.

    Judgement call: the body already flowing is the whole new file, so cutting it to split the
    file again would throw away the transfer this exists to keep; and a server that answered a
    ranged request with 200 may go on ignoring Range, when each re-split connection would cost
    another whole transfer. So one connection finishes it (aria2 instead aborts with
    CANNOT_RESUME, curl stops with a range error). The response stays with this worker (a
    runner closes a program's responses when it ends). First the old segments are sealed (no
    checkpoint of them is written from now on) and every other worker and the prefix hasher
    are waited for, so old and new bytes never mix; then ``files.begin`` makes the new
    version's record (cursor 0) durable before it truncates. A second 200 is closed unread."""
    job = shared.job
    with shared.lock:
        taken = shared.restart is not None
        if not taken:
            shared.restart = restart
    if taken:
        yield Close(restart.response)
        return
    try:
        yield Blocking(shared.seal)
        while not shared.quiet():
            yield Sleep(0.01)  # the others notice the stop at their next chunk or answer
        log.info("parallel download of %s restarts from byte 0 with a 200 (%s)", job.url, restart)
        job.reused = 0
        # In a worker, a spawned program: its checkpoints run in line, never Spawn + Join.
        shared.restarted = yield from _stream_whole(
            job, restart.response, restart.answer, beside=False
        )
    except Exception as exc:  # the response, if still open, is closed as this program ends
        shared.restart_error = exc


def _run_workers(shared: _Shared, first: tuple[Any, int | None] | None) -> Program[DownloadResult]:
    job = shared.job
    count = initial_workers(job.connections, shared.table.total, shared.table.min_segment)
    prefix = _PrefixHasher()
    shared.hashing = True
    hashing = yield Spawn(prefix.follow(shared))
    handles = []
    if first is not None:
        count -= 1
    planned: list[tuple[Any, int | None] | None] = [first] if first is not None else []
    planned += [None] * max(count, 0 if first is not None else 1)
    shared.workers = len(planned)  # before any starts: a take-over waits for them all
    for each in planned:
        handles.append((yield Spawn(_worker(shared, each))))
    try:
        yield Join(handles)  # workers raise only interruptions: errors are in shared.errors
        prefix.stop = True
        yield Join([hashing])
    except BaseException as exc:
        prefix.stop = True
        if not isinstance(exc, GeneratorExit):
            yield from _halt(shared)
        raise
    if shared.restart is not None:
        # A 200 restarted the file (_take_over): its outcome is the attempt's; the old
        # segments' table and record are never looked at or written again.
        if shared.restart_error is not None:
            raise shared.restart_error
        assert shared.restarted is not None
        return shared.restarted
    shared.fd.adopt_hash(prefix.hashers, prefix.hashed)
    changed = [e for e in shared.errors if isinstance(e, RemoteChangedError)]
    if changed:
        # Segments of two versions must never be joined: drop all progress, then retry.
        yield Blocking(job.files.discard)
        raise PartialDownloadError(
            f"remote file changed during a parallel download, progress discarded: {changed[0]}",
            bytes_done=0,
            total=None,
        ) from changed[0]
    yield Blocking(shared.checkpoint)
    if not shared.table.done:
        error = shared.errors[0] if shared.errors else None
        if error is not None and not is_retryable(error):
            raise error
        done = control.resumable_bytes(shared.record)
        raise PartialDownloadError(
            f"parallel download stopped after {done} durable bytes: {error}",
            bytes_done=done,
            total=shared.table.total,
        ) from error
    return (yield from finish(job, shared.fd, shared.table.total, shared.record, {}, whole=False))


def _halt(shared: _Shared) -> Program[None]:
    try:
        yield Blocking(shared.halt)
    except Exception as exc:  # the interruption is what the caller must see, not this
        log.warning("could not save the progress of %s: %s", shared.job.url, exc)


def _next_or_done(
    shared: _Shared, slot: int, body: BodyReader, into: memoryview
) -> Program[bytes | None]:
    """The next chunk of a segment's body (received into ``into`` where the client can); None
    at its end, or when the connection went after every byte of the segment arrived (before a
    chunked body's last chunk, say)."""
    try:
        return (yield from body.next_chunk(into))
    except NetworkError:
        with shared.lock:
            cursor, stop = shared.table.span(slot)
        if cursor >= stop:
            return None
        raise


class _PrefixHasher:
    """Hashes the file's contiguous prefix while parallel segments arrive (from the page cache),
    so that the SHA-256 is ready, or nearly, when the last segment lands."""

    def __init__(self) -> None:
        self.hashers = new_hashers(("sha256",))
        self.hashed = 0
        self.stop = False

    def follow(self, shared: _Shared) -> Program[None]:
        try:
            yield from self._follow(shared)
        finally:
            with shared.lock:
                shared.hashing = False

    def _follow(self, shared: _Shared) -> Program[None]:
        while True:
            with shared.lock:
                end = shared.table.contiguous_prefix()
                restarting = shared.restart is not None
            if restarting:
                return  # the file is about to be truncated: what was hashed is of no use
            if end > self.hashed:
                yield Blocking(hash_into, (self.hashers, shared.fd.fd, end, self.hashed))
                self.hashed = end
            elif self.stop or shared.errors or shared.stopped:
                return
            else:
                yield Sleep(0.02)


def _worker(shared: _Shared, first: tuple[Any, int | None] | None) -> Program[None]:
    """Claim segments until none is left; errors are recorded for the coordinator, so that it
    waits for every worker before touching the file again."""
    try:
        restart = yield from _claim_and_fill(shared, first)
        if restart is not None:
            yield from _take_over(shared, restart)
    finally:
        with shared.lock:
            shared.workers -= 1


def _claim_and_fill(
    shared: _Shared, first: tuple[Any, int | None] | None
) -> Program[_Restarted | None]:
    """The worker's loop: segments until none is left, or a 200 that restarts the file."""
    job = shared.job
    failures = 0
    while not shared.errors and not shared.stopped:
        response: Any = None
        if first is not None:
            response, slot = first
            first = None
        else:
            with shared.lock:
                slot = shared.table.claim()
        if slot is None:
            if response is not None:
                yield Close(response)
            return None
        try:
            skip = 0
            if response is None:
                response, skip = yield from _open_segment(shared, slot)
            yield from _fill_segment(shared, slot, response, skip)
            failures = 0
        except _Restarted as restart:
            return restart
        except Exception as exc:
            # What asking again cannot change (an untrusted certificate, a redirect not to
            # follow, a 404, a changed remote) is the coordinator's at once.
            failures += 1
            delay = None
            if is_retryable(exc):
                delay = job.retries.delay(failures, getattr(exc, "retry_after", None))
            if delay is None:
                shared.errors.append(exc)
            else:
                yield Sleep(delay)
        except BaseException:
            # An interruption (Ctrl-C in a progress callback, a cancellation): the others stop
            # writing too, and the coordinator saves the progress before it unwinds.
            shared.stop()
            raise
        finally:
            with shared.lock:
                shared.table.release(slot)
    return None


def _open_segment(shared: _Shared, slot: int) -> Program[tuple[Any, int]]:
    """The response for the rest of ``slot``'s segment, and how many body bytes before its
    cursor to drop (a widened 206)."""
    with shared.lock:
        cursor, stop = shared.table.span(slot)
    record = shared.record
    ranged = {"Range": f"bytes={cursor}-{stop - 1}"}
    validator = identity_of(record).if_range_value()
    if validator is not None:
        ranged["If-Range"] = validator
    spec = RangeSpec.closed(cursor, stop)
    response, answer = yield from ask(shared.job, spec, ranged, identity_of(record), cursor, record)
    if isinstance(answer, Resume) and answer.range.start == cursor:
        return response, answer.skip
    if isinstance(answer, Restart):
        raise _Restarted(response, answer)
    yield Close(response)
    # Anything else (a 206 or 412 of another version, a 416): the segments cannot be trusted to
    # fit together any more, and this answer carries nothing to restart with.
    raise RemoteChangedError(f"parallel segment request answered with {type(answer).__name__}")


def _fill_segment(shared: _Shared, slot: int, response: Any, skip: int = 0) -> Program[None]:
    job = shared.job
    body = BodyReader(response, job.timeout, (yield from on_the_clock(job)))
    # The segment's own buffer: each chunk is written (pwrite, done when write returns) before
    # the next is received into it, and the prefix hasher reads the file, never the buffer.
    into = memoryview(bytearray(RECEIVE_BUFFER_BYTES))
    try:
        while (chunk := (yield from _next_or_done(shared, slot, body, into))) is not None:
            if skip:
                dropped = min(skip, len(chunk))
                chunk, skip = chunk[dropped:], skip - dropped
                if not chunk:
                    continue
            written = yield Blocking(shared.write, (slot, chunk))
            if not written:
                break  # the attempt is stopping, or another connection took the rest
            job.transferred += written
            if job.on_progress is not None:
                job.on_progress(shared.table.durable_candidates, shared.table.total)
            if shared.checkpoint_due():
                yield Blocking(shared.checkpoint)
            if written < len(chunk):
                break
    except Exception:
        yield Close(response)
        raise
    yield Close(response)
    with shared.lock:
        cursor, stop = shared.table.span(slot)
    if cursor < stop and not shared.errors and not shared.stopped:
        # The body ended early but cleanly: a cut connection, to be resumed.
        raise NetworkError(f"connection closed at {cursor}, segment ends at {stop}")
