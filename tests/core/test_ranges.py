"""ByteRange, RangeSet, coalesce and split, checked against a plain set-of-ints model."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rangeio._core.ranges import ByteRange, RangeSet, coalesce, split

UNIVERSE = 48
SETTINGS = settings(max_examples=200, deadline=None)


@st.composite
def byte_ranges(draw: st.DrawFn, universe: int = UNIVERSE) -> ByteRange:
    start = draw(st.integers(0, universe))
    stop = draw(st.integers(start, universe))
    return ByteRange(start, stop)


range_lists = st.lists(byte_ranges(), max_size=8)


def model(ranges: list[ByteRange]) -> set[int]:
    return {i for r in ranges for i in range(r.start, r.stop)}


def as_set(rs: RangeSet) -> set[int]:
    return model(list(rs))


def assert_normalised(rs: RangeSet) -> None:
    """Disjoint, non-adjacent, non-empty and in order: the representation is canonical."""
    items = list(rs)
    assert all(r for r in items), items
    for a, b in zip(items, items[1:]):
        assert a.stop < b.start, f"{a} and {b} touch or overlap in {rs!r}"
    assert len(rs) == len(items)
    assert rs.total == sum(len(r) for r in items)
    assert bool(rs) == bool(items)


def from_model(ints: set[int]) -> list[ByteRange]:
    """The canonical runs of a set of ints."""
    out: list[ByteRange] = []
    for i in sorted(ints):
        if out and out[-1].stop == i:
            out[-1] = ByteRange(out[-1].start, i + 1)
        else:
            out.append(ByteRange(i, i + 1))
    return out


# -- ByteRange ------------------------------------------------------------------------------


def test_byterange_rejects_negative_and_reversed() -> None:
    with pytest.raises(ValueError):
        ByteRange(-1, 3)
    with pytest.raises(ValueError):
        ByteRange(5, 4)
    assert len(ByteRange(3, 3)) == 0
    assert not ByteRange(3, 3)
    assert ByteRange(3, 7).length == 4


def test_byterange_relations() -> None:
    r = ByteRange(10, 20)
    assert r.contains(ByteRange(10, 20))
    assert r.contains(ByteRange(12, 15))
    assert not r.contains(ByteRange(9, 15))
    assert not r.contains(ByteRange(15, 21))
    assert r.overlaps(ByteRange(19, 30))
    assert not r.overlaps(ByteRange(20, 30)), "half-open: adjacent is not overlapping"
    assert not r.overlaps(ByteRange(0, 10))
    assert r.intersection(ByteRange(15, 30)) == ByteRange(15, 20)
    assert r.intersection(ByteRange(20, 30)) is None
    assert r.clamp(15) == ByteRange(10, 15)
    assert r.clamp(5) == ByteRange(5, 5)
    assert r.clamp(100) == r


@SETTINGS
@given(byte_ranges(), byte_ranges())
def test_byterange_relations_match_model(a: ByteRange, b: ByteRange) -> None:
    ma, mb = model([a]), model([b])
    assert a.overlaps(b) == bool(ma & mb)
    inter = a.intersection(b)
    assert (model([inter]) if inter else set()) == ma & mb
    if a:
        assert a.contains(b) == (mb <= ma and (bool(b) or a.start <= b.start <= a.stop))


# -- RangeSet -------------------------------------------------------------------------------


@SETTINGS
@given(range_lists)
def test_rangeset_construction_normalises(ranges: list[ByteRange]) -> None:
    rs = RangeSet(ranges)
    assert_normalised(rs)
    assert as_set(rs) == model(ranges)
    assert list(rs) == from_model(model(ranges))


@SETTINGS
@given(range_lists, range_lists)
def test_rangeset_union_matches_model(a: list[ByteRange], b: list[ByteRange]) -> None:
    left = RangeSet(a)
    before = left.copy()
    result = left.union(b)
    assert_normalised(result)
    assert as_set(result) == model(a) | model(b)
    assert left == before, "union must not mutate its operand"


@SETTINGS
@given(range_lists, range_lists)
def test_rangeset_difference_matches_model(a: list[ByteRange], b: list[ByteRange]) -> None:
    left = RangeSet(a)
    before = left.copy()
    result = left.difference(b)
    assert_normalised(result)
    assert as_set(result) == model(a) - model(b)
    assert left == before, "difference must not mutate its operand"


@SETTINGS
@given(st.lists(st.tuples(st.booleans(), byte_ranges()), max_size=16))
def test_rangeset_add_remove_sequence_matches_model(ops: list[tuple[bool, ByteRange]]) -> None:
    rs = RangeSet()
    ref: set[int] = set()
    for is_add, r in ops:
        if is_add:
            rs.add(r)
            ref |= model([r])
        else:
            rs.remove(r)
            ref -= model([r])
        assert_normalised(rs)
        assert as_set(rs) == ref


@SETTINGS
@given(range_lists, byte_ranges())
def test_rangeset_covers_matches_model(a: list[ByteRange], probe: ByteRange) -> None:
    assert RangeSet(a).covers(probe) == (model([probe]) <= model(a))


@SETTINGS
@given(range_lists, byte_ranges())
def test_rangeset_gaps_matches_model(a: list[ByteRange], within: ByteRange) -> None:
    gaps = RangeSet(a).gaps(within)
    assert gaps == from_model(model([within]) - model(a))


def test_rangeset_examples() -> None:
    rs = RangeSet([(0, 5), (10, 15)])
    assert list(rs) == [ByteRange(0, 5), ByteRange(10, 15)]
    rs.add(ByteRange(5, 10))
    assert list(rs) == [ByteRange(0, 15)], "adjacent ranges fold into one"
    rs.remove(ByteRange(3, 12))
    assert list(rs) == [ByteRange(0, 3), ByteRange(12, 15)]
    assert rs.gaps(ByteRange(0, 20)) == [ByteRange(3, 12), ByteRange(15, 20)]
    assert rs.covers(ByteRange(12, 15))
    assert not rs.covers(ByteRange(2, 4))
    assert rs.covers(ByteRange(7, 7)), "the empty range is always covered"
    assert rs != RangeSet([(0, 3)])
    assert RangeSet() == RangeSet([(4, 4)])
    assert rs.__eq__(object()) is NotImplemented


# -- coalesce -------------------------------------------------------------------------------


@SETTINGS
@given(range_lists, st.integers(0, 10))
def test_coalesce_properties(ranges: list[ByteRange], max_gap: int) -> None:
    out = coalesce(ranges, max_gap)
    assert all(r for r in out)
    for a, b in zip(out, out[1:]):
        assert a.stop < b.start, "outputs are sorted and disjoint"
        assert b.start - a.stop > max_gap, "outputs closer than max_gap should have merged"
    for r in ranges:
        if r:
            holders = [o for o in out if o.contains(r)]
            assert len(holders) == 1, f"{r} lies in {holders}"
    # Every output byte is either an input byte or part of a gap of at most max_gap bytes.
    covered = model(ranges)
    assert model(out) >= covered
    assert as_set(RangeSet(out)) == model(out)
    for o in out:
        assert o.start in covered and o.stop - 1 in covered, "outputs start and end on input"
        run = 0
        for i in range(o.start, o.stop):
            run = 0 if i in covered else run + 1
            assert run <= max_gap


def test_coalesce_examples() -> None:
    rs = [ByteRange(20, 30), ByteRange(0, 10), ByteRange(12, 14), ByteRange(5, 5)]
    assert coalesce(rs, 0) == [ByteRange(0, 10), ByteRange(12, 14), ByteRange(20, 30)]
    assert coalesce(rs, 2) == [ByteRange(0, 14), ByteRange(20, 30)]
    assert coalesce(rs, 6) == [ByteRange(0, 30)]
    assert coalesce([ByteRange(0, 10), ByteRange(10, 20)], 0) == [ByteRange(0, 20)]
    assert coalesce([ByteRange(0, 10), ByteRange(2, 3)], 0) == [ByteRange(0, 10)]
    assert coalesce([], 5) == []


# -- split ----------------------------------------------------------------------------------


@SETTINGS
@given(byte_ranges(universe=200), st.integers(1, 64))
def test_split_properties(r: ByteRange, max_length: int) -> None:
    pieces = split(r, max_length)
    assert all(0 < len(p) <= max_length for p in pieces)
    for a, b in zip(pieces, pieces[1:]):
        assert a.stop == b.start, "pieces are contiguous and in order"
    if r:
        assert pieces[0].start == r.start and pieces[-1].stop == r.stop
        # Only the last piece may be short: no needless extra requests.
        assert all(len(p) == max_length for p in pieces[:-1])
        assert len(pieces) == -(-len(r) // max_length)
    else:
        assert pieces == []


def test_split_rejects_non_positive() -> None:
    with pytest.raises(ValueError):
        split(ByteRange(0, 10), 0)
    with pytest.raises(ValueError):
        split(ByteRange(0, 10), -3)
    assert split(ByteRange(0, 10), 4) == [ByteRange(0, 4), ByteRange(4, 8), ByteRange(8, 10)]
