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
      had in flight, so it is only started after a run big enough to make that small. Each
      stream is bounded (``AccessPattern.stream_length``: ``STREAM_GROWTH`` times what the run
      has read), so a reader that jumps away wastes at most that, not the rest of the file;
      only a copy (that big first read at byte 0) streams the rest at once.
    - ``stream_drain_bytes`` 256 KiB: a reader that leaves a stream with at most this much of
      it left reads the rest into the cache instead of abandoning it. Abandoning closes the
      connection (the next request pays a new handshake, TLS included) and loses the bytes in
      flight anyway; 256 KiB is about what one round trip carries at 100 Mbit/s and 20 ms.
    - ``stride_gap_bytes`` 256 KiB: a forward reader whose skips average at most this (tar
      headers over their members' data, row groups, tiles in order) is *strided*, and its
      requests read through the skipped bytes. 256 KiB is what a link carries in one round
      trip at 100 Mbit/s and 20 ms: a skip that short costs less to read through than the round
      trip a request of its own would cost. fsspec's HTTPFileSystem reads through every skip
      (5 MiB blocks); skips longer than this are fetched apart, as random reads.
    - ``stride_readahead_max`` 8 MiB: a strided read-ahead starts at ``STRIDES_AHEAD`` strides
      and doubles with every strided read up to this (and one request, ``max_request_bytes``),
      so ``tarfile``'s listing of a 40 MiB, 1,043-member tar takes 8 requests after the open
      (fsspec's 5 MiB blocks: 15 in all) and a strided run that stops wastes at most this much.
      0 turns strided read-ahead off.
    - ``cluster_gap_bytes`` 4 MiB: a forward jump of at most this after a run of reads (the
      next row of tiles in a TIFF or COG window, of chunks in HDF5 or netCDF) makes the reader
      *clustered*: its request reads through ``ROWS_AHEAD`` rows, jumps included. fsspec's
      5 MiB blocks read through such jumps on every miss; a longer jump is a random read.
    - ``cluster_readahead_max`` 8 MiB: what a read-ahead over rows may reach, with the read one
      request at most (``max_request_bytes``); a reader that stops after a row wastes at most
      this. 0 turns it off.
    """

    minimum_range_request_bytes: int = 8 * KiB
    readahead_max: int = 2 * MiB
    max_request_bytes: int = 8 * MiB
    gap_fill_bytes: int = 64 * KiB
    coalesce_gap_bytes: int = 1 * MiB
    multipart_gap_bytes: int = 16 * KiB
    max_ranges_per_request: int = 100
    stream_after_bytes: int = 1 * MiB
    stride_gap_bytes: int = 256 * KiB
    stride_readahead_max: int = 8 * MiB
    stream_drain_bytes: int = 256 * KiB
    cluster_readahead_max: int = 8 * MiB
    cluster_gap_bytes: int = 4 * MiB

    def __post_init__(self) -> None:
        if self.minimum_range_request_bytes < 1:
            raise ValueError("minimum_range_request_bytes must be >= 1")
        if self.max_request_bytes < self.minimum_range_request_bytes:
            raise ValueError("max_request_bytes must be >= minimum_range_request_bytes")
        sizes = (
            self.readahead_max,
            self.gap_fill_bytes,
            self.coalesce_gap_bytes,
            self.stride_gap_bytes,
            self.stride_readahead_max,
            self.stream_drain_bytes,
            self.cluster_readahead_max,
            self.cluster_gap_bytes,
        )
        if min(sizes) < 0:
            raise ValueError("sizes must be >= 0")


# A strided read-ahead starts by covering this many strides (the distance between the starts of
# the last two reads): enough that the next misses come after a few reads, not at each one,
# while a stride pattern that was a coincidence (two forward reads) costs a few strides only.
STRIDES_AHEAD = 4

# The first window of a sequential run is at least the read's own length (a reader of 64 KiB
# pieces wants the next 64 KiB now), but no more than this: a run of two large reads (two tiles
# side by side) would otherwise fetch a third for nothing. 256 KiB is what one round trip
# carries at 100 Mbit/s and 20 ms (see ``stride_gap_bytes``).
READ_WINDOW_MAX = 256 * KiB

# A large read reaches the engine as two: its body, then its tail of at most one buffer
# (``_sync/file.py`` BUFFER_BYTES) read through the buffer. A run whose reads after the first
# add no more than this is one read (a Parquet column chunk), not a row of tiles.
BUFFERED_TAIL_BYTES = 4 * KiB

# Rows of tiles or chunks: the request after a jump to the next row reads through this many rows
# (jump plus run) ahead: a TIFF window of 4 rows costs its first row's requests and one more,
# as fsspec's 5 MiB blocks do at best; a reader that stops after one row wastes two rows.
ROWS_AHEAD = 3

# A stream asks for this many times the bytes its sequential run has read so far: a reader that
# jumps away wastes at most that multiple of what it used, and a copy of N bytes takes about
# log4(N / stream_after_bytes) + 1 requests (a round trip each) instead of one per bound.
STREAM_GROWTH = 4


class AccessPattern:
    """Tracks how one reader moves through the file and sizes its requests accordingly.

    - *Sequential*: a read that starts where the previous one stopped doubles the read-ahead
      window (up to ``readahead_max``).
    - *Strided*: a read that skips forward (tar headers over their members' data, row groups,
      tiles in order) gets a read-ahead covering the next ``STRIDES_AHEAD`` strides, doubling
      with every strided read up to ``stride_readahead_max``, so its next headers come from one
      request instead of one request each. It takes two forward skips in a row, averaging at
      most ``stride_gap_bytes`` (recent skips weigh most), before the skipped bytes are read
      through: a lone forward jump is a random read.
    - *Rows* (clustered): a forward jump of at most ``cluster_gap_bytes`` after a run of more
      than one read (rows of tiles or chunks) reads through ``ROWS_AHEAD`` rows (jump plus run)
      ahead, within ``cluster_readahead_max`` and one request.
    - *Random*: any other read gets no read-ahead, so random access pays for none.
      After two random reads in a row the reader is *lean*: a miss fetches just what was asked,
      without padding to ``minimum_range_request_bytes``. If a lean read is followed at once by
      its own continuation (the caller wanted more than one buffer), padding comes back for good.
    - A long sequential run switches to streaming (see ``ReadPolicy.stream_after_bytes``), from
      the read after the one that crossed the threshold.
    - ``tail``: a miss takes the rest of the file along when it is short (see the property).


    A strided run therefore fetches at most the bytes between its first and last reads plus
    ``stride_readahead_max``, and reads through no skip of a run whose skips average more than
    ``stride_gap_bytes``.
    """

    __slots__ = (
        "_policy",
        "_last_start",
        "_last_stop",
        "_random_streak",
        "_lean_blocked",
        "_was_lean",
        "_forward_run",
        "_gap_average",
        "window",
        "sequential_run",
        "run_bytes",
        "is_streaming",
        "strided",
        "_copying",
        "_run_first",
    )

    def __init__(self, policy: ReadPolicy) -> None:
        self._policy = policy
        self._last_start: int | None = None
        self._last_stop: int | None = None
        self._random_streak = 0
        self._lean_blocked = False
        self._was_lean = False
        # Forward skips in a row, and their running average (None: no skip in this run).
        self._forward_run = 0
        self._gap_average: int | None = None
        self.window = 0
        self.sequential_run = 0
        self.run_bytes = 0
        self.is_streaming = False
        self.strided = False
        self._copying = False
        # The length of the read that began the current run (see BUFFERED_TAIL_BYTES).
        self._run_first = 0

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
            self.strided = False
            # At least the read's own length: a reader of 64 KiB pieces wants the next 64 KiB
            # now, not after the window has doubled up from 8 KiB.
            first = max(policy.minimum_range_request_bytes, min(stop - start, READ_WINDOW_MAX))
            window = min(policy.readahead_max, max(first, self.window * 2))
            # Inside a strided run (a header read past the buffer's end, say) the strided window
            # stays: the skips to come are as likely as before.
            self.window = max(window, self.window) if self._in_strided_run() else window
        else:
            # A row is a run of more than one read; the tail of one large read, read through
            # the buffer after it, does not make it one.
            more = self.run_bytes - self._run_first
            run = self.run_bytes if self.sequential_run and more > BUFFERED_TAIL_BYTES else 0
            self._run_first = stop - start
            self.sequential_run = 0
            self.run_bytes = stop - start
            self.strided = self._skipped_forward(start, stop)
            if not self.strided:
                self.window = self._rows_ahead(start, stop, run)
                if self.window == 0:
                    self._random_streak += 1
                else:
                    self._random_streak = 0
        self._was_lean = self.lean
        copy_start = start == 0 and stop - start >= policy.stream_after_bytes
        self._copying = copy_start or (self._copying and start == last_stop)
        # The read that takes a run past the threshold is not streamed yet, the next one is: a
        # run that ends there (a row of four 256 KiB chunks) opens no stream to abandon.
        self.is_streaming = (
            self.sequential_run > 0 and self.run_bytes - (stop - start) >= policy.stream_after_bytes
        ) or copy_start
        self._last_start, self._last_stop = start, stop
        return self.window

    def _rows_ahead(self, start: int, stop: int, run: int) -> int:
        """The read-ahead of a read that is neither sequential nor strided: rows (see the
        class) when ``run`` (the bytes of the run of reads before it) is one, else none."""
        jump = None if self._last_stop is None else start - self._last_stop
        if not (run and jump is not None and 0 < jump <= self._policy.cluster_gap_bytes):
            return 0
        # Rows of tiles or chunks: a run of reads, a jump forward, the next run. The next rows
        # are likely as far apart and as long: read through them.
        ahead = ROWS_AHEAD * (jump + run) - (stop - start)
        return max(0, min(self._cluster_cap(stop - start), ahead))

    def _cluster_cap(self, read_bytes: int) -> int:
        """Clustered read-ahead, with the read, stays within one request."""
        policy = self._policy
        return max(0, min(policy.cluster_readahead_max, policy.max_request_bytes - read_bytes))

    def _skipped_forward(self, start: int, stop: int) -> bool:
        """Record a read that is not sequential; True (and the window set) when it is strided."""
        policy = self._policy
        last_start, last_stop = self._last_start, self._last_stop
        # A skip no window could cover (or a read backwards, or the first read) ends the run.
        if (
            last_start is None
            or last_stop is None
            or not (0 < start - last_stop <= policy.stride_readahead_max)
        ):
            self._forward_run = 0
            self._gap_average = None
            return False
        gap = start - last_stop
        self._forward_run += 1
        # Recent skips weigh most: members of an archive come in runs of similar sizes.
        average = gap if self._gap_average is None else (self._gap_average + gap) // 2
        self._gap_average = average
        if not self._in_strided_run():
            return False
        self._random_streak = 0
        # One request at most (with the read itself): a cut costs little, as for any request.
        cap = min(policy.stride_readahead_max, policy.max_request_bytes - (stop - start))
        first = STRIDES_AHEAD * (start - last_start)
        self.window = max(0, min(cap, max(first, self.window * 2)))
        return True

    def stream_length(self) -> int | None:
        """How many bytes the next stream of this sequential run asks for (see
        ``STREAM_GROWTH``); None: the rest of the file, for a copy (a run that began with a
        read of ``stream_after_bytes`` or more at byte 0), whose every byte will be read and
        which would otherwise pay a round trip per bound."""
        if self._copying:
            return None
        return max(self._policy.stream_after_bytes, STREAM_GROWTH * self.run_bytes)

    def _in_strided_run(self) -> bool:
        average = self._gap_average
        return (
            self._forward_run >= 2
            and average is not None
            and average <= self._policy.stride_gap_bytes
        )

    @property
    def tail(self) -> int:
        """The rest of the file a miss takes along rather than leave for a request of its own:
        up to ``readahead_max`` for a sequential reader (it will read it next; PIL decoding a
        small PNG then costs the open and one request), else ``gap_fill_bytes``."""
        policy = self._policy
        return policy.readahead_max if self.sequential_run else policy.gap_fill_bytes

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
    room: int | None = None,
    tail: int | None = None,
) -> list[ByteRange]:
    """Requests that make ``want`` (plus ``readahead`` after it) cached; empty when it already
    is. A rest of the file of at most ``tail`` bytes (None:
    ``gap_fill_bytes``) comes along, if ``room`` (what the cache holds beside the read) allows.

    Never asks for bytes past ``size`` nor, within one plan, for cached bytes beyond the
    ``gap_fill_bytes`` islands it deliberately refetches.
    """
    want = want.clamp(size)
    if not want:
        return []
    missing = cache.missing(want)
    if not missing:
        return []
    if minimum is None:
        minimum = policy.minimum_range_request_bytes
    stop = max(want.stop + readahead, want.start + minimum)
    if tail is None:
        tail = policy.gap_fill_bytes
    if size - stop <= tail and (room is None or size - want.start <= room):
        # A rest this short costs more as a round trip of its own than as bytes (unless the
        # cache's ``room`` could not hold it beside the read: it would be fetched again).
        stop = size
    target = ByteRange(want.start, min(size, stop))
    gaps = missing if target == want else cache.missing(target)
    if len(gaps) == 1 and gaps[0].length <= policy.max_request_bytes:
        return gaps  # what the general case makes of one gap (a lean random read's miss)
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


def group_for_multipart(
    ranges: list[ByteRange], policy: ReadPolicy, *, max_ranges: int | None = None
) -> list[list[ByteRange]]:
    """Ranges grouped into multipart requests: at most ``max_ranges`` (the policy's
    ``max_ranges_per_request`` unless the server's cap is lower, see ``_core/rangecap.py``)
    ranges and about ``max_request_bytes`` bytes each, so one failure never costs much. Groups
    are balanced (250 ranges under a cap of 100 go 84, 83, 83): they take about as long."""
    cap = policy.max_ranges_per_request if max_ranges is None else max_ranges
    if cap < 1:
        raise ValueError("max_ranges must be >= 1")
    per_group = -(-len(ranges) // max(1, -(-len(ranges) // cap)))
    groups: list[list[ByteRange]] = []
    current: list[ByteRange] = []
    current_bytes = 0
    for r in ranges:
        full = len(current) >= per_group
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


def fit_readahead(readahead: int, read_bytes: int, room: int) -> int:
    """``readahead`` cut to what ``room`` bytes of cache hold beside the read itself: bytes
    fetched ahead and evicted before they are read would only be fetched again (a strided
    read-ahead of 8 MiB into a 1 MiB cache would cost 8 MiB a header)."""
    return max(0, min(readahead, room - read_bytes))


def drain_instead_of_abandoning(left: int, policy: ReadPolicy) -> bool:
    """Whether a stream the reader leaves with ``left`` bytes unread is read to its end (into
    the cache, keeping the connection) rather than abandoned (see ``stream_drain_bytes``)."""
    return left <= policy.stream_drain_bytes


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
