"""SegmentTable: who fetches which bytes of a parallel download, and work stealing."""

from __future__ import annotations

import pytest

from rangeio._core.control import MAX_SEGMENTS, Segment
from rangeio._core.segments import ALIGN, SegmentTable, initial_workers

MiB = 1024 * 1024


def fresh(total: int, min_segment: int = ALIGN) -> SegmentTable:
    return SegmentTable([], total, min_segment, {})


def test_a_fresh_table_is_one_segment_of_the_whole_file() -> None:
    table = fresh(10 * MiB)
    first = table.claim()
    assert first is not None and table.span(first) == (0, 10 * MiB)


def test_a_second_worker_steals_the_aligned_back_half_of_the_largest_busy_segment() -> None:
    table = fresh(10 * MiB)
    owner = table.claim()
    assert owner is not None
    table.advance(owner, b"x" * 1000)
    thief = table.claim()
    assert thief is not None
    mid = table.span(thief)[0]
    assert mid % ALIGN == 0 and table.span(thief) == (mid, 10 * MiB)
    assert table.span(owner) == (1000, mid)  # the owner now stops at the split point
    assert abs(mid - (1000 + (10 * MiB - 1000) // 2)) < ALIGN


def test_no_steal_would_leave_a_piece_below_min_segment() -> None:
    table = fresh(3 * MiB, min_segment=2 * MiB)
    assert table.claim() is not None
    assert table.claim() is None


def test_an_idle_unfinished_segment_is_claimed_before_any_steal() -> None:
    table = fresh(10 * MiB)
    a = table.claim()
    b = table.claim()
    assert a is not None and b is not None
    table.release(a)
    assert table.claim() == a


def test_bytes_past_a_moved_stop_are_not_counted_and_the_table_ends_done() -> None:
    table = fresh(4 * MiB)
    owner = table.claim()
    assert owner is not None
    thief = table.claim()
    assert thief is not None
    owner_stop = table.span(owner)[1]
    # The owner's read was already in flight past the split: only bytes up to its stop count.
    table.advance(owner, b"o" * (owner_stop + 5000))
    assert table.span(owner) == (owner_stop, owner_stop)
    assert table.contiguous_prefix() == owner_stop
    assert not table.done
    table.advance(thief, b"t" * (4 * MiB - owner_stop))
    assert table.done and table.contiguous_prefix() == 4 * MiB


def test_the_table_never_holds_more_than_max_segments() -> None:
    table = fresh(1024 * MiB)
    claimed = [table.claim() for _ in range(MAX_SEGMENTS + 10)]
    assert sum(c is not None for c in claimed) == MAX_SEGMENTS
    assert len(table.snapshot()) == MAX_SEGMENTS


def test_a_resumed_table_starts_from_the_record_with_its_tails() -> None:
    segments = [Segment(0, 300_000, 1 * MiB), Segment(1 * MiB, 1 * MiB, None)]
    table = SegmentTable(segments, 2 * MiB, ALIGN, {0: b"t" * 100})
    first = table.claim()
    assert first is not None and table.span(first) == (300_000, 1 * MiB)
    second = table.claim()
    assert second is not None and table.span(second) == (1 * MiB, 2 * MiB)  # None: to the end
    assert table.contiguous_prefix() == 300_000
    assert table.durable_candidates == 300_000


def test_a_table_needs_a_positive_total() -> None:
    with pytest.raises(ValueError):
        fresh(0)


@pytest.mark.parametrize(
    ("connections", "total", "expected"), [(4, 10 * MiB, 4), (4, 2 * MiB, 2), (4, 10, 1)]
)
def test_initial_workers_gives_each_at_least_min_segment(
    connections: int, total: int, expected: int
) -> None:
    assert initial_workers(connections, total, 1 * MiB) == expected


def test_unclaimed_says_when_a_segment_with_bytes_left_has_no_worker() -> None:
    table = fresh(10 * MiB)
    owner = table.claim()
    assert owner is not None and not table.unclaimed()
    table.advance(owner, b"x" * 1000)
    table.release(owner)  # stopped (retired, or failed) before the end of its segment
    assert table.unclaimed()
    assert table.claim() == owner and not table.unclaimed()
    table.advance(owner, b"x" * (10 * MiB - 1000))
    table.release(owner)
    assert table.done and not table.unclaimed()
