"""Mirrors of one file: when a mirror agrees with the reference, which mirror a worker uses, and why one is dropped.

A mirrored download pins one version through its *reference*: the first URL that answered
(``bytes=0-``), or on a resume the URL its control record names. Every other mirror is
*untried* until its first answer, which is checked against the reference (``disagreement``);
from then on each mirror is judged against its own validators, learnt from that answer,
exactly as a single-URL download judges its server (If-Range, identity), and each of its
answers is still checked against the reference. A mirror that
disagrees, changes, ignores Range or keeps failing is *dropped* with a typed reason
(``Drop``) and its segments go to the others; its bytes are never spliced in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

from rangeio._core.digests import ExpectedDigest
from rangeio._core.identity import ETag, Identity

# A mirror is dropped after this many failures in a row (each retried with the download's
# backoff first), so one reset connection is ridden out and a dead mirror costs two waits.
# aria2 moves to the next URI after --max-tries (5) on one; fewer here, because the other
# mirrors are already running and take the dropped one's bytes at once.
MIRROR_FAILURES = 2


class DropReason(Enum):
    """Why a mirror no longer serves segments."""

    SIZE = "size"  # another size than the reference, or none told
    ETAG = "etag"  # a strong ETag other than the reference's strong ETag
    DIGEST = "digest"  # a whole-file digest other than the reference's
    NO_RANGES = "no-ranges"  # answered a range request with the whole file (200)
    CHANGED = "changed"  # a later answer of another version than its first
    FAILED = "failed"  # failures in a row (MIRROR_FAILURES), or one no retry can fix


@dataclass(frozen=True, slots=True)
class Drop:
    """A dropped mirror: its URL, why, and the details for the log. ``tainted``: it had agreed
    and served bytes before it was found to disagree (a resume's reference announced its
    digests only later), so the bytes on disk cannot all be trusted: the engine discards the
    attempt's progress rather than splice them."""

    url: str
    reason: DropReason
    detail: str
    tainted: bool = False

    def __str__(self) -> str:
        return f"mirror {self.url} dropped ({self.reason.value}): {self.detail}"


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What a first answer says of the file: its identity (the size always known) and any
    whole-file digests (Repr-Digest, Digest; never Content-MD5 of a 206's part)."""

    identity: Identity
    digests: tuple[ExpectedDigest, ...] = ()


def _strong(etag: ETag | None) -> bool:
    return etag is not None and etag.quoted and not etag.weak


def disagreement(reference: Fingerprint, candidate: Fingerprint) -> tuple[DropReason, str] | None:
    """Why ``candidate`` cannot be the same bytes as ``reference``, or None when it agrees.

    What "agree" means, in order:

    1. The same size, told by both. A mirror whose size is unknown cannot be given segments
       of a known-length file.
    2. Whole-file digests both sides announce for a common algorithm decide when present:
       equal digests prove the same bytes (so ETags are then not compared), a different one
       proves other bytes. Metalink's precedent: aria2 trusts the hashes over anything else.
    3. Otherwise strong ETags, when *both* mirrors send one, must be equal. Different servers
       legitimately give the same bytes different ETags (nginx's is mtime-size, a CDN's its
       own), so a differing pair does not prove other bytes; but it cannot prove the same
       either, and the cost of a false drop is speed while the cost of a false accept is a
       spliced file. Mirrors that copy files with their metadata (rsync -t, one origin behind
       a CDN) share ETags and pass.
    4. Weak ETags (semantic equivalence only, §8.8.1), a missing ETag and Last-Modified
       (mirrors copy files at different times) are not compared: mirrors agreeing on size
       alone are accepted, aria2's rule for several URIs. ``sha256=`` then catches the rest.
    """
    ours, theirs = reference.identity, candidate.identity
    if theirs.size is None:
        return DropReason.SIZE, "the mirror does not tell the file's size"
    if ours.size is not None and theirs.size != ours.size:
        return DropReason.SIZE, f"{theirs.size} bytes, the reference has {ours.size}"
    verdict = _digests_say(reference.digests, candidate.digests)
    if verdict is not None:
        return verdict if verdict[1] else None
    if _strong(ours.etag) and _strong(theirs.etag):
        assert ours.etag is not None and theirs.etag is not None
        if not ours.etag.strong_equals(theirs.etag):
            return (
                DropReason.ETAG,
                f"strong ETag {theirs.etag.header_value()}, the reference has "
                f"{ours.etag.header_value()}",
            )
    return None


def _digests_say(
    ours: Iterable[ExpectedDigest], theirs: Iterable[ExpectedDigest]
) -> tuple[DropReason, str] | None:
    """(DIGEST, why) for a differing digest, (DIGEST, "") for digests that prove agreement,
    None when no algorithm is announced by both."""
    mine = {d.algorithm: d for d in ours}
    compared = False
    for digest in theirs:
        known = mine.get(digest.algorithm)
        if known is None:
            continue
        if known.digest != digest.digest:
            return (
                DropReason.DIGEST,
                f"{digest.source} {digest.algorithm} {digest.hex}, the reference's "
                f"{known.source} says {known.hex}",
            )
        compared = True
    return (DropReason.DIGEST, "") if compared else None


class MirrorState(Enum):
    UNTRIED = "untried"  # no answer yet: asked with no If-Range, its answer judged on nothing
    AGREED = "agreed"  # its first answer agreed: judged against its own validators
    DROPPED = "dropped"


@dataclass
class _Mirror:
    url: str
    state: MirrorState = MirrorState.UNTRIED
    fingerprint: Fingerprint | None = None
    failures: int = 0
    answered: bool = False  # the reference: its first 206 of this attempt came in
    workers: int = 0  # workers assigned to it
    rates: dict[int, float] = field(default_factory=dict)  # worker -> bytes/s of its connection


class MirrorSet:
    """The mirrors of one parallel attempt and who works on which. Not thread-safe: the
    engine calls it under the lock that guards its segment table.

    Index 0 is the reference (agreed from the start). ``per_mirror`` is how many connections
    each mirror may have at once (aria2's ``--max-connection-per-server``): the download's
    ``connections`` count per mirror, so that two mirrors add up and a dropped one's
    connections are not piled onto the others."""

    def __init__(
        self, urls: Sequence[str], per_mirror: int, reference: Fingerprint | None = None
    ) -> None:
        if not urls:
            raise ValueError("a mirror set needs at least one URL")
        if per_mirror < 1:
            raise ValueError("per_mirror must be >= 1")
        self.per_mirror = per_mirror
        self._mirrors = [_Mirror(url) for url in urls]
        self._mirrors[0].state = MirrorState.AGREED
        self._mirrors[0].fingerprint = reference
        self._holders: dict[int, int] = {}  # segment slot -> mirror working on it
        self.dropped: list[Drop] = []

    def __len__(self) -> int:
        return len(self._mirrors)

    def url(self, index: int) -> str:
        return self._mirrors[index].url

    def state(self, index: int) -> MirrorState:
        return self._mirrors[index].state

    @property
    def usable(self) -> list[int]:
        return [i for i, m in enumerate(self._mirrors) if m.state is not MirrorState.DROPPED]

    def pinned(self, index: int) -> Identity | None:
        """What answers of mirror ``index`` are judged against: its own identity once it
        agreed, None while untried (its first answer is judged on nothing, then checked
        against the reference by ``answered``)."""
        mirror = self._mirrors[index]
        if mirror.state is MirrorState.AGREED and mirror.fingerprint is not None:
            return mirror.fingerprint.identity
        return None

    # -- answers -----------------------------------------------------------------------------

    def answered(self, index: int, fingerprint: Fingerprint) -> Drop | None:
        """Mirror ``index`` answered a segment request with a 206 whose identity is
        ``fingerprint``; a Drop when that drops a mirror. The caller writes the answer only
        while ``state(index)`` is not DROPPED afterwards (None is also returned for a mirror
        dropped before: its answer is refused all the same).

        - The reference (judged against its pin by ``judge()``): its first 206 adds what a
          resume's record lacks (digests above all), and every mirror that agreed before is
          checked again against it; one that now disagrees is dropped ``tainted``.
        - Any other mirror: every answer is checked against the reference (a request sent
          before its first answer carried no If-Range, so each answer is checked, not only
          the first) and, once it has agreed, against its own first answer (another version
          of it: CHANGED). The first that agrees makes it AGREED, pinned by that answer."""
        mirror = self._mirrors[index]
        if mirror.state is MirrorState.DROPPED:
            return None
        if index == 0:
            if mirror.answered:
                return None
            mirror.answered = True
            known = mirror.fingerprint.identity if mirror.fingerprint else Identity()
            mirror.fingerprint = Fingerprint(
                known.merged(fingerprint.identity), fingerprint.digests
            )
            return self._recheck(mirror.fingerprint)
        verdict = None
        if mirror.fingerprint is not None:
            conflict = mirror.fingerprint.identity.conflict_with(fingerprint.identity)
            if conflict is not None:
                verdict = (DropReason.CHANGED, conflict)
        reference = self._mirrors[0].fingerprint
        if verdict is None and reference is not None:
            verdict = disagreement(reference, fingerprint)
        if verdict is not None:
            return self.drop(index, *verdict)
        if mirror.state is MirrorState.UNTRIED:
            mirror.state = MirrorState.AGREED
            mirror.fingerprint = fingerprint
        return None

    def _recheck(self, reference: Fingerprint) -> Drop | None:
        """Mirrors that agreed with less of the reference than is known now, checked again."""
        first: Drop | None = None
        for index, mirror in enumerate(self._mirrors[1:], 1):
            if mirror.state is not MirrorState.AGREED or mirror.fingerprint is None:
                continue
            verdict = disagreement(reference, mirror.fingerprint)
            if verdict is not None:
                drop = self.drop(index, *verdict, tainted=True)
                first = first or drop
        return first

    def served(self, index: int) -> None:
        """A segment of mirror ``index`` ended well (its bytes written, or the rest taken by
        another connection): its failures are no longer "in a row". A good head alone does not
        count, so a mirror whose every body is cut mid-way is dropped all the same."""
        self._mirrors[index].failures = 0

    def drop(
        self, index: int, reason: DropReason, detail: str, *, tainted: bool = False
    ) -> Drop | None:
        """Drop mirror ``index`` (None if it already was). Its workers leave at their next
        ``assign``; the segments they held are released by the engine as usual."""
        mirror = self._mirrors[index]
        if mirror.state is MirrorState.DROPPED:
            return None
        mirror.state = MirrorState.DROPPED
        mirror.rates.clear()
        drop = Drop(mirror.url, reason, detail, tainted)
        self.dropped.append(drop)
        return drop

    def failed(self, index: int, error: str, *, retryable: bool) -> Drop | None:
        """A request to mirror ``index`` failed. It is dropped (the Drop returned) once it has
        failed MIRROR_FAILURES times in a row, or at once for a failure no retry can fix, but
        only while another agreed mirror is usable: the last one is retried as a single-URL
        download would be, so a mirror list is never worse than its best URL alone."""
        mirror = self._mirrors[index]
        if mirror.state is MirrorState.DROPPED:
            return None
        mirror.failures += 1
        if retryable and mirror.failures < MIRROR_FAILURES:
            return None
        others = [
            i for i, m in enumerate(self._mirrors) if i != index and m.state is MirrorState.AGREED
        ]
        if not others:
            return None
        count = f"{mirror.failures} failures in a row, the last: " if retryable else ""
        return self.drop(index, DropReason.FAILED, f"{count}{error}")

    # -- workers -----------------------------------------------------------------------------

    def assign(self, current: int | None, prefer: int | None = None) -> int | None:
        """The mirror a worker works on next: its own while that is usable, else a usable one
        with a free connection (``prefer`` first, then the fewest workers, then the fastest
        known), else None (the worker ends: a dropped mirror's connections are not piled
        onto the others beyond ``per_mirror``)."""
        if current is not None:
            if self._mirrors[current].state is not MirrorState.DROPPED:
                return current
            self.leave(current)
        free = [
            i
            for i, m in enumerate(self._mirrors)
            if m.state is not MirrorState.DROPPED and m.workers < self.per_mirror
        ]
        if not free:
            return None
        if prefer in free:
            chosen = prefer
        else:
            chosen = min(free, key=lambda i: (self._mirrors[i].workers, -(self.speed(i) or 0.0)))
        self._mirrors[chosen].workers += 1
        return chosen

    def leave(self, index: int | None) -> None:
        """A worker assigned to ``index`` ended (or moves on): misuse, a worker leaving a
        mirror it was never assigned to, raises."""
        if index is not None:
            if self._mirrors[index].workers <= 0:
                raise ValueError(f"no worker is assigned to mirror {index}")
            self._mirrors[index].workers -= 1

    def note_rate(self, index: int, worker: int, bytes_per_second: float) -> None:
        """The latest measured speed of ``worker``'s connection to mirror ``index``."""
        mirror = self._mirrors[index]
        if mirror.state is not MirrorState.DROPPED:
            mirror.rates[worker] = bytes_per_second

    def speed(self, index: int) -> float | None:
        """Bytes/s one connection to mirror ``index`` gets (the mean of its connections'
        latest speeds), None before any was measured."""
        rates = self._mirrors[index].rates
        return sum(rates.values()) / len(rates) if rates else None

    def hold(self, slot: int, index: int) -> None:
        self._holders[slot] = index

    def unhold(self, slot: int) -> None:
        self._holders.pop(slot, None)

    def slot_speeds(self) -> Mapping[int, float]:
        """Segment slot -> the speed of the mirror working on it (where measured): what a
        speed-aware steal (``SegmentTable.claim``) weighs."""
        speeds: dict[int, float] = {}
        for slot, index in self._holders.items():
            speed = self.speed(index)
            if speed is not None:
                speeds[slot] = speed
        return speeds
