"""Download decisions: what a resume may trust, how it asks (§13.1.5 If-Range), what each answer means."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import ClassVar

from rangeio._core.control import (
    MAX_OFFSET,
    ControlRecord,
    Segment,
    durable_bytes,
    is_complete,
    tail_digest,
    tail_range,
)
from rangeio._core.headers import RangeSpec
from rangeio._core.identity import ETag, Identity
from rangeio._core.planner import MiB
from rangeio._core.ranges import ByteRange
from rangeio._core.validate import (
    Changed,
    Failure,
    Full,
    Multipart,
    Partial,
    Redirect,
    Unsatisfiable,
    Verdict,
    judge,
)
from rangeio.errors import ProtocolError, RangeioError


@dataclass(frozen=True, slots=True)
class DownloadPolicy:
    """How often progress is made durable, and how work is split.

    - ``checkpoint_bytes`` 8 MiB / ``checkpoint_seconds`` 1 s: a crash re-fetches at most this
      much; each checkpoint costs an fdatasync and a small atomic write, so not more often.
    - ``min_segment_bytes`` 4 MiB: below that a parallel connection costs more in round trips
      and checkpoints than it gains (aria2's default split size is 20 MiB; ours is smaller
      because checkpoints are per segment, not per piece).
    """

    checkpoint_bytes: int = 8 * MiB
    checkpoint_seconds: float = 1.0
    min_segment_bytes: int = 4 * MiB

    def checkpoint_due(self, bytes_since: int, seconds_since: float) -> bool:
        return bytes_since >= self.checkpoint_bytes or (
            bytes_since > 0 and seconds_since >= self.checkpoint_seconds
        )


# -- what is on disk -------------------------------------------------------------------------


class Start(Enum):
    """What a new attempt starts from, as the disk says (``Assessment.kind``)."""

    FIRST = "first"  # nothing on disk: a first attempt, with nothing to discard or to report
    FRESH = "fresh"  # progress on disk that cannot be trusted: discarded, and ``reason`` says why
    RESUME = "resume"  # the record and the tails it names verified: go on from there
    DONE = "done"  # the destination is there and no ``.part``: only finalising is left


@dataclass(frozen=True, slots=True)
class Assessment:
    """What a new attempt starts from. ``record`` is None for a fresh start; ``reason`` says why
    old progress was discarded, or why the download counts as done: for the log only, never
    branched on (``kind`` is)."""

    kind: Start
    record: ControlRecord | None
    reason: str = ""

    @property
    def starts_over(self) -> bool:
        """Whether the attempt writes from byte 0 (a first attempt, or progress discarded)."""
        return self.kind is Start.FIRST or self.kind is Start.FRESH


def assess(
    url: str | Sequence[str],
    record: ControlRecord | None,
    record_error: str | None,
    part_size: int | None,
    dest_exists: bool,
    tails: Mapping[int, bytes],
) -> Assessment:
    """Decide from the facts on disk. ``tails`` maps a segment's start to the bytes of its
    ``tail_range`` as read back from ``.part`` now.

    - A finished destination with no ``.part`` is done, whatever a stale record says: the crash
      came after the rename, so finalising again is all that is left.
    - A corrupt record, a ``.part`` shorter than the record's cursors, or a tail whose hash
      differs all mean the partial data cannot be trusted: start afresh.
    - ``url`` may be the mirrors of one file (``_core/mirrors.py``): a record made through any
      of them resumes, as it names the URL whose validators it pins (the reference), and
      every other mirror is checked against those before it serves a byte. A record for a
      URL not among them starts afresh: nothing asked could confirm its version.
    """
    if dest_exists and part_size is None:
        return Assessment(Start.DONE, record, "destination already complete")
    if record_error is not None:
        return Assessment(Start.FRESH, None, f"control record unusable ({record_error})")
    if record is None:
        if part_size is None:
            return Assessment(Start.FIRST, None, "no previous progress")
        return Assessment(Start.FRESH, None, ".part without a control record")
    if record.url not in ((url,) if isinstance(url, str) else tuple(url)):
        return Assessment(Start.FRESH, None, "control record is for another URL")
    if part_size is None:
        return Assessment(Start.FRESH, None, ".part file is missing")
    highest = max((s.cursor for s in record.segments), default=0)
    if part_size < highest:
        return Assessment(Start.FRESH, None, f".part has {part_size} bytes, record says {highest}")
    for segment in record.segments:
        if segment.cursor == segment.start:
            continue
        tail = tails.get(segment.start)
        if tail is None or tail_digest(tail) != segment.tail_sha256:
            return Assessment(
                Start.FRESH, None, f"tail of segment at {segment.start} does not verify"
            )
    return Assessment(Start.RESUME, record)


def tails_to_check(record: ControlRecord) -> list[tuple[int, ByteRange]]:
    """(segment start, byte range) of every tail a resume must read back and verify."""
    return [(s.start, tail_range(s)) for s in record.segments if s.cursor > s.start]


# -- the download directory ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    """What is at one of a download's paths, as ``lstat`` (or ``fstat`` of what was opened) says,
    never following a symlink. ``kind``: "missing", "file", "symlink", "directory", "fifo" or
    "other" (a socket or a device); ``same_device``: on the directory's filesystem."""

    kind: str
    links: int = 1
    same_device: bool = True


MISSING = Entry("missing")

# The roles: the destination, and the files rangeio keeps beside it while it works.
SIDECARS = frozenset({"part", "ctrl", "lock", "temp"})


def rule_on_entry(role: str, entry: Entry) -> str:
    """What a download does with what it finds at one of its paths: "absent" (create it),
    "use", "replace" (it is not rangeio's: a sidecar is unlinked, the destination is renamed
    over, and what either pointed to is never touched) or "refuse" (UnsafePathError).

    - rangeio only ever makes one kind of sidecar: a regular file with one link, in the
      destination's directory. A symlink, FIFO, socket, device or hard-linked file in its place
      was put there by someone else; writing through it would write outside the directory (or
      block, or reach another name of the file), so it is replaced. Unlinking a name never
      changes what it linked to.
    - A directory is never removed (its contents are someone's), and a file of another
      filesystem (a bind mount) cannot be renamed over: both are refused.
    - ``dest`` is only replaced by the final rename. A symlink there is replaced, never written
      through (curl -o and aria2 instead open the path and write in place, so through a link;
      aria2 by default leaves an existing file alone and saves as ``name.1``). A FIFO, socket or
      device at ``dest`` is something the caller pointed the download at (``/dev/null``, a named
      pipe): renaming over it would destroy it, so it is refused. A hard-linked ``dest`` is only read (to see whether it is
      the finished download) and then renamed over, so it is used as is.
    """
    if role != "dest" and role not in SIDECARS:
        raise ValueError(f"unknown role {role!r}")
    if entry.kind == "missing":
        return "absent"
    if entry.kind == "directory" or not entry.same_device:
        return "refuse"
    if role == "dest":
        if entry.kind == "file":
            return "use"
        return "replace" if entry.kind == "symlink" else "refuse"
    if entry.kind == "file" and entry.links == 1:
        return "use"
    return "replace"


# -- asking ----------------------------------------------------------------------------------


def identity_of(record: ControlRecord) -> Identity:
    return Identity(ETag.parse(record.etag), record.last_modified, record.total)


def download_spec(cursor: int, stop: int | None) -> RangeSpec:
    """The Range for the bytes from ``cursor``: open-ended (``bytes=N-``) to the end of the
    file (one connection), closed up to ``stop`` for a parallel segment."""
    if stop is None:
        return RangeSpec.open_ended(cursor)
    return RangeSpec.closed(cursor, stop)


def if_range(pinned: Identity | None) -> dict[str, str]:
    """§13.1.5 If-Range for a resume of the version ``pinned`` names: a strong ETag, else a
    Last-Modified date; with it a changed file comes back whole (200) and is restarted, never
    spliced. Without either validator (or nothing pinned: a first request) none is sent, and
    the answer's validators and size are compared instead (``judge``)."""
    validator = pinned.if_range_value() if pinned is not None else None
    return {} if validator is None else {"If-Range": validator}


# -- answers ---------------------------------------------------------------------------------


class Meaning(Enum):
    """What an answer to a download request means (``Answer.meaning``), branched on instead of
    the answer's type or text."""

    RESUME = "resume"  # 206 at our cursor: append
    RESTART = "restart"  # 200: the whole file follows, written from byte 0
    COMPLETE = "complete"  # 416 saying every byte is here
    RESET = "reset"  # our progress is not of the file the server has now
    HOP = "hop"  # a redirect


class ResetCause(Enum):
    """Why progress must be discarded (``Reset.cause``); ``Reset.reason`` is the log line."""

    OTHER_VERSION = "other-version"  # a 206 or 412 of another version (no If-Range could tell)
    OTHER_VERSION_416 = "other-version-416"  # a 416 whose validators contradict the record
    SIZE_416 = "size-416"  # ``416 */L`` with L not our cursor
    BARE_416 = "bare-416"  # a 416 without Content-Range, and the record's total is not our cursor
    CONTRADICTORY_416 = "contradictory-416"  # a 416 no resume can be reconciled with


@dataclass(frozen=True, slots=True)
class Resume:
    """206 at our cursor: append ``range`` (its stop may be unknown: ``bytes a-b/*`` says b).
    ``skip`` is how many body bytes come before ``range`` (a widened answer that starts before
    our cursor): bytes we have already, dropped unwritten."""

    range: ByteRange
    total: int | None
    identity: Identity
    skip: int = 0
    meaning: ClassVar[Meaning] = Meaning.RESUME


@dataclass(frozen=True, slots=True)
class Restart:
    """200: the whole file follows; old progress must be reset durably before it is written.
    ``changed`` says why the 200 came when it answers a resume whose validators no longer
    match (If-Range failed: a new version); empty when the server merely ignored Range."""

    length: int | None
    identity: Identity
    changed: str = ""
    meaning: ClassVar[Meaning] = Meaning.RESTART


@dataclass(frozen=True, slots=True)
class Complete:
    """416 ``*/L`` with L our cursor, or a bare 416 with the record's total our cursor: every
    byte is already here (§15.5.17; see ``_unsatisfiable``)."""

    total: int
    meaning: ClassVar[Meaning] = Meaning.COMPLETE


@dataclass(frozen=True, slots=True)
class Reset:
    """Our partial data is not of the file the server has now: discard it and start again.
    ``cause`` is what the engine may branch on; ``reason`` is for the log only."""

    cause: ResetCause
    reason: str
    meaning: ClassVar[Meaning] = Meaning.RESET


@dataclass(frozen=True, slots=True)
class Hop:
    """A redirect: ``status`` (3xx) and where it points."""

    location: str
    status: int = 302
    meaning: ClassVar[Meaning] = Meaning.HOP


Answer = Resume | Restart | Complete | Reset | Hop


def read_answer(
    spec: RangeSpec | None,
    status: int,
    headers: Mapping[str, str],
    pinned: Identity | None,
    cursor: int,
    *,
    now: float,
) -> Answer:
    """Interpret a response to a download request; typed errors for what no retry can fix
    except by the caller's decision (gzip, 404, broken framing). ``judge`` rules on the
    response and ``meaning_of`` reads the verdict: the download face of `DownloadExchange`
    (`_core/download_exchange.py`), which calls the two itself (a failure or a redirect is its to act on)."""
    requested: Sequence[RangeSpec] = () if spec is None else (spec,)
    verdict = judge(requested, status, headers, pinned, now=now)
    if isinstance(verdict, Redirect):
        return Hop(verdict.location, verdict.status)
    if isinstance(verdict, Failure):
        raise verdict.error()
    return meaning_of(requested, verdict, status, headers, pinned, cursor, now=now)


def meaning_of(
    requested: Sequence[RangeSpec],
    verdict: Verdict,
    status: int,
    headers: Mapping[str, str],
    pinned: Identity | None,
    cursor: int,
    *,
    now: float,
) -> Resume | Restart | Complete | Reset:
    """What ``judge``'s verdict on an answer to a download request from ``cursor`` means
    (redirects and failures aside: the exchange follows and retries those). Raises the typed
    error of an answer no download can use (gzip, broken framing, a hole before the bytes)."""
    if status == 416 and not isinstance(verdict, Unsatisfiable):
        # A 416 that contradicts our progress (a range inside the file, a broken total): our
        # partial data cannot be reconciled with this server's view, so start again.
        return Reset(
            ResetCause.CONTRADICTORY_416,
            f"unexpected 416: {getattr(verdict, 'reason', verdict)}",
        )
    if isinstance(verdict, Partial):
        _check_size(verdict.total if verdict.total is not None else verdict.range.stop)
        got = verdict.range
        if got.start > cursor:
            # A shifted answer that starts past our cursor would leave a hole before it; the
            # file is written in order, so it is refused rather than written anywhere.
            raise ProtocolError(
                f"206 for {got} answers a request from byte {cursor}: the bytes between are missing"
            )
        # Written at the offsets its Content-Range names: what lies before our cursor is skipped.
        return Resume(
            ByteRange(cursor, got.stop), verdict.total, verdict.identity, cursor - got.start
        )
    if isinstance(verdict, Full):
        _check_size(verdict.length)
        return Restart(verdict.length, verdict.identity)
    if isinstance(verdict, Unsatisfiable):
        return _unsatisfiable(verdict.total, headers, pinned, cursor)
    if isinstance(verdict, Changed):
        if status == 200:
            return _restart_with_new_version(requested, headers, verdict.reason, now=now)
        return Reset(ResetCause.OTHER_VERSION, verdict.reason)
    if isinstance(verdict, Multipart):
        raise ProtocolError("multipart answer to a single-range download request")
    error: RangeioError = verdict.error()
    raise error


def _restart_with_new_version(
    requested: Sequence[RangeSpec], headers: Mapping[str, str], reason: str, *, now: float
) -> Restart:
    """A 200 whose validators differ from the pinned ones: the server sends the whole new
    version (what §13.1.5 If-Range asks for when the file changed). Its body is the file from
    byte 0, so it is written from byte 0 (Restart) instead of being thrown away and fetched
    again; the old bytes are reset durably first, so nothing of the two versions is spliced
    (pyhaul's graceful 200 recovery; curl stops with a range error, wget appends blindly).
    Judged again with nothing pinned, so the new version's own headers are checked as any
    first answer's are (a broken length or encoding is still refused)."""
    verdict = judge(requested, 200, headers, None, now=now)
    if isinstance(verdict, Full):
        _check_size(verdict.length)
        return Restart(verdict.length, verdict.identity, reason)
    raise verdict.error()  # unreachable: judge() refused nothing else of this 200 before


def _check_size(size: int | None) -> None:
    """Refuse a size the control record cannot hold (over 2**62 = 4 EiB, MAX_OFFSET): no
    filesystem stores such a file (ext4 stops at 16 TiB, XFS at 8 EiB), so the server is broken
    or lying, and failing at the first answer beats failing at the first checkpoint."""
    if size is not None and size > MAX_OFFSET:
        raise ProtocolError(
            f"the server announces {size} bytes; a download holds at most 2**62 bytes"
        )


def _unsatisfiable(
    total: int | None, headers: Mapping[str, str], pinned: Identity | None, cursor: int
) -> Complete | Reset:
    """What a 416 to a resume from ``cursor`` means (§15.5.17).

    - Validators on the 416 that contradict the pinned version: another file, Reset.
    - ``Content-Range: bytes */L`` with L the cursor: every byte is already here, Complete.
    - A bare 416 (no Content-Range; §15.5.17 only says a server SHOULD send one): what the
      record knows decides. Its total equal to the cursor means every byte is durable, and the
      tails verified on the way in: Complete (the length and digest checks of the finish still
      run). Anything else cannot be reconciled with our progress: Reset, with a reason the
      shell logs. Progress is thrown away only then, never merely for a missing header.
    """
    if pinned is not None:
        conflict = pinned.conflict_with(Identity.from_headers(headers, None))
        if conflict is not None:
            return Reset(ResetCause.OTHER_VERSION_416, f"416 for another version: {conflict}")
    if total is not None:
        if total == cursor:
            return Complete(total)
        return Reset(ResetCause.SIZE_416, f"server says the range is unsatisfiable (size {total})")
    known = pinned.size if pinned is not None else None
    if known is not None and known == cursor:
        return Complete(known)
    return Reset(
        ResetCause.BARE_416,
        f"416 without Content-Range to a resume at byte {cursor}, but the record's total is "
        f"{'unknown' if known is None else known}: nothing says which bytes are missing",
    )


@dataclass(frozen=True, slots=True)
class DownloadState:
    """Where a download of ``url`` to a destination stands, as the disk says: ``bytes_done``
    durable bytes (what the next call resumes from; the size once ``complete``), of ``total``
    (None: unknown yet), for the version ``etag`` / ``last_modified`` names. The one state
    object of haul and download: ``result.state`` after success, ``error.state`` after a
    failure (read back from the control record, so it is what a resume will trust)."""

    bytes_done: int
    total: int | None
    etag: str | None
    last_modified: str | None
    complete: bool = False


NOTHING_SAVED = DownloadState(0, None, None, None)


def state_of(assessment: Assessment) -> DownloadState:
    """The state an assessment of the disk implies: a resumable record's progress and
    validators, or nothing (a fresh start would reuse no byte)."""
    record = assessment.record
    if assessment.kind is not Start.RESUME or record is None:
        return NOTHING_SAVED
    return DownloadState(durable_bytes(record), record.total, record.etag, record.last_modified)


def single_segment(cursor: int, total: int | None, tail: bytes) -> Segment:
    """The segment of a one-connection download with ``cursor`` bytes durable."""
    return Segment(0, cursor, total, tail_digest(tail))


def finished(record: ControlRecord | None) -> bool:
    return record is not None and is_complete(record)
