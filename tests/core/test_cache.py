"""ByteCache against a reference buffer: exact bytes, budget, protection, pinning, merging."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rangeio._core.cache import ByteCache
from rangeio._core.ranges import ByteRange

SETTINGS = settings(max_examples=200, deadline=None)
N = 160
REF = bytes((i * 37 + 11) % 251 for i in range(N))


def cached_set(cache: ByteCache) -> set[int]:
    return {i for seg in cache.segments() for i in range(seg.start, seg.stop)}


def runs(ints: set[int]) -> list[ByteRange]:
    out: list[ByteRange] = []
    for i in sorted(ints):
        if out and out[-1].stop == i:
            out[-1] = ByteRange(out[-1].start, i + 1)
        else:
            out.append(ByteRange(i, i + 1))
    return out


def span_set(r: ByteRange) -> set[int]:
    return set(range(r.start, r.stop))


@dataclass
class Insert:
    start: int
    length: int
    protect: ByteRange | None
    pin: bool
    as_bytearray: bool


@dataclass
class Read:
    start: int
    length: int


@dataclass
class Clear:
    pass


@st.composite
def ranges_in(draw: st.DrawFn, max_len: int = 60) -> ByteRange:
    start = draw(st.integers(0, N))
    stop = draw(st.integers(start, min(N, start + max_len)))
    return ByteRange(start, stop)


inserts = st.builds(
    Insert,
    start=st.integers(0, N - 1),
    length=st.integers(0, 60),
    protect=st.one_of(st.none(), ranges_in()),
    pin=st.just(False),
    as_bytearray=st.booleans(),
)
pinned_inserts = st.builds(
    Insert,
    start=st.integers(0, N - 1),
    length=st.integers(1, 20),
    protect=st.one_of(st.none(), ranges_in()),
    pin=st.just(True),
    as_bytearray=st.just(False),
)
operations = st.lists(
    st.one_of(
        inserts,
        inserts,
        inserts,
        pinned_inserts,
        st.builds(Read, st.integers(0, N), st.integers(0, 60)),
        st.just(Clear()),
    ),
    max_size=30,
)


def check_consistency(cache: ByteCache, merge_limit: int, pieces: list[ByteRange]) -> None:
    segs = cache.segments()
    for a, b in zip(segs, segs[1:]):
        assert a.stop <= b.start, f"segments overlap or are out of order: {segs}"
    assert all(s for s in segs), "no empty segments"
    assert cache.size == sum(len(s) for s in segs)
    assert len(cache) == len(segs)
    for seg in segs:
        # The cache only ever returns the reference bytes: nothing is shifted or mixed up.
        assert cache.get(seg) == REF[seg.start : seg.stop]
        if len(seg) > merge_limit:
            assert any(p.contains(seg) for p in pieces), (
                f"segment {seg} exceeds merge limit {merge_limit} and was not one insert"
            )


@SETTINGS
@given(
    ops=operations,
    budget=st.one_of(st.integers(0, 10), st.integers(0, 100)),
    merge_limit=st.integers(1, 50),
    probes=st.lists(ranges_in(), min_size=1, max_size=4),
)
def test_cache_against_reference(
    ops: list[Insert | Read | Clear], budget: int, merge_limit: int, probes: list[ByteRange]
) -> None:
    cache = ByteCache(budget, merge_limit=merge_limit)
    pinned: set[int] = set()
    pinned_pieces: list[ByteRange] = []
    pieces: list[ByteRange] = []
    added = 0
    for op in ops:
        if isinstance(op, Clear):
            cache.clear()
            assert cache.size == 0 and cache.segments() == [] and len(cache) == 0
            pinned.clear()
            pinned_pieces.clear()
            added = cache.evicted_bytes = 0
            continue
        if isinstance(op, Read):
            want = ByteRange(op.start, min(N, op.start + op.length))
            before = cached_set(cache)
            got = cache.get(want)
            if span_set(want) <= before:
                assert got == REF[want.start : want.stop]
            else:
                assert got is None
            out = bytearray(len(want))
            n = cache.read_into(want.start, memoryview(out))
            assert n == min(len(want), cache.contiguous_from(want.start))
            assert bytes(out[:n]) == REF[want.start : want.start + n]
            assert cached_set(cache) == before, "reads never change what is cached"
            continue

        span = ByteRange(op.start, min(N, op.start + op.length))
        data: bytes | bytearray = REF[span.start : span.stop]
        if not span:
            segments = cache.segments()
            cache.insert(span.start, data, protect=op.protect, pin=op.pin)
            assert cache.segments() == segments, "an empty insert changes nothing"
            continue
        if op.as_bytearray:
            data = bytearray(data)
        before = cached_set(cache)
        gaps = runs(span_set(span) - before)
        pieces.extend(gaps)
        added += sum(len(g) for g in gaps)
        if op.pin:
            # The whole span is pinned; a segment cached before that reaches past it, whole.
            pinned |= span_set(span)
            for seg in cache.segments():
                if seg.overlaps(span):
                    pinned |= span_set(seg)
            pinned_pieces.extend(gaps)
        cache.insert(span.start, data, protect=op.protect, pin=op.pin)
        after = cached_set(cache)

        protect = op.protect if op.protect is not None else span
        assert after >= (before | span_set(span)) & span_set(protect), "protected bytes evicted"
        assert after >= pinned, "pinned bytes evicted"
        for piece in pinned_pieces:
            assert piece in cache.segments(), "a pinned piece is kept whole and never merged"
        assert after <= before | span_set(span), "insert only adds the inserted bytes"
        assert cache.size == added - cache.evicted_bytes
        if cache.size > budget:
            # Over budget only with nothing left to evict: pinned bytes and the protected range.
            extra = after - pinned - span_set(protect)
            assert not extra, f"budget {budget} exceeded while {runs(extra)} was evictable"
            assert cache.size <= budget + len(protect) + len(pinned)
        check_consistency(cache, merge_limit, pieces)

    cached = cached_set(cache)
    for probe in probes:
        assert cache.missing(probe) == runs(span_set(probe) - cached)
        run = 0
        while probe.start + run in cached:
            run += 1
        assert cache.contiguous_from(probe.start) == run


def test_insert_keeps_existing_bytes_and_fills_holes() -> None:
    cache = ByteCache(1000)
    cache.insert(10, REF[10:20])
    cache.insert(30, REF[30:40])
    cache.insert(0, REF[0:50])
    assert cache.get(ByteRange(0, 50)) == REF[:50]
    assert cache.size == 50
    assert cache.missing(ByteRange(0, 60)) == [ByteRange(50, 60)]


def test_adjacent_inserts_merge_up_to_the_limit() -> None:
    cache = ByteCache(1000, merge_limit=20)
    cache.insert(0, REF[0:10])
    cache.insert(10, REF[10:20])
    assert cache.segments() == [ByteRange(0, 20)]
    cache.insert(20, REF[20:25])
    assert cache.segments() == [ByteRange(0, 20), ByteRange(20, 25)], "20 + 5 > limit"
    cache.insert(30, REF[30:35])
    cache.insert(25, REF[25:30])
    assert cache.segments() == [ByteRange(0, 20), ByteRange(20, 35)], "joined on both sides"
    assert cache.get(ByteRange(0, 35)) == REF[:35]
    assert cache.contiguous_from(3) == 32


def test_pinned_segments_do_not_merge() -> None:
    cache = ByteCache(1000)
    cache.insert(0, REF[0:10], pin=True)
    cache.insert(10, REF[10:20])
    cache.insert(20, REF[20:30], pin=True)
    assert cache.segments() == [ByteRange(0, 10), ByteRange(10, 20), ByteRange(20, 30)]


def test_eviction_is_least_recently_used() -> None:
    cache = ByteCache(30)
    cache.insert(0, REF[0:10])
    cache.insert(20, REF[20:30])
    cache.insert(40, REF[40:50])
    assert cache.get(ByteRange(0, 10)) is not None  # touch the oldest
    cache.insert(60, REF[60:70])
    assert cache.segments() == [ByteRange(0, 10), ByteRange(40, 50), ByteRange(60, 70)]
    assert cache.evicted_bytes == 10
    out = bytearray(5)
    assert cache.read_into(42, memoryview(out)) == 5  # now [0, 10) is the oldest
    cache.insert(80, REF[80:90])
    assert cache.segments() == [ByteRange(40, 50), ByteRange(60, 70), ByteRange(80, 90)]


def test_protected_range_survives_a_zero_budget() -> None:
    cache = ByteCache(0)
    cache.insert(0, REF[0:40], protect=ByteRange(10, 20))
    assert cache.segments() == [ByteRange(10, 20)]
    assert cache.get(ByteRange(10, 20)) == REF[10:20]
    assert cache.evicted_bytes == 30
    cache.insert(50, REF[50:60])
    assert cache.segments() == [ByteRange(50, 60)], "the old protection is gone"


def test_merged_segment_is_trimmed_to_the_protected_range() -> None:
    cache = ByteCache(0, merge_limit=1000)
    cache.insert(0, REF[0:100])
    cache.insert(100, REF[100:110])
    # [0, 100) merged into the new segment; only the protected [100, 110) may outlive the budget.
    assert cache.segments() == [ByteRange(100, 110)]
    assert cache.size == 10


def test_pinning_covers_bytes_cached_before() -> None:
    cache = ByteCache(10)
    cache.insert(10, REF[10:20])
    cache.insert(0, REF[0:30], pin=True)
    cache.insert(50, REF[50:60])
    cache.insert(70, REF[70:80])
    assert cache.get(ByteRange(0, 30)) == REF[0:30], "the whole pinned span stays"


def test_pinned_bytes_survive_any_pressure() -> None:
    cache = ByteCache(5)
    cache.insert(0, REF[0:50], pin=True)
    cache.insert(60, REF[60:70])
    cache.insert(80, REF[80:90])
    assert cache.get(ByteRange(0, 50)) == REF[0:50]
    assert cache.segments() == [ByteRange(0, 50), ByteRange(80, 90)]


def test_small_things() -> None:
    cache = ByteCache(10)
    cache.insert(5, b"")
    assert cache.size == 0 and cache.segments() == []
    assert cache.get(ByteRange(3, 3)) == b""
    assert cache.get(ByteRange(0, 1)) is None
    assert cache.missing(ByteRange(0, 4)) == [ByteRange(0, 4)]
    assert cache.missing(ByteRange(2, 2)) == []
    assert cache.contiguous_from(0) == 0
    assert cache.read_into(0, memoryview(bytearray(3))) == 0
    with pytest.raises(ValueError):
        ByteCache(-1)
