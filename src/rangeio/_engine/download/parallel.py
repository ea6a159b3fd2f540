"""Parallel segments: workers on their own segments, work stealing; "auto" adds workers while they pay."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from rangeio._core import control
from rangeio._core.download import (
    Assessment,
    Complete,
    Restart,
    Resume,
    Start,
)
from rangeio._core.download_exchange import DownloadExchange
from rangeio._core.identity import Identity
from rangeio._core.mirrors import Fingerprint, MirrorSet
from rangeio._core.retry import is_retryable
from rangeio._core.scaling import Scaler, takes_ranges
from rangeio._core.segments import SegmentTable, initial_workers
from rangeio._disk import PartFile, hash_into, new_hashers, pwrite_all
from rangeio._engine.download import mirrored
from rangeio._engine.download.finish import algorithms_for, finish
from rangeio._engine.download.job import (
    DownloadJob,
    DownloadResult,
    already_done,
    begin,
    new_record,
    on_the_clock,
    partial_error,
    progress_discarded,
    request_counter,
)
from rangeio._engine.download.single import Writer, haul, new_exchange
from rangeio._engine.drive import Answered, drive
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
    RangeioError,
    RemoteChangedError,
)

log = logging.getLogger("rangeio.download")


class _Connection:
    """One worker's connection, as the coordinator counts it for connections="auto"."""

    __slots__ = ("delivering", "retired")

    def __init__(self) -> None:
        self.delivering = False
        self.retired = False


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
        self.delivering = 0  # of those, the ones whose connection has received body bytes
        self.retiring = 0  # workers asked to stop ("auto" undoing a step that did not pay)
        self.hashing = False  # the prefix hasher has not ended
        self.restart: _Restarted | None = None  # a 200 a worker took over (_take_over)
        self.restarted: DownloadResult | None = None
        self.restart_error: BaseException | None = None
        self.mirrors: MirrorSet | None = None  # the mirrors of a mirrored download (mirrored.py)
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

    def add_worker(self) -> bool:
        """Count one more worker before it is spawned; False once the attempt is stopping (a
        take-over waits for every counted worker, so none may be added after it sealed)."""
        with self.lock:
            if self.stopped or self.errors or self.restart is not None:
                return False
            self.workers += 1
            self.job.peak_connections = max(self.job.peak_connections, self.workers)
            return True

    def delivers(self, me: _Connection) -> None:
        """``me``'s connection received its first body bytes."""
        if not me.delivering:
            with self.lock:
                me.delivering = True
                self.delivering += 1

    def retire(self, me: _Connection) -> bool:
        """Whether ``me`` is one of the workers asked to stop (it then stops at once, leaving
        the rest of its segment to the others)."""
        with self.lock:
            if self.retiring <= 0:
                return False
            self.retiring -= 1
            me.retired = True
            return True

    def ended(self, me: _Connection) -> None:
        with self.lock:
            self.workers -= 1
            if me.delivering:
                self.delivering -= 1

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
    assessment, tails = yield Blocking(files.inspect, (job.urls,))
    if assessment.record is not None and assessment.kind is Start.RESUME:
        job.make_reference(assessment.record.url)  # a mirrored resume: its record's pin
    if assessment.kind is Start.DONE:
        existing = yield from already_done(job, assessment)
        if existing is not None:
            return existing
        assessment = Assessment(Start.FRESH, None, "the destination does not match sha256=")
    record = assessment.record
    if job.adaptive and not assessment.starts_over and _one_connection_resumes(job, record):
        return (yield from haul(job, one_request=False))
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
        shared = _Shared(job, table, fd, record)
        shared.mirrors = mirrored.mirror_set(job, mirrored.record_fingerprint(record))
        return (yield from _run_workers(shared, first=None))
    finally:
        yield Blocking(fd.close)


def _one_connection_resumes(job: DownloadJob, record: control.ControlRecord | None) -> bool:
    """Whether "auto" resumes ``record`` as haul does: one connection's record (one segment)
    of unknown size, or with too little left to split. So a small file goes on exactly as
    with ``connections=1``, and a record of unknown size is resumed, not started over."""
    if record is None or len(record.segments) != 1:
        return False
    if record.total is None:
        return True
    left = record.total - record.segments[0].cursor
    return initial_workers(job.connections, left, job.policy.min_segment_bytes) <= 1


def _parallel_fresh(job: DownloadJob) -> Program[DownloadResult]:
    """The first request learns the size and version; its body becomes the first segment,
    which the other connections split. With a count given it asks ``bytes=0-`` (a 206 says
    Range is honoured); "auto" asks for the whole file as haul does (so that a file it keeps
    on one connection is fetched exactly as with ``connections=1``), and splits a 200 whose
    server says it takes ranges (`_SegmentSink.opened` accepts that one 200)."""
    exchange = new_exchange(job, job.url, 0, None, None, plain=job.adaptive)
    try:
        answered = yield from _ask(job, exchange)
    except RangeioError as exc:
        if not job.mirrors:
            raise
        # Mirrors: the next one is asked first in the next attempt (this one goes last, or
        # away for good when no retry can fix its failure).
        log.warning("mirror %s could not start the download: %s", job.url, exc)
        job.next_reference(forget=not is_retryable(exc))
        raise progress_discarded(str(exc)) from exc
    answer = exchange.answer
    if answered is None:
        if isinstance(answer, Complete):  # an empty file
            record = new_record(job, Identity(), 0, 0, b"")
            fd = yield from begin(job, record, 0)
            try:
                return (yield from finish(job, fd, 0, record, exchange.headers, whole=False))
            finally:
                yield Blocking(fd.close)
        raise progress_discarded(f"could not start: {answer}")
    if isinstance(answer, Restart) and _splits(job, answer.length, exchange.headers):
        assert answer.length is not None and not job.mirrors  # "auto" is one URL's
        return (
            yield from _split_first(
                job, exchange, answered, answer.identity, answer.length, None, whole=True
            )
        )
    if isinstance(answer, Restart) or (isinstance(answer, Resume) and answer.total is None):
        # Range ignored (200), size unknown, or ("auto") a file too small to split: one
        # connection streams it all.
        if job.mirrors:
            log.warning("%s sends no ranges of a known size: its mirrors go unused", job.url)
        return (yield from _stream_whole(job, exchange, answered))
    assert isinstance(answer, Resume) and answer.total is not None
    reference = mirrored.fingerprint(answer, exchange.headers)
    return (
        yield from _split_first(
            job, exchange, answered, answer.identity, answer.total, reference, whole=False
        )
    )


def _splits(job: DownloadJob, length: int | None, headers: Mapping[str, str]) -> bool:
    """Whether "auto" splits a whole-file 200: a known length, worth two segments or more,
    from a server that says it takes ranges."""
    if not job.adaptive or length is None or not takes_ranges(headers):
        return False
    return initial_workers(job.connections, length, job.policy.min_segment_bytes) > 1


def _split_first(
    job: DownloadJob,
    exchange: DownloadExchange,
    answered: Answered,
    identity: Identity,
    total: int,
    reference: Fingerprint | None,
    *,
    whole: bool,
) -> Program[DownloadResult]:
    """``answered`` (a 206 from byte 0, or "auto"'s whole 200) is the first segment of
    ``total`` bytes; its digest headers are checked once the file is complete (``whole``: as
    a 200's). ``reference``: what the mirrors must agree with (a 206's fingerprint)."""
    record = new_record(job, identity, total, 0, b"")
    try:
        fd = yield from begin(job, record, total)
    except BaseException:
        yield Close(answered.response)  # a .part that cannot be started still closes the answer
        raise
    try:
        table = SegmentTable([], total, job.policy.min_segment_bytes, {})
        shared = _Shared(job, table, fd, record)
        if reference is not None:
            shared.mirrors = mirrored.mirror_set(job, reference)
        with shared.lock:
            first_slot = table.claim()
        digests = _Digests(exchange.headers, whole)
        first = ((exchange, answered), first_slot)
        return (yield from _run_workers(shared, first=first, digests=digests))
    finally:
        yield Blocking(fd.close)


class _Digests:
    """The digest headers of a download's first answer, checked once the file is complete."""

    def __init__(self, headers: Mapping[str, str], whole: bool) -> None:
        self.headers = dict(headers)
        self.whole = whole
        self.algorithms = algorithms_for(headers, whole=whole)


def _ask(job: DownloadJob, exchange: DownloadExchange) -> Program[Answered | None]:
    """Run ``exchange`` up to its first answer with a body (left unread, returned), or to its
    end (Complete, Reset); what asking again may fix the exchange has retried already."""
    try:
        return (yield from drive(exchange, job.timeout, request_counter(job), stop_at=_any_body))
    except NetworkError as exc:
        if is_retryable(exc):
            raise partial_error(exc, 0, None) from exc
        raise


def _any_body(exchange: DownloadExchange) -> bool:
    return True


def _is_restart(exchange: DownloadExchange) -> bool:
    return isinstance(exchange.answer, Restart)


def _stream_whole(
    job: DownloadJob, exchange: DownloadExchange, answered: Answered, *, beside: bool = True
) -> Program[DownloadResult]:
    """Write the file from byte 0 with one connection: ``answered`` carries all of it (a 200,
    or a ``bytes=0-`` 206 of unknown size), and ``exchange`` resumes it if it is cut; ``.part``
    restarts for its version first (`single.Writer`). ``beside``: as for ``Writer``."""
    writer = Writer(job, None, 0, bytearray(), beside=beside)
    driving = drive(exchange, job.timeout, writer.count, sink=writer, answered=answered)
    return (yield from writer.finish_after(exchange, driving))


class _Restarted(Exception):
    """A segment's resume was answered 200: the whole file follows in ``answered`` (a new
    version, or Range no longer honoured), unread, still ``exchange``'s."""

    def __init__(self, exchange: DownloadExchange, answered: Answered) -> None:
        answer = exchange.answer
        assert isinstance(answer, Restart)
        super().__init__(answer.changed or "the server ignored Range")
        self.changed = answer.changed
        self.exchange = exchange
        self.answered = answered


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
        yield Close(restart.answered.response)
        return
    try:
        yield Blocking(shared.seal)
        while not shared.quiet():
            yield Sleep(0.01)  # the others notice the stop at their next chunk or answer
        log.info("parallel download of %s restarts from byte 0 with a 200 (%s)", job.url, restart)
        job.reused = 0
        # In a worker, a spawned program: its checkpoints run in line, never Spawn + Join.
        shared.restarted = yield from _stream_whole(
            job, restart.exchange, restart.answered, beside=False
        )
    except Exception as exc:  # the response, if still open, is closed as this program ends
        shared.restart_error = exc


def _run_workers(
    shared: _Shared, first: tuple[Any, int | None] | None, digests: _Digests | None = None
) -> Program[DownloadResult]:
    job = shared.job
    limit = initial_workers(job.all_connections, shared.table.total, shared.table.min_segment)
    # "auto" opens one and lets the Scaler add more; a count given is opened at once.
    count = 1 if job.adaptive else limit
    prefix = _PrefixHasher(digests.algorithms if digests is not None else ("sha256",))
    shared.hashing = True
    hashing = yield Spawn(prefix.follow(shared))
    handles = []
    if first is not None:
        count -= 1
    planned: list[tuple[Any, int | None] | None] = [first] if first is not None else []
    planned += [None] * max(count, 0 if first is not None else 1)
    shared.workers = len(planned)  # before any starts: a take-over waits for them all
    job.peak_connections = max(job.peak_connections, shared.workers)
    for each in planned:
        handles.append((yield Spawn(_worker(shared, each))))
    try:
        if job.adaptive:
            yield from _follow(shared, handles, limit)
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
        job.reused = 0  # what the attempt started from is gone: nothing of it is reused
        raise progress_discarded(
            f"remote file changed during a parallel download, progress discarded: {changed[0]}"
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
    headers, whole = (digests.headers, digests.whole) if digests is not None else ({}, False)
    return (
        yield from finish(job, shared.fd, shared.table.total, shared.record, headers, whole=whole)
    )


def _follow(shared: _Shared, handles: list[Any], limit: int) -> Program[None]:
    """The coordinator of a connections="auto" download while the workers run, until they
    have all ended or the attempt is ending. It makes the checkpoints (beside the transfers,
    as haul does: no worker's socket waits for an fdatasync, so one connection is as fast as
    haul's), samples the bytes received and opens or retires connections as the Scaler says
    (`_core/scaling.py`); new workers claim segments as any idle one does (work stealing).
    With a count given the coordinator only Joins and the workers checkpoint in line, as
    before "auto" (moving those too is a change of its own: tests/test_download.py's nginx
    test counts on the first worker's pauses to let the others steal from a 3 MB file). This
    runs in the coordinator, the program the runner was handed, never in a spawned one: it
    may Join (`_engine/ops.py`)."""
    job = shared.job
    policy = job.policy.scaling
    scaler = Scaler(policy, limit=limit)
    clock = yield from on_the_clock(job)
    while True:
        yield Sleep(policy.sample_seconds)
        with shared.lock:
            if shared.stopped or shared.restart:
                return  # halt() or a take-over: the segments' checkpoints are theirs now
            failed = bool(shared.errors)  # no more connections, but checkpoints till the end
            orphaned = not failed and shared.workers == 0 and shared.table.unclaimed()
            if shared.workers == 0 and not orphaned:
                return
            received = shared.table.durable_candidates
            delivering = shared.delivering
            starting = shared.workers - delivering
        if shared.checkpoint_due():
            yield Blocking(shared.checkpoint)
        if orphaned and shared.add_worker():
            # The last workers ended as another was retired: its segment gets a new one
            # rather than waiting for the next attempt.
            handles.append((yield Spawn(_worker(shared, None))))
            continue
        if failed:
            scaler.stop()
        if scaler.done:
            continue
        change = scaler.observe(clock.monotonic(), received, delivering, starting)
        if change < 0:
            with shared.lock:
                shared.retiring += -change
        for _ in range(change):
            if not shared.add_worker():
                return
            handles.append((yield Spawn(_worker(shared, None))))
        if change:
            log.debug("download of %s: %+d connection(s) (%s)", job.url, change, scaler.steps)


def _halt(shared: _Shared) -> Program[None]:
    try:
        yield Blocking(shared.halt)
    except Exception as exc:  # the interruption is what the caller must see, not this
        log.warning("could not save the progress of %s: %s", shared.job.url, exc)


class _PrefixHasher:
    """Hashes the file's contiguous prefix while parallel segments arrive (from the page cache),
    so that the SHA-256 is ready, or nearly, when the last segment lands."""

    def __init__(self, algorithms: tuple[str, ...]) -> None:
        self.hashers = new_hashers(algorithms)
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
    me = _Connection()
    try:
        restart = yield from _claim_and_fill(shared, first, me)
        if restart is not None:
            yield from _take_over(shared, restart)
    finally:
        shared.ended(me)


def _claim_and_fill(
    shared: _Shared, first: tuple[Any, int | None] | None, me: _Connection
) -> Program[_Restarted | None]:
    """The worker's loop: segments until none is left, or a 200 that restarts the file (or
    until "auto" retires it)."""
    # Mirrors: seat[0] is the mirror this worker asks (the first response is the reference's);
    # the worker ends when its mirror is dropped and no other has a free connection.
    seat: list[int | None] = [None]
    if shared.mirrors is not None:
        with shared.lock:
            seat[0] = shared.mirrors.assign(None, prefer=0 if first is not None else None)
    try:
        return (yield from _claim_and_fill_on(shared, first, seat, me))
    finally:
        if shared.mirrors is not None:
            with shared.lock:
                shared.mirrors.leave(seat[0])


def _claim_and_fill_on(
    shared: _Shared, first: tuple[Any, int | None] | None, seat: list[int | None], me: _Connection
) -> Program[_Restarted | None]:
    """Each segment is one exchange, which retries what asking again may fix (is_retryable,
    Retry-After); what it raises is the coordinator's at once, or its mirror's alone."""
    job = shared.job
    mirror = seat[0]
    while not shared.errors and not shared.stopped and not me.retired:
        opened: tuple[DownloadExchange, Answered] | None = None
        if first is not None:
            opened, slot = first
            first = None
            if shared.mirrors is not None and slot is not None and mirror is not None:
                with shared.lock:
                    shared.mirrors.hold(slot, mirror)
        else:
            with shared.lock:
                if shared.mirrors is not None:
                    mirror = seat[0] = shared.mirrors.assign(mirror)
                slot = None
                if shared.mirrors is None or mirror is not None:
                    slot = mirrored.claim(shared.table, shared.mirrors, mirror)
        if slot is None:
            if opened is not None:
                yield Close(opened[1].response)
            return None
        try:
            if (yield from _fill_segment(shared, slot, opened, me, mirror, seat)):
                mirrored.served(shared.lock, shared.mirrors, mirror)
        except _Restarted as restart:
            changed = restart.changed
            if mirrored.refused(
                job, shared.lock, shared.mirrors, mirror, restart, whole_file=True, changed=changed
            ):
                yield Close(restart.answered.response)
                continue
            return restart
        except Exception as exc:
            if mirrored.refused(job, shared.lock, shared.mirrors, mirror, exc):
                continue
            # What asking again cannot change (an untrusted certificate, a redirect not to
            # follow, a 404, a changed remote), or what it did not fix within the retries.
            shared.errors.append(exc)
        except BaseException:
            # An interruption (Ctrl-C in a progress callback, a cancellation): the others stop
            # writing too, and the coordinator saves the progress before it unwinds.
            shared.stop()
            raise
        finally:
            with shared.lock:
                shared.table.release(slot)
                if shared.mirrors is not None:
                    shared.mirrors.unhold(slot)
    return None


def _fill_segment(
    shared: _Shared,
    slot: int,
    opened: tuple[DownloadExchange, Answered] | None,
    me: _Connection,
    mirror: int | None = None,
    seat: object = None,
) -> Program[bool]:
    """Fetch the rest of ``slot``'s segment with one exchange (a closed range with If-Range of
    the version its URL serves), or read the first request's answer (``opened``) into it.
    ``mirror``: the mirror asked (``mirrored.target``). False: the mirror was refused (its
    answer disagrees, or it failed too often), and nothing of it was written. ``me``: the
    worker's connection ("auto" may retire it: the rest of the segment goes to another)."""
    job = shared.job
    answered: Answered | None = None
    if opened is None:
        with shared.lock:
            cursor, stop = shared.table.span(slot)
        url, pinned = mirrored.target(shared.lock, shared.mirrors, mirror, shared.record)
        exchange = new_exchange(job, url or job.url, cursor, stop, pinned)
    else:
        exchange, answered = opened
    sink = _SegmentSink(shared, slot, me, mirror, seat, first=opened is not None)
    stopped = yield from drive(
        exchange, job.timeout, sink.count, sink=sink, answered=answered, stop_at=_is_restart
    )
    if stopped is not None:
        # A 200 to a segment's request (after a cut, the first one's resume too): never
        # spliced, it becomes the download (_take_over).
        raise _Restarted(exchange, stopped)
    if sink.refused:
        return False
    answer = exchange.answer
    if not isinstance(answer, Resume) and not (isinstance(answer, Restart) and sink.split_whole):
        # A 206 or 412 of another version, a 416: the segments cannot be trusted to fit
        # together any more, and this answer carries nothing to restart with.
        kind = type(answer).__name__
        raise RemoteChangedError(f"parallel segment request answered with {kind}")
    with shared.lock:
        cursor, stop = shared.table.span(slot)
    if cursor < stop and not shared.errors and not shared.stopped and not me.retired:
        raise NetworkError(f"connection closed at {cursor}, segment ends at {stop}")
    return True


class _SegmentSink:
    """A segment's sink (`_engine/drive.py` Sink): what the exchange places goes to ``.part``
    through ``_Shared.write`` (at the segment's cursor, never past its stop); once another
    connection took the rest, or the attempt stops, the exchange is told it wants no more.
    With mirrors, each answer is checked against the reference before a byte of it is written
    (``mirrored.answered``; not the first request's, which is the reference's), each failure
    the exchange retries counts towards dropping the mirror (``mirrored.refused``), and the
    speed of each response is measured (``mirrored.Pace``).

    "auto" splits the whole-file 200 its first request received (`_parallel_fresh`): that one
    Restart is accepted here as the first segment (``split_whole``), from byte 0 of a ``.part``
    begun for its version; any later 200 stops the exchange before its body (``_is_restart``)
    and becomes a take-over, so two versions are never spliced."""

    def __init__(
        self,
        shared: _Shared,
        slot: int,
        me: _Connection,
        mirror: int | None,
        seat: object,
        *,
        first: bool,
    ) -> None:
        self._shared = shared
        self._slot = slot
        self._me = me
        self.split_whole = False  # the first request's 200 is this segment's (auto)
        self._mirror = mirror
        self._seat = seat
        self._first = first
        self._pace: mirrored.Pace | None = None
        self.refused = False
        self.count = request_counter(shared.job)

    def _stop(self) -> int:
        with self._shared.lock:
            return self._shared.table.span(self._slot)[1]

    def _refuse(self, exchange: DownloadExchange) -> None:
        self.refused = True
        exchange.limit(exchange.position)  # nothing more of this mirror is wanted

    def opened(self, exchange: DownloadExchange) -> Program[None]:
        shared, job = self._shared, self._shared.job
        answer = exchange.answer
        first, self._first = self._first, False
        if isinstance(answer, Restart):
            # Only "auto"'s first request reaches here with a 200: the .part was begun for its
            # version (`_split_first`), so its bytes flow from byte 0. A later 200 was stopped
            # before its body (_is_restart) and taken over.
            if not (first and job.adaptive):
                # Not an assert: under `python -O` a 200 let through here would splice versions.
                raise RuntimeError("a 200 to a segment request must be taken over, not written")
            exchange.restarted()
            self.split_whole = True
        elif not first and isinstance(answer, Resume):
            usable = mirrored.answered(
                job,
                shared.lock,
                shared.mirrors,
                self._mirror,
                answer,
                exchange.headers,
                shared.errors,
            )
            if not usable:
                self._refuse(exchange)  # a disagreeing mirror: its bytes are never written
                return
        # The first request's answer runs to the end of the file: this segment ends sooner.
        exchange.limit(self._stop())
        clock = yield from on_the_clock(job)
        self._pace = mirrored.Pace(clock, shared.lock, shared.mirrors, self._mirror, self._seat)

    def received(self, exchange: DownloadExchange) -> Program[None]:
        shared, job = self._shared, self._shared.job
        start, data = exchange.take()
        if not data:
            return
        written = yield Blocking(shared.write, (self._slot, data))
        if not written:
            exchange.limit(start)  # the attempt is stopping, or another connection took it
            return
        shared.delivers(self._me)
        job.transferred += written
        if self._pace is not None:
            self._pace.add(written)
        if job.on_progress is not None:
            job.on_progress(shared.table.durable_candidates, shared.table.total)
        if not job.adaptive and shared.checkpoint_due():
            # A count given keeps its checkpoints here, in line, as before "auto"; with
            # "auto" the coordinator makes them (_follow), beside the transfer.
            yield Blocking(shared.checkpoint)
        if written < len(data):
            exchange.limit(start + written)
        elif shared.retiring and shared.retire(self._me):
            # "auto" took this connection back: the rest of the segment goes to another.
            exchange.limit(start + written)

    def resuming(self, exchange: DownloadExchange) -> Program[None]:
        """Before the next request: ask only for what is still this segment's, and nothing
        once the attempt is stopping, or once the failure just retried dropped the mirror."""
        shared = self._shared
        failure = exchange.failure
        if failure is not None and mirrored.refused(
            shared.job, shared.lock, shared.mirrors, self._mirror, failure
        ):
            self._refuse(exchange)
        elif shared.errors or shared.stopped:
            exchange.limit(exchange.position)
        else:
            exchange.limit(self._stop())
        return
        yield
