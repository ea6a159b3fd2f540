"""InflightTable: concurrent readers share one request per byte range."""

from __future__ import annotations

from rangeio._core.inflight import InflightTable
from rangeio._core.ranges import ByteRange


def test_an_empty_table_fetches_the_whole_plan_and_waits_for_nothing() -> None:
    claim = InflightTable().claim([ByteRange(0, 100), ByteRange(200, 300)])
    assert (claim.fetch, claim.wait_for) == ([ByteRange(0, 100), ByteRange(200, 300)], [])


def test_a_range_in_flight_is_waited_for_and_never_requested_twice() -> None:
    table = InflightTable()
    busy = table.add(ByteRange(50, 150))
    claim = table.claim([ByteRange(0, 200)])
    assert claim.fetch == [ByteRange(0, 50), ByteRange(150, 200)]
    assert claim.wait_for == [busy]


def test_a_plan_covered_by_fetches_fetches_nothing_and_waits_for_each_once() -> None:
    table = InflightTable()
    a = table.add(ByteRange(0, 100))
    b = table.add(ByteRange(100, 200))
    claim = table.claim([ByteRange(10, 20), ByteRange(50, 150)])
    assert claim.fetch == []
    assert claim.wait_for == [a, b]


def test_touching_is_not_overlapping() -> None:
    table = InflightTable()
    table.add(ByteRange(0, 100))
    claim = table.claim([ByteRange(100, 200)])
    assert (claim.fetch, claim.wait_for) == ([ByteRange(100, 200)], [])


def test_a_finished_fetch_leaves_the_table_and_ids_are_never_reused() -> None:
    table = InflightTable()
    first = table.add(ByteRange(0, 100))
    table.done(first)
    assert len(table) == 0
    assert table.claim([ByteRange(0, 100)]).wait_for == []
    assert table.add(ByteRange(0, 100)) != first
    table.done(first)  # done twice (a fetch that failed, then was cleaned up) is harmless
    assert len(table) == 1
