"""A parallel download's mirrors in the engine: each segment request's URL and pin, the first answer's check, drops.

The decisions are ``_core/mirrors.py`` MirrorSet's; this runs them for ``parallel.py``'s
workers, under the lock that guards the segment table. With one URL none of it runs.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from rangeio._core import control
from rangeio._core.digests import from_headers
from rangeio._core.download import Resume, identity_of
from rangeio._core.identity import Identity
from rangeio._core.mirrors import DropReason, Fingerprint, MirrorSet, MirrorState
from rangeio._core.retry import is_retryable
from rangeio._core.segments import SegmentTable
from rangeio._engine.download.job import DownloadJob
from rangeio._engine.ops import Clock
from rangeio.errors import HeaderParseError, RemoteChangedError

# A connection's speed is measured once it has run this long (the first chunks come from
# buffers already full, so an earlier figure says nothing of the link).
MEASURE_AFTER_SECONDS = 0.05


def mirror_set(job: DownloadJob, reference: Fingerprint) -> MirrorSet | None:
    """The mirrors of a parallel attempt, the reference first; None for a single URL."""
    if not job.mirrors:
        return None
    return MirrorSet(job.urls, job.connections, reference)


def fingerprint(answer: Resume, headers: Mapping[str, str]) -> Fingerprint:
    """What a 206 says of the file: validators, size, and the whole-file digests it carries
    (Repr-Digest, Digest; a digest header that does not parse counts as none)."""
    identity = Identity(answer.identity.etag, answer.identity.last_modified, answer.total)
    try:
        digests = tuple(from_headers(headers, body_is_representation=False))
    except HeaderParseError:
        digests = ()
    return Fingerprint(identity, digests)


def record_fingerprint(record: control.ControlRecord) -> Fingerprint:
    return Fingerprint(identity_of(record))


def target(
    lock: threading.Lock,
    mirrors: MirrorSet | None,
    mirror: int | None,
    record: control.ControlRecord,
) -> tuple[str | None, Identity]:
    """The URL a segment request of ``mirror`` goes to (None: the job's URL) and what its
    answer is judged against: the record's pin on the reference, a mirror's own validators
    once it agreed, and nothing (no If-Range) before its first answer, which ``answered``
    then checks against the reference."""
    if mirrors is None or mirror is None or mirror == 0:
        return None, identity_of(record)
    with lock:
        pinned = mirrors.pinned(mirror)
        url = mirrors.url(mirror)
    return url, pinned if pinned is not None else Identity()


def claim(table: SegmentTable, mirrors: MirrorSet | None, mirror: int | None) -> int | None:
    """A segment for a worker of ``mirror``: speed-aware between mirrors, so a slow one keeps
    only its share (``SegmentTable.claim``)."""
    if mirrors is None or mirror is None:
        return table.claim()
    slot = table.claim(mirrors.slot_speeds(), mirrors.speed(mirror))
    if slot is not None:
        mirrors.hold(slot, mirror)
    return slot


def answered(
    job: DownloadJob,
    lock: threading.Lock,
    mirrors: MirrorSet | None,
    mirror: int | None,
    answer: Resume,
    headers: Mapping[str, str],
    errors: list[BaseException],
) -> bool:
    """Whether the 206 of ``mirror`` may be written: False when it was the mirror's first
    answer and it disagrees with the reference (the mirror is dropped and logged), and for
    any answer of a mirror dropped meanwhile (a request sent before another connection's
    answer showed it disagrees). A ``tainted`` drop (a mirror that served bytes before it was
    found to disagree) ends the attempt through ``errors`` as a change: its progress is
    discarded, never spliced."""
    if mirrors is None or mirror is None:
        return True
    with lock:
        drop = mirrors.answered(mirror, fingerprint(answer, headers))
        usable = mirrors.state(mirror) is not MirrorState.DROPPED
        if drop is not None and drop.tainted:
            errors.append(RemoteChangedError(str(drop)))
    if drop is not None:
        job.note_drop(drop)
    return usable


def served(lock: threading.Lock, mirrors: MirrorSet | None, mirror: int | None) -> None:
    """A segment of ``mirror`` ended well (``MirrorSet.served``)."""
    if mirrors is not None and mirror is not None:
        with lock:
            mirrors.served(mirror)


def refused(
    job: DownloadJob,
    lock: threading.Lock,
    mirrors: MirrorSet | None,
    mirror: int | None,
    error: BaseException,
    *,
    whole_file: bool = False,
    changed: str = "",
) -> bool:
    """Whether ``error`` from ``mirror``'s request is the mirror's alone, so the worker goes on
    (the mirror was dropped, or is retried later) instead of the download failing:

    - a 200 (``whole_file``) or another version (RemoteChangedError) from a mirror other than
      the reference drops it: its answer is never spliced in, and the reference still pins
      the file (the reference's own 200 restarts the file, its change ends the attempt, as
      for a single URL);
    - any other failure counts towards dropping the mirror (``MirrorSet.failed``).
    - a failure of a mirror dropped meanwhile is its own: the worker moves on.
    False: the failure is handled as a single-URL download handles it."""
    if mirrors is None or mirror is None:
        return False
    with lock:
        if mirrors.state(mirror) is MirrorState.DROPPED:
            return True
        if whole_file or isinstance(error, RemoteChangedError):
            if mirror == 0:
                return False
            reason = DropReason.CHANGED if changed or not whole_file else DropReason.NO_RANGES
            detail = changed or str(error) or "answered a range request with the whole file"
            drop = mirrors.drop(mirror, reason, detail)
        else:
            drop = mirrors.failed(mirror, str(error), retryable=is_retryable(error))
    if drop is None:
        return False
    job.note_drop(drop)
    return True


class Pace:
    """Measures one segment response's speed for the mirror it came from."""

    def __init__(
        self,
        clock: Clock,
        lock: threading.Lock,
        mirrors: MirrorSet | None,
        mirror: int | None,
        worker: object,
    ) -> None:
        self._clock = clock
        self._lock = lock
        self._mirrors = mirrors
        self._mirror = mirror
        self._worker = id(worker)
        self._started = clock.monotonic()
        self._bytes = 0

    def add(self, count: int) -> None:
        if self._mirrors is None or self._mirror is None:
            return
        self._bytes += count
        elapsed = self._clock.monotonic() - self._started
        if elapsed >= MEASURE_AFTER_SECONDS:
            with self._lock:
                self._mirrors.note_rate(self._mirror, self._worker, self._bytes / elapsed)


__all__ = [
    "Pace",
    "answered",
    "claim",
    "fingerprint",
    "mirror_set",
    "record_fingerprint",
    "refused",
    "served",
    "target",
]
