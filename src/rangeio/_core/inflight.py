"""Which byte ranges are being fetched right now, so that concurrent readers share one request."""

from __future__ import annotations

from collections.abc import Iterable

from rangeio._core.ranges import ByteRange, RangeSet
from rangeio._core.records import Record


class Claim(Record):
    """What a reader must do for a plan: fetch ``fetch`` itself, and wait for the fetches
    ``wait_for`` (ids) that other readers already started."""

    __slots__ = ("fetch", "wait_for")
    fetch: list[ByteRange]
    wait_for: list[int]

    def __init__(self, fetch: list[ByteRange], wait_for: list[int]) -> None:
        object.__setattr__(self, "fetch", fetch)
        object.__setattr__(self, "wait_for", wait_for)


class InflightTable:
    """Ranges being fetched, by id. The shell keeps one future per id; this table only decides
    who fetches what."""

    __slots__ = ("_ranges", "_next_id")

    def __init__(self) -> None:
        self._ranges: dict[int, ByteRange] = {}
        self._next_id = 0

    def __len__(self) -> int:
        return len(self._ranges)

    def claim(self, plan: Iterable[ByteRange]) -> Claim:
        """Split ``plan`` into the parts nobody fetches yet and the fetches that cover the rest.

        A planned range that overlaps an in-flight one is trimmed, never requested twice; the
        caller registers what it fetches with ``add`` before it lets go of its lock.
        """
        fetch: list[ByteRange] = []
        wait_for: set[int] = set()
        for planned in plan:
            rest = RangeSet([planned])
            for fetch_id, busy in self._ranges.items():
                if busy.overlaps(planned):
                    wait_for.add(fetch_id)
                    rest.remove(busy)
            fetch.extend(rest)
        return Claim(fetch, sorted(wait_for))

    def add(self, r: ByteRange) -> int:
        fetch_id = self._next_id
        self._next_id += 1
        self._ranges[fetch_id] = r
        return fetch_id

    def done(self, fetch_id: int) -> None:
        self._ranges.pop(fetch_id, None)
