"""Downloads as programs: haul (one request) and download (retries), crash-safe on disk."""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rangeio._core import control, digests
from rangeio._core.download import (
    NOTHING_SAVED,
    Assessment,
    Complete,
    DownloadPolicy,
    DownloadState,
    Hop,
    Reset,
    Restart,
    Resume,
    Start,
    identity_of,
    read_answer,
    resume_headers,
    segment_spec,
    single_segment,
    state_of,
)
from rangeio._core.exchange import request_to
from rangeio._core.headers import RangeSpec
from rangeio._core.identity import Identity
from rangeio._core.options import Timeout, check_verify
from rangeio._core.redirects import check_url, follow
from rangeio._core.retry import RetryPolicy, coerce_retries, is_retryable
from rangeio._core.segments import SegmentTable, initial_workers
from rangeio._disk import PartFiles, close_fd, hash_into, new_hashers, pwrite_all
from rangeio._engine.body import BodyReader, release
from rangeio._engine.ops import (
    Blocking,
    Clock,
    Close,
    Join,
    Program,
    Send,
    Sleep,
    Spawn,
    now,
    read_clock,
)
from rangeio.errors import (
    ChecksumMismatchError,
    HTTPStatusError,
    NetworkError,
    PartialDownloadError,
    ProtocolError,
    RangeioError,
    RedirectError,
    RemoteChangedError,
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
    # The runner's clock, taken by the first program that runs the job (_on_the_clock).
    clock: Clock | None = None
    started: float = 0.0

    def __post_init__(self) -> None:
        check_url(self.url)
        self.files = PartFiles(Path(self.dest))
        if self.sha256 is not None:
            self.sha256 = self.sha256.strip().lower()


# download() retries this often by default: enough to ride out a flaky link or a rolling
# restart (with backoff up to 5 s), bounded so a dead server fails in well under a minute.
DEFAULT_ATTEMPTS = 8
DOWNLOAD_RETRIES = RetryPolicy(attempts=DEFAULT_ATTEMPTS)


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
    allow_https_downgrade: bool = False,
    allow_redirects: bool = True,
    verify: Any = True,
) -> DownloadJob:
    """The job for one haul/download call, every argument checked once for both front ends
    (``verify`` only checked: the shell builds the transport from it)."""
    check_verify(verify)
    if connections < 1:
        raise ValueError("connections must be >= 1")
    return DownloadJob(
        url,
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
    )


def _on_the_clock(job: DownloadJob) -> Program[Clock]:
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


def download(job: DownloadJob) -> Program[DownloadResult]:
    """Attempts until the file is complete, resuming after every failure that allows it."""
    yield from _on_the_clock(job)
    failures = 0
    while True:
        try:
            if job.connections > 1:
                return (yield from parallel(job))
            return (yield from haul(job))
        except PartialDownloadError as exc:
            # An attempt raises what is worth another one (is_retryable, in _ask/_receive and
            # the parallel coordinator) as a PartialDownloadError; anything else it raises (a
            # 404, a TLS failure, a redirect loop, a checksum mismatch) ends the download here.
            failures += 1
            delay = job.retries.delay(failures, getattr(exc, "retry_after", None))
            if delay is None:
                raise
            log.info("download of %s interrupted (%s); retrying in %.2fs", job.url, exc, delay)
            yield Sleep(delay)


def haul(job: DownloadJob) -> Program[DownloadResult]:
    """One attempt = one HTTP request (redirect hops aside): complete the file, or raise
    PartialDownloadError with the durable progress so far."""
    yield from _on_the_clock(job)
    files = job.files
    assessment, tails = yield Blocking(files.inspect, (job.url,))
    if assessment.kind is Start.DONE:
        existing = yield from _existing(job, assessment)
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
    response, answer = yield from _ask(job, spec, ranged, pinned, cursor, record)
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
        record = _record(job, answer.identity, total, 0, b"")
        _note_unstorable(job, record)
        offset, end, tail, whole = 0, total, bytearray(), True
    else:
        assert isinstance(answer, Resume) and record is not None
        total = answer.total if answer.total is not None else record.total
        record = _record(job, identity_of(record).merged(answer.identity), total, cursor, tail)
        offset, end, whole, skip = cursor, answer.range.stop, False, answer.skip
    try:
        # Inside the try: a digest header that does not parse, or a .part that cannot be opened
        # safely, still closes the response (and the .part, once open).
        algorithms = _algorithms(response.headers, whole=whole)
        step = Blocking(files.begin, (record, total)) if whole else Blocking(files.reopen)
        opened = yield step
    except BaseException:
        yield Close(response)
        raise
    fd = _File(opened)
    try:
        yield Blocking(fd.start_hashing, (algorithms, offset))
        offset = yield from _receive(job, response, fd, record, offset, end, tail, skip)
        yield Close(response)
        final_total = total if total is not None else offset
        if end is not None and offset < end:
            raise PartialDownloadError(
                f"connection closed after {offset} of {end} bytes",
                bytes_done=_claimable(offset, record),
                total=total,
            )
        if total is not None and offset < total:
            # A 206 that stopped short of the end (a server capping its answers): the bytes are
            # durable, and the next attempt asks for the rest.
            raise PartialDownloadError(
                f"server sent bytes up to {offset} of {total}",
                bytes_done=_claimable(offset, record),
                total=total,
            )
        result = yield from _finish(job, fd, final_total, record, response.headers, whole=whole)
        return result
    finally:
        yield Blocking(fd.close)


def saved_state(files: PartFiles, url: str) -> DownloadState:
    """What the disk holds for ``url`` now, as a resume would judge it: the ``state`` of an
    error out of haul/download (run by the shell, under the destination's lock). Nothing
    readable counts as nothing saved."""
    try:
        assessment, _ = files.inspect(url)
    except (OSError, RangeioError):
        return NOTHING_SAVED
    return state_of(assessment)


def _existing(job: DownloadJob, assessment: Assessment) -> Program[DownloadResult | None]:
    """The destination is there and no ``.part`` is: the finished download (a crash after the
    rename), unless ``sha256=`` says otherwise. Then it is not returned: it is downloaded again
    and replaced only once the new file verifies (None: the caller starts afresh)."""
    size, sha = yield Blocking(job.files.finish_done)
    if job.sha256 is None or sha == job.sha256:
        if job.reused is None:
            job.reused = size  # every byte of it is reused: bytes_reused + transferred == size
        return _result(job, size, sha, assessment.record)
    log.warning(
        "%s has SHA-256 %s, expected %s: downloading it again", job.files.dest, sha, job.sha256
    )
    job.reused = 0
    return None


def _ask(
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
            raise _partial(exc, cursor, record) from exc
        at = yield from now()
        try:
            answer = read_answer(spec, response.status, response.headers, pinned, cursor, now=at)
        except HTTPStatusError as exc:
            # A status answer's small body is drained so the connection is kept (drain_budget).
            yield from release(response, job.timeout, method="GET")
            if is_retryable(exc):
                raise _partial(exc, cursor, record) from exc
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


def _receive(
    job: DownloadJob,
    response: Any,
    fd: _File,
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
    clock = yield from _on_the_clock(job)
    last_offset, last_time = offset, clock.monotonic()
    body = BodyReader(response, job.timeout, clock)
    try:
        while (chunk := (yield from body.next_chunk())) is not None:
            if skip:
                dropped = min(skip, len(chunk))
                chunk, skip = chunk[dropped:], skip - dropped
                if not chunk:
                    continue
            if end is not None and offset + len(chunk) > end:
                # Bytes past the declared length are not the file's: none of them is written.
                raise ProtocolError(f"body longer than declared: more than {end} bytes in all")
            yield Blocking(fd.write, (chunk, offset))
            offset += len(chunk)
            job.transferred += len(chunk)
            _keep_tail(tail, chunk)
            if job.on_progress is not None:
                job.on_progress(offset, record.total)
            background.raise_failure()
            now = clock.monotonic()
            due = job.policy.checkpoint_due(offset - last_offset, now - last_time)
            if due and not background.running:
                snapshot = _advance(record, offset, tail)
                if beside:
                    background.handle = yield Spawn(background.checkpoint(files, fd.fd, snapshot))
                else:
                    yield Blocking(files.checkpoint, (fd.fd, snapshot))
                last_offset, last_time = offset, now
    except NetworkError as exc:
        yield from background.wait()
        retryable = is_retryable(exc)
        complete = end is not None and offset == end and retryable
        if not complete:
            yield Blocking(files.checkpoint, (fd.fd, _advance(record, offset, tail)))
            if not retryable:
                # Our own verdict on the body (longer than declared): a resume would get the same.
                raise
            raise _partial(exc, offset, record) from exc
        # Every byte arrived, then the connection went (before a chunked body's last chunk,
        # say): the body is complete, and the download goes on to verify and finish it.
        last_offset = -1  # the final checkpoint below is still due
    except BaseException as exc:
        # Anything else that stops us (a bad body, Ctrl-C, a progress callback raising) keeps
        # the progress made; but not a failed write or sync: that must never be checkpointed.
        if not isinstance(exc, GeneratorExit):
            yield from background.wait()
        if not isinstance(exc, (OSError, GeneratorExit)):
            yield Blocking(files.checkpoint, (fd.fd, _advance(record, offset, tail)))
        raise
    yield from background.wait()
    background.raise_failure()
    if offset > last_offset:
        yield Blocking(files.checkpoint, (fd.fd, _advance(record, offset, tail)))
    return offset


class _Background:
    """The checkpoint running beside the transfer, if any, and how it ended."""

    def __init__(self) -> None:
        self.running = False
        self.handle: Any = None
        self.failure: BaseException | None = None

    def checkpoint(self, files: PartFiles, fd: int, record: control.ControlRecord) -> Program[None]:
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
    algorithms = _algorithms(headers, whole=whole)
    hashes = yield Blocking(files.finish, (fd.fd, total, algorithms, fd.hashes(total)))
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


def _algorithms(headers: Mapping[str, str], *, whole: bool) -> tuple[str, ...]:
    """SHA-256 always (the result reports it), plus whatever digest headers announce."""
    expected = digests.from_headers(headers, body_is_representation=whole)
    return tuple(sorted({"sha256", *(e.algorithm for e in expected)}))


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
    """The open ``.part``; closing twice is harmless (error paths and normal ends meet).

    For a download that arrives in order it also hashes the bytes as they are written, so the
    whole-file SHA-256 needs no second pass over the disk at the end."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._open = True
        self._hashers: dict[str, Any] | None = None
        self._hashed = 0

    def start_hashing(self, algorithms: tuple[str, ...], prefix: int) -> None:
        """Hash bytes [0, prefix) already on disk; later in-order writes continue the hash."""
        hashers = new_hashers(algorithms)
        hash_into(hashers, self.fd, prefix)
        self._hashers, self._hashed = hashers, prefix

    def write(self, chunk: bytes, offset: int) -> None:
        pwrite_all(self.fd, chunk, offset)
        if self._hashers is None:
            return
        if offset != self._hashed:
            self._hashers = None  # out of order: hash the file at the end instead
            return
        for hasher in self._hashers.values():
            hasher.update(chunk)
        self._hashed += len(chunk)

    def adopt_hash(self, hashers: dict[str, Any], hashed: int) -> None:
        """Hashes of bytes [0, hashed) computed elsewhere (the parallel prefix hasher)."""
        self._hashers, self._hashed = hashers, hashed

    def hashes(self, total: int) -> dict[str, str] | None:
        if self._hashers is None or self._hashed != total:
            return None
        return {name: hasher.hexdigest() for name, hasher in self._hashers.items()}

    def close(self) -> None:
        if self._open:
            self._open = False
            close_fd(self.fd)


def _keep_tail(tail: bytearray, chunk: bytes) -> None:
    tail += chunk[-control.TAIL_BYTES :]
    if len(tail) > control.TAIL_BYTES:
        del tail[: len(tail) - control.TAIL_BYTES]


def _begin(job: DownloadJob, record: control.ControlRecord, total: int | None) -> Program[_File]:
    """Start ``.part`` afresh for ``record``, saying once what of it cannot be stored."""
    _note_unstorable(job, record)
    return _File((yield Blocking(job.files.begin, (record, total))))


def _note_unstorable(job: DownloadJob, record: control.ControlRecord) -> None:
    """Say once (a warning) what of ``record`` the control record cannot hold, and what follows."""
    fitted = control.fit(record)
    if fitted.reason:
        consequence = "" if fitted.record is not None else "; this download cannot resume"
        log.warning("download of %s: %s%s", job.url, fitted.reason, consequence)


def _partial(
    exc: BaseException, done: int, record: control.ControlRecord | None
) -> PartialDownloadError:
    done = _claimable(done, record)
    error = PartialDownloadError(
        f"download interrupted after {done} durable bytes: {exc}",
        bytes_done=done,
        total=record.total if record is not None else None,
    )
    error.retry_after = getattr(exc, "retry_after", None)  # type: ignore[attr-defined]
    return error


def _claimable(done: int, record: control.ControlRecord | None) -> int:
    """The durable bytes a later attempt can resume from: none when no record may be written
    (``control.fit``), as it then starts at byte 0."""
    if record is not None and control.fit(record).record is None:
        return 0
    return done


def _elapsed(job: DownloadJob) -> float:
    assert job.clock is not None, "the job's program took the runner's clock first"
    return job.clock.monotonic() - job.started


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
        elapsed=_elapsed(job),
    )


# -- parallel segments -----------------------------------------------------------------------


class _Shared:
    """What the workers of one parallel attempt share. Its lock guards the segment table (held
    only for table updates, never across I/O); checkpoints are serialised by their own lock.

    Every write to ``.part`` goes through ``write``, so that ``halt`` can stop them all: after
    it no byte is written and no record replaced, whatever the workers still blocked on the
    network do later, and the file may be closed."""

    def __init__(
        self, job: DownloadJob, table: SegmentTable, fd: _File, record: control.ControlRecord
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
            self.job.files.checkpoint(self.fd.fd, record)
            self.record = record


def parallel(job: DownloadJob) -> Program[DownloadResult]:
    """One attempt with up to ``job.connections`` connections, each on its own segment; an
    idle connection takes half of the largest remaining segment. A server that ignores Range
    gets one connection."""
    yield from _on_the_clock(job)
    files = job.files
    assessment, tails = yield Blocking(files.inspect, (job.url,))
    if assessment.kind is Start.DONE:
        existing = yield from _existing(job, assessment)
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
    fd = _File((yield Blocking(files.reopen)))
    try:
        return (yield from _run_workers(_Shared(job, table, fd, record), first=None))
    finally:
        yield Blocking(fd.close)


def _parallel_fresh(job: DownloadJob) -> Program[DownloadResult]:
    """The first request (``bytes=0-``) learns the size and version; its body becomes the
    first segment, which the other connections split."""
    spec = RangeSpec.open_ended(0)
    response, answer = yield from _ask(job, spec, {"Range": "bytes=0-"}, None, 0, None)
    if isinstance(answer, Restart) or (isinstance(answer, Resume) and answer.total is None):
        # Range ignored (200) or size unknown: one connection streams it all.
        return (yield from _stream_whole(job, response, answer))
    if isinstance(answer, Complete):  # an empty file
        yield Close(response)
        record = _record(job, Identity(), 0, 0, b"")
        fd = yield from _begin(job, record, 0)
        try:
            return (yield from _finish(job, fd, 0, record, response.headers, whole=False))
        finally:
            yield Blocking(fd.close)
    if not isinstance(answer, Resume):
        yield Close(response)
        raise PartialDownloadError(f"could not start: {answer}", bytes_done=0, total=None)
    total = answer.total
    assert total is not None
    record = _record(job, answer.identity, total, 0, b"")
    fd = yield from _begin(job, record, total)
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
    ``beside``: as for ``_receive``."""
    total = answer.length if isinstance(answer, Restart) else None
    record = _record(job, answer.identity, total, 0, b"")
    try:
        fd = yield from _begin(job, record, total)
    except BaseException:
        yield Close(response)  # a .part that cannot be started still closes the answer
        raise
    try:
        end = total if isinstance(answer, Restart) else answer.range.stop
        offset = yield from _receive(job, response, fd, record, 0, end, bytearray(), beside=beside)
        yield Close(response)
        if end is not None and offset < end:
            raise PartialDownloadError(
                f"connection closed after {offset} of {end} bytes",
                bytes_done=_claimable(offset, record),
                total=total,
            )
        return (
            yield from _finish(
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
    return (yield from _finish(job, shared.fd, shared.table.total, shared.record, {}, whole=False))


def _halt(shared: _Shared) -> Program[None]:
    try:
        yield Blocking(shared.halt)
    except Exception as exc:  # the interruption is what the caller must see, not this
        log.warning("could not save the progress of %s: %s", shared.job.url, exc)


def _next_or_done(shared: _Shared, slot: int, body: BodyReader) -> Program[bytes | None]:
    """The next chunk of a segment's body; None at its end, or when the connection went after
    every byte of the segment arrived (before a chunked body's last chunk, say)."""
    try:
        return (yield from body.next_chunk())
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
    response, answer = yield from _ask(
        shared.job, spec, ranged, identity_of(record), cursor, record
    )
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
    body = BodyReader(response, job.timeout, (yield from _on_the_clock(job)))
    try:
        while (chunk := (yield from _next_or_done(shared, slot, body))) is not None:
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
