"""The read planner: which requests to make for a read, given the cache, the size and the policy."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rangeio._core.cache import ByteCache
from rangeio._core.headers import RangeSpec
from rangeio._core.ranges import ByteRange, RangeSet, coalesce

KiB = 1024
MiB = 1024 * KiB


@dataclass(frozen=True, slots=True)
class ReadPolicy:
    """Knobs of the planner. Defaults and where they come from:

    - ``minimum_range_request_bytes`` 8 KiB: hctef's default; a round trip costs far more than
      a few KiB on any real link.
    - ``readahead_max`` 2 MiB: GDAL's /vsicurl/ doubles its read-ahead up to this on sequential
      reads; it bounds the waste when a "sequential" run stops.
    - ``max_request_bytes`` 8 MiB: a single miss never turns into a giant request, and a cut
      response loses little.
    - ``gap_fill_bytes`` 64 KiB: within one read, cached islands of at most this many bytes are
      fetched again rather than paid for with an extra round trip.
    - ``coalesce_gap_bytes`` 1 MiB: vectored reads merge ranges this close, as object_store's
      ``coalesce_ranges`` does.
    - ``multipart_gap_bytes`` 16 KiB: with multipart/byteranges a separate range costs only a
      part header (~100 bytes), not a round trip, so only near-adjacent ranges are merged.
    - ``max_ranges_per_request`` 100: Apache's MaxRanges defaults to 200 and header limits are
      often 8 KiB; 100 ranges keep the Range header near 2 KiB.
    - ``stream_after_bytes`` 1 MiB: once a sequential run has read this much (or a single read
      of this size starts at byte 0, as a copy does), the reader switches to one streaming
      request instead of a chain of growing ones. Abandoning a stream wastes what the network
      had in flight, so it is only started after a run big enough to make that small.
    """

    minimum_range_request_bytes: int = 8 * KiB
    readahead_max: int = 2 * MiB
    max_request_bytes: int = 8 * MiB
    gap_fill_bytes: int = 64 * KiB
    coalesce_gap_bytes: int = 1 * MiB
    multipart_gap_bytes: int = 16 * KiB
    max_ranges_per_request: int = 100
    stream_after_bytes: int = 1 * MiB

    def __post_init__(self) -> None:
        if self.minimum_range_request_bytes < 1:
            raise ValueError("minimum_range_request_bytes must be >= 1")
        if self.max_request_bytes < self.minimum_range_request_bytes:
            raise ValueError("max_request_bytes must be >= minimum_range_request_bytes")
        if self.readahead_max < 0 or self.gap_fill_bytes < 0 or self.coalesce_gap_bytes < 0:
            raise ValueError("sizes must be >= 0")


class AccessPattern:
    """Tracks how one reader moves through the file and sizes its requests accordingly.

    - A read that starts where the previous one stopped doubles the read-ahead window (up to
      ``readahead_max``); any other read resets it to zero, so random access pays no read-ahead.
    - After two random reads in a row the reader is *lean*: a miss fetches just what was asked,
      without padding to ``minimum_range_request_bytes``. If a lean read is followed at once by
      its own continuation (the caller wanted more than one buffer), padding comes back for good.
    - A long sequential run switches to streaming (see ``ReadPolicy.stream_after_bytes``).
    """

    __slots__ = (
        "_policy",
        "_last_start",
        "_last_stop",
        "_random_streak",
        "_lean_blocked",
        "_was_lean",
        "window",
        "sequential_run",
        "run_bytes",
        "is_streaming",
    )

    def __init__(self, policy: ReadPolicy) -> None:
        self._policy = policy
        self._last_start: int | None = None
        self._last_stop: int | None = None
        self._random_streak = 0
        self._lean_blocked = False
        self._was_lean = False
        self.window = 0
        self.sequential_run = 0
        self.run_bytes = 0
        self.is_streaming = False

    def observe(self, want: ByteRange) -> int:
        """Record a read and return the read-ahead (bytes past ``want.stop``) it deserves."""
        return self.observe_span(want.start, want.stop)

    def observe_span(self, start: int, stop: int) -> int:
        """``observe`` for plain offsets: the cached-read hot path makes no range object."""
        last_start, last_stop = self._last_start, self._last_stop
        if last_start is not None and last_stop is not None and last_start < start < last_stop:
            # The previous read came back short and this one picks up where it stopped: the
            # same logical read, so the pattern does not change.
            if stop > last_stop:
                self.run_bytes += stop - last_stop
                self._last_stop = stop
            return self.window
        policy = self._policy
        if start == last_stop:
            if self._was_lean:
                self._lean_blocked = True
            self.sequential_run += 1
            self.run_bytes += stop - start
            self._random_streak = 0
            # At least the read's own length: a reader of 64 KiB pieces wants the next 64 KiB
            # now, not after the window has doubled up from 8 KiB.
            first = max(policy.minimum_range_request_bytes, stop - start)
            self.window = min(policy.readahead_max, max(first, self.window * 2))
        else:
            self.sequential_run = 0
            self.run_bytes = stop - start
            self._random_streak += 1
            self.window = 0
        self._was_lean = self.lean
        self.is_streaming = (
            self.sequential_run > 0 and self.run_bytes >= policy.stream_after_bytes
        ) or (start == 0 and stop - start >= policy.stream_after_bytes)
        self._last_start, self._last_stop = start, stop
        return self.window

    @property
    def lean(self) -> bool:
        return self._random_streak >= 2 and not self._lean_blocked

    @property
    def minimum_request(self) -> int:
        """The smallest request a miss should make now."""
        return 0 if self.lean else self._policy.minimum_range_request_bytes


def plan_read(
    want: ByteRange,
    cache: ByteCache,
    size: int,
    policy: ReadPolicy,
    readahead: int = 0,
    minimum: int | None = None,
) -> list[ByteRange]:
    """Requests that make ``want`` (plus read-ahead) cached; empty when it already is.

    Never asks for bytes past ``size`` nor, within one plan, for cached bytes beyond the
    ``gap_fill_bytes`` islands it deliberately refetches.
    """
    want = want.clamp(size)
    if not want or not cache.missing(want):
        return []
    if minimum is None:
        minimum = policy.minimum_range_request_bytes
    stop = max(want.stop + readahead, want.start + minimum)
    target = ByteRange(want.start, min(size, stop))
    gaps = cache.missing(target)
    return _bounded(coalesce(gaps, policy.gap_fill_bytes), RangeSet(gaps), policy)


def plan_vectored(
    wanted: Iterable[ByteRange],
    cache: ByteCache,
    size: int,
    policy: ReadPolicy,
    *,
    multipart: bool = False,
) -> list[ByteRange]:
    """Requests for a vectored read: every missing byte of every range, close gaps merged
    (more eagerly when each range would be a request of its own than when they share one
    multipart request)."""
    gaps: list[ByteRange] = []
    for want in wanted:
        gaps.extend(cache.missing(want.clamp(size)))
    gap = policy.multipart_gap_bytes if multipart else policy.coalesce_gap_bytes
    return _bounded(coalesce(gaps, gap), RangeSet(gaps), policy)


def group_for_multipart(ranges: list[ByteRange], policy: ReadPolicy) -> list[list[ByteRange]]:
    """Ranges grouped into multipart requests: at most ``max_ranges_per_request`` ranges and
    about ``max_request_bytes`` bytes each, so one failure never costs much."""
    groups: list[list[ByteRange]] = []
    current: list[ByteRange] = []
    current_bytes = 0
    for r in ranges:
        full = len(current) >= policy.max_ranges_per_request
        if current and (full or current_bytes + r.length > policy.max_request_bytes):
            groups.append(current)
            current, current_bytes = [], 0
        current.append(r)
        current_bytes += r.length
    if current:
        groups.append(current)
    return groups


def _bounded(ranges: list[ByteRange], needed: RangeSet, policy: ReadPolicy) -> list[ByteRange]:
    out: list[ByteRange] = []
    for r in ranges:
        pos = r.start
        while pos < r.stop:
            piece = ByteRange(pos, min(pos + policy.max_request_bytes, r.stop))
            # A cut can fall inside filler that coalescing added (a cached island, the gap
            # between vectored ranges): every request starts and ends on a byte that is needed,
            # so none is spent on filler alone.
            holes = needed.gaps(piece)
            if holes and holes[0].start == piece.start:
                pos = holes[0].stop
                continue
            stop = holes[-1].start if holes and holes[-1].stop == piece.stop else piece.stop
            out.append(ByteRange(piece.start, stop))
            pos = piece.stop
    return out


# Statuses that refuse a suffix range (`bytes=-N`) rather than the file: 501 not implemented;
# 400/405 from servers that choke on the syntax.
SUFFIX_REFUSALS = frozenset({400, 405, 501})


def suffix_refused(status: int | None) -> bool:
    """Whether the open should retry with a prefix range. ``None`` stands for a protocol error
    (a 416 inside the file, a wrong Content-Range): also worth one try without the suffix."""
    return status is None or status in SUFFIX_REFUSALS


def opening_specs(prefetch_bytes: int, direction: str) -> list[RangeSpec]:
    """The request that opens a file, then the fallback if the server refuses it.

    Open costs one request: a range both reveals the size (Content-Range total) and fills the
    prefetch, so no HEAD is needed (presigned URLs often refuse HEAD). Suffix ranges are refused
    by some servers (501), hence the prefix fallback.
    """
    if prefetch_bytes <= 0:
        return [RangeSpec.closed(0, 1)]
    if direction.upper() == "END":
        return [RangeSpec.suffix(prefetch_bytes), RangeSpec.closed(0, prefetch_bytes)]
    if direction.upper() == "START":
        return [RangeSpec.closed(0, prefetch_bytes)]
    raise ValueError(f"prefetch_direction must be 'END' or 'START', not {direction!r}")
