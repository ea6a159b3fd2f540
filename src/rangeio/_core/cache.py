"""The byte cache: validated bytes by offset, under a memory budget, evicting least-recently used."""

from __future__ import annotations

from bisect import bisect_right
from collections import OrderedDict

from rangeio._core.ranges import ByteRange

Buffer = bytes | bytearray

# Adjacent segments are joined while the result stays this small: it keeps the segment count (and
# so lookups) low for many small reads, while a long sequential read never re-copies big buffers.
DEFAULT_MERGE_LIMIT = 64 * 1024


class ByteCache:
    """Segments of the remote file keyed by offset. Segments never overlap.

    The cache only ever holds bytes of one version of the file: the caller validates every
    response before inserting, and clears the cache if the identity changes.
    """

    def __init__(self, budget: int, *, merge_limit: int = DEFAULT_MERGE_LIMIT) -> None:
        if budget < 0:
            raise ValueError("budget must be >= 0")
        self.budget = budget
        self._merge_limit = merge_limit
        self._starts: list[int] = []
        self._data: dict[int, Buffer] = {}
        self._lru: OrderedDict[int, None] = OrderedDict()
        self._pinned: set[int] = set()
        # Segments inserted ahead of any read (the open's prefetch) and not read since: they are
        # evicted last, so that a long read crossing the cache does not evict, before reaching
        # them, bytes it was given for free (a whole-file read would fetch the prefetched tail
        # twice). Reading any byte of one makes it an ordinary segment.
        self._held: set[int] = set()
        self.size = 0
        self.evicted_bytes = 0

    def __len__(self) -> int:
        return len(self._starts)

    def segments(self) -> list[ByteRange]:
        return [ByteRange(s, s + len(self._data[s])) for s in self._starts]

    # -- queries ----------------------------------------------------------------------------

    def _index_at(self, pos: int) -> int:
        """Index of the segment containing ``pos``, or -1."""
        i = bisect_right(self._starts, pos) - 1
        if i >= 0:
            start = self._starts[i]
            if pos < start + len(self._data[start]):
                return i
        return -1

    def missing(self, want: ByteRange) -> list[ByteRange]:
        """The parts of ``want`` not in the cache, in order."""
        gaps: list[ByteRange] = []
        pos = want.start
        i = max(bisect_right(self._starts, pos) - 1, 0)
        while pos < want.stop and i < len(self._starts):
            start = self._starts[i]
            stop = start + len(self._data[start])
            if start >= want.stop:
                break
            if stop > pos:
                if start > pos:
                    gaps.append(ByteRange(pos, start))
                pos = stop
            i += 1
        if pos < want.stop:
            gaps.append(ByteRange(pos, want.stop))
        return gaps

    def contiguous_from(self, pos: int) -> int:
        """How many bytes starting at ``pos`` are cached without a hole."""
        i = self._index_at(pos)
        if i < 0:
            return 0
        end = pos
        while i < len(self._starts) and self._starts[i] <= end:
            start = self._starts[i]
            end = max(end, start + len(self._data[start]))
            i += 1
        return end - pos

    def read_into(self, pos: int, out: memoryview) -> int:
        """Copy cached bytes from ``pos`` into ``out`` until ``out`` is full or a hole; returns
        the count. Touches every segment it reads so that LRU order follows use."""
        starts = self._starts
        i = bisect_right(starts, pos) - 1
        if i < 0:
            return 0
        want = len(out)
        done = 0
        count = len(starts)
        while done < want and i < count:
            start = starts[i]
            at = pos + done
            data = self._data[start]
            offset = at - start
            if offset < 0 or offset >= len(data):
                break
            n = min(len(data) - offset, want - done)
            out[done : done + n] = memoryview(data)[offset : offset + n]
            done += n
            self._lru.move_to_end(start)
            self._held.discard(start)
            i += 1
        return done

    def peek(self, want: ByteRange) -> bytes | None:
        """The bytes of ``want`` if all are cached, else None; leaves the LRU order and held
        segments as they are (the disk cache copies bytes out without using them)."""
        if not want or self.missing(want):
            return None if want else b""
        parts: list[bytes] = []
        i = bisect_right(self._starts, want.start) - 1
        pos = want.start
        while pos < want.stop:
            start = self._starts[i]
            data = self._data[start]
            n = min(start + len(data), want.stop) - pos
            parts.append(bytes(memoryview(data)[pos - start : pos - start + n]))
            pos += n
            i += 1
        return b"".join(parts)

    def get(self, want: ByteRange) -> bytes | None:
        """The bytes of ``want`` if all are cached, else None."""
        if not want:
            return b""
        buf = bytearray(want.length)
        if self.read_into(want.start, memoryview(buf)) != want.length:
            return None
        return bytes(buf)

    # -- updates ----------------------------------------------------------------------------

    def insert(
        self,
        start: int,
        data: Buffer,
        *,
        protect: ByteRange | None = None,
        pin: bool = False,
        hold: bool = False,
    ) -> None:
        """Add validated bytes at ``start``. Bytes already cached are kept (they are the same
        version); only the holes are filled. ``protect`` is the range a read in progress needs:
        eviction never touches it. ``pin`` keeps the bytes for good (a server that ignores Range
        gives no second chance to fetch them cheaply). ``hold`` marks bytes no read asked for yet
        (the open's prefetch): they are evicted after every other unpinned segment, until read."""
        span = ByteRange(start, start + len(data))
        if not span:
            return
        view = memoryview(data)
        for gap in self.missing(span):
            if gap == span:
                piece: Buffer = data
            else:
                piece = bytes(view[gap.start - start : gap.stop - start])
            self._add(gap.start, piece, pin, hold)
        if pin:
            # Bytes of the span that were cached before are kept for good as well; otherwise
            # "pinned" would depend on what happened to be cached already. A segment reaching
            # past the span is pinned whole rather than copied to cut it.
            i = max(bisect_right(self._starts, span.start) - 1, 0)
            while i < len(self._starts) and self._starts[i] < span.stop:
                if self._starts[i] + len(self._data[self._starts[i]]) > span.start:
                    self._pinned.add(self._starts[i])
                i += 1
        self._evict(protect if protect is not None else span)

    def _add(self, start: int, data: Buffer, pin: bool, hold: bool = False) -> None:
        i = bisect_right(self._starts, start)
        apart = pin or hold
        # Join with the left neighbour when it ends exactly here and the result stays small.
        if i > 0 and not apart:
            left = self._starts[i - 1]
            left_data = self._data[left]
            if (
                left + len(left_data) == start
                and left not in self._pinned
                and left not in self._held
                and len(left_data) + len(data) <= self._merge_limit
            ):
                self._remove_at(i - 1)
                data = bytes(left_data) + bytes(data)
                start = left
                i -= 1
        if i < len(self._starts) and not apart:
            right = self._starts[i]
            right_data = self._data[right]
            if (
                start + len(data) == right
                and right not in self._pinned
                and right not in self._held
                and len(right_data) + len(data) <= self._merge_limit
            ):
                self._remove_at(i)
                data = bytes(data) + bytes(right_data)
        self._place(start, data)
        if pin:
            self._pinned.add(start)
        elif hold:
            self._held.add(start)

    def _place(self, start: int, data: Buffer) -> None:
        self._starts.insert(bisect_right(self._starts, start), start)
        self._data[start] = data
        self._lru[start] = None
        self.size += len(data)

    def _remove_at(self, i: int) -> None:
        start = self._starts.pop(i)
        self.size -= len(self._data.pop(start))
        self._lru.pop(start, None)
        self._pinned.discard(start)
        self._held.discard(start)

    def _evict(self, protect: ByteRange) -> None:
        if self.size <= self.budget:
            return
        held = self._held
        order = [s for s in self._lru if s not in held] + [s for s in self._lru if s in held]
        for start in order:
            if self.size <= self.budget:
                break
            if start in self._pinned:
                continue
            data = self._data[start]
            seg = ByteRange(start, start + len(data))
            keep = seg.intersection(protect)
            if keep == seg:
                continue
            self._remove_at(bisect_right(self._starts, start) - 1)
            self.evicted_bytes += len(seg) - (len(keep) if keep else 0)
            if keep is not None:
                # A segment reaching past the protected range (a merge, a read-ahead) keeps only
                # its protected bytes: the budget is exceeded by at most the read in progress.
                self._place(
                    keep.start, bytes(memoryview(data)[keep.start - start : keep.stop - start])
                )

    def clear(self) -> None:
        self._starts.clear()
        self._data.clear()
        self._lru.clear()
        self._pinned.clear()
        self._held.clear()
        self.size = 0
