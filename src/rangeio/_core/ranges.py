"""Half-open byte ranges and normalised sets of disjoint ranges: the arithmetic every other module uses."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True, order=True, slots=True)
class ByteRange:
    """Bytes ``[start, stop)``. HTTP's inclusive ``first-last`` form lives only in the header code."""

    start: int
    stop: int

    def __post_init__(self) -> None:
        if self.start < 0 or self.stop < self.start:
            raise ValueError(f"invalid byte range [{self.start}, {self.stop})")

    @property
    def length(self) -> int:
        return self.stop - self.start

    def __len__(self) -> int:
        return self.stop - self.start

    def __bool__(self) -> bool:
        return self.stop > self.start

    def contains(self, other: ByteRange) -> bool:
        return self.start <= other.start and other.stop <= self.stop

    def overlaps(self, other: ByteRange) -> bool:
        # An empty range holds no byte, so it overlaps nothing (as `intersection` agrees).
        return max(self.start, other.start) < min(self.stop, other.stop)

    def intersection(self, other: ByteRange) -> ByteRange | None:
        start, stop = max(self.start, other.start), min(self.stop, other.stop)
        return ByteRange(start, stop) if start < stop else None

    def clamp(self, size: int) -> ByteRange:
        return ByteRange(min(self.start, size), min(self.stop, size))

    def __repr__(self) -> str:
        return f"[{self.start}, {self.stop})"


class RangeSet:
    """A normalised set of disjoint, non-adjacent byte ranges kept in order.

    Stored as two parallel sorted lists so lookups are a bisect, not a scan.
    """

    __slots__ = ("_starts", "_stops")

    def __init__(self, ranges: Iterable[ByteRange | tuple[int, int]] = ()) -> None:
        self._starts: list[int] = []
        self._stops: list[int] = []
        for r in ranges:
            self.add(r if isinstance(r, ByteRange) else ByteRange(*r))

    def __iter__(self) -> Iterator[ByteRange]:
        return (ByteRange(a, b) for a, b in zip(self._starts, self._stops))

    def __len__(self) -> int:
        return len(self._starts)

    def __bool__(self) -> bool:
        return bool(self._starts)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RangeSet):
            return NotImplemented
        return self._starts == other._starts and self._stops == other._stops

    def __repr__(self) -> str:
        return f"RangeSet({list(self)!r})"

    def copy(self) -> RangeSet:
        new = RangeSet()
        new._starts = self._starts.copy()
        new._stops = self._stops.copy()
        return new

    @property
    def total(self) -> int:
        return sum(b - a for a, b in zip(self._starts, self._stops))

    def add(self, r: ByteRange) -> None:
        if not r:
            return
        # Every stored range that touches or overlaps r (adjacent ones too) is folded into it.
        lo = bisect_left(self._stops, r.start)
        hi = bisect_right(self._starts, r.stop)
        start, stop = r.start, r.stop
        if lo < hi:
            start = min(start, self._starts[lo])
            stop = max(stop, self._stops[hi - 1])
        self._starts[lo:hi] = [start]
        self._stops[lo:hi] = [stop]

    def remove(self, r: ByteRange) -> None:
        if not r:
            return
        lo = bisect_right(self._stops, r.start)
        hi = bisect_left(self._starts, r.stop)
        if lo >= hi:
            return
        keep_starts: list[int] = []
        keep_stops: list[int] = []
        if self._starts[lo] < r.start:
            keep_starts.append(self._starts[lo])
            keep_stops.append(r.start)
        if self._stops[hi - 1] > r.stop:
            keep_starts.append(r.stop)
            keep_stops.append(self._stops[hi - 1])
        self._starts[lo:hi] = keep_starts
        self._stops[lo:hi] = keep_stops

    def union(self, other: Iterable[ByteRange]) -> RangeSet:
        new = self.copy()
        for r in other:
            new.add(r)
        return new

    def difference(self, other: Iterable[ByteRange]) -> RangeSet:
        new = self.copy()
        for r in other:
            new.remove(r)
        return new

    def covers(self, r: ByteRange) -> bool:
        if not r:
            return True
        i = bisect_right(self._starts, r.start) - 1
        return i >= 0 and self._stops[i] >= r.stop

    def gaps(self, within: ByteRange) -> list[ByteRange]:
        """The parts of ``within`` that this set does not hold, in order."""
        out: list[ByteRange] = []
        pos = within.start
        i = max(bisect_right(self._stops, within.start), 0)
        while pos < within.stop and i < len(self._starts):
            a, b = self._starts[i], self._stops[i]
            if a >= within.stop:
                break
            if a > pos:
                out.append(ByteRange(pos, a))
            pos = max(pos, b)
            i += 1
        if pos < within.stop:
            out.append(ByteRange(pos, within.stop))
        return out


def coalesce(ranges: Iterable[ByteRange], max_gap: int) -> list[ByteRange]:
    """Merge ranges whose gap is at most ``max_gap`` bytes (overlapping and adjacent ones always).

    The result is sorted; every input range lies inside exactly one output range.
    """
    ordered = sorted(r for r in ranges if r)
    merged: list[ByteRange] = []
    for r in ordered:
        if merged and r.start - merged[-1].stop <= max_gap:
            last = merged[-1]
            merged[-1] = ByteRange(last.start, max(last.stop, r.stop))
        else:
            merged.append(r)
    return merged


def split(r: ByteRange, max_length: int) -> list[ByteRange]:
    """Cut ``r`` into pieces of at most ``max_length`` bytes, so no single request grows unbounded."""
    if max_length <= 0:
        raise ValueError("max_length must be positive")
    return [ByteRange(a, min(a + max_length, r.stop)) for a in range(r.start, r.stop, max_length)]
