"""The read planner: plan_read, plan_vectored, AccessPattern and the opening request."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rangeio._core.cache import ByteCache
from rangeio._core.headers import RangeSpec
from rangeio._core.planner import (
    READ_WINDOW_MAX,
    ROWS_AHEAD,
    STREAM_GROWTH,
    STRIDES_AHEAD,
    AccessPattern,
    KiB,
    MiB,
    ReadPolicy,
    drain_instead_of_abandoning,
    fit_readahead,
    opening_specs,
    plan_read,
    plan_vectored,
)
from rangeio._core.ranges import ByteRange

SETTINGS = settings(max_examples=200, deadline=None)
N = 200


def cached_set(cache: ByteCache) -> set[int]:
    return {i for seg in cache.segments() for i in range(seg.start, seg.stop)}


def span_set(r: ByteRange) -> set[int]:
    return set(range(r.start, r.stop))


def runs(ints: set[int]) -> list[ByteRange]:
    out: list[ByteRange] = []
    for i in sorted(ints):
        if out and out[-1].stop == i:
            out[-1] = ByteRange(out[-1].start, i + 1)
        else:
            out.append(ByteRange(i, i + 1))
    return out


@st.composite
def caches(draw: st.DrawFn) -> ByteCache:
    cache = ByteCache(10 * N, merge_limit=draw(st.integers(1, 64)))
    for _ in range(draw(st.integers(0, 8))):
        start = draw(st.integers(0, N - 1))
        length = draw(st.integers(1, 40))
        cache.insert(start, bytes(min(length, N - start)))
    return cache


@st.composite
def policies(draw: st.DrawFn) -> ReadPolicy:
    minimum = draw(st.integers(1, 40))
    return ReadPolicy(
        minimum_range_request_bytes=minimum,
        readahead_max=draw(st.integers(0, 80)),
        max_request_bytes=draw(st.integers(minimum, 90)),
        gap_fill_bytes=draw(st.integers(0, 20)),
        coalesce_gap_bytes=draw(st.integers(0, 30)),
        stream_after_bytes=draw(st.integers(1, 100)),
        stride_gap_bytes=draw(st.integers(0, 100)),
        stride_readahead_max=draw(st.integers(0, 120)),
    )


@st.composite
def wants(draw: st.DrawFn) -> ByteRange:
    start = draw(st.integers(0, N + 10))
    return ByteRange(start, start + draw(st.integers(0, 60)))


def assert_sorted_disjoint(requests: list[ByteRange]) -> None:
    assert all(r for r in requests), "no empty requests"
    for a, b in zip(requests, requests[1:]):
        assert a.stop <= b.start, f"requests overlap or are out of order: {requests}"


def cached_runs_inside(requests: list[ByteRange], cached: set[int]) -> list[ByteRange]:
    return [run for r in requests for run in runs(span_set(r) & cached)]


# -- plan_read ------------------------------------------------------------------------------


@SETTINGS
@given(
    want=wants(),
    cache=caches(),
    size=st.integers(0, N),
    policy=policies(),
    readahead=st.integers(0, 50),
)
def test_plan_read_properties(
    want: ByteRange, cache: ByteCache, size: int, policy: ReadPolicy, readahead: int
) -> None:
    cached = cached_set(cache)
    requests = plan_read(want, cache, size, policy, readahead)
    assert_sorted_disjoint(requests)
    clamped = want.clamp(size)
    if not (span_set(clamped) - cached):
        assert requests == [], "nothing to fetch when the read is cached (or past the end)"
        return
    assert requests, "missing bytes need a request"
    asked = {i for r in requests for i in range(r.start, r.stop)}
    assert all(r.stop <= size for r in requests), "never past the size"
    assert all(len(r) <= policy.max_request_bytes for r in requests)
    # The target: the read, its read-ahead, and at least minimum_range_request_bytes.
    stop = min(size, max(want.stop + readahead, want.start + policy.minimum_range_request_bytes))
    if size - stop <= policy.gap_fill_bytes:
        stop = size  # a short rest comes with the read
    target = span_set(ByteRange(clamped.start, stop))
    assert target - cached <= asked, "every missing byte of the target is asked for"
    assert asked <= target, "nothing beyond the target is asked for"
    for island in cached_runs_inside(requests, cached):
        assert len(island) <= policy.gap_fill_bytes, f"re-fetches cached {island}"
    for r in requests:
        # Filling an island is fine, but no request starts or ends on a cached byte, nor is a
        # round trip spent on cached bytes alone (a split can land inside an island).
        assert r.start not in cached and r.stop - 1 not in cached, f"{r} has cached ends"
    for a, b in zip(requests, requests[1:]):
        if b.start - a.stop <= policy.gap_fill_bytes:
            assert b.start - a.start >= policy.max_request_bytes, f"{a} and {b} should merge"


def test_plan_read_examples() -> None:
    policy = ReadPolicy(
        minimum_range_request_bytes=10, max_request_bytes=25, gap_fill_bytes=4, readahead_max=100
    )
    cache = ByteCache(1000)
    cache.insert(20, bytes(3))  # a small island: re-fetched
    cache.insert(40, bytes(10))  # a big one: skipped
    assert plan_read(ByteRange(0, 5), cache, 100, policy) == [ByteRange(0, 10)]
    assert plan_read(ByteRange(0, 5), cache, 7, policy) == [ByteRange(0, 7)]
    assert plan_read(ByteRange(10, 60), cache, 100, policy) == [
        ByteRange(10, 35),
        ByteRange(35, 40),
        ByteRange(50, 60),
    ]
    assert plan_read(ByteRange(0, 5), cache, 1000, policy, readahead=30) == [
        ByteRange(0, 25),
        ByteRange(25, 35),
    ]
    assert plan_read(ByteRange(40, 50), cache, 100, policy) == []
    # A split landing inside a re-fetched island does not make a request of cached bytes only.
    tight = ReadPolicy(minimum_range_request_bytes=1, max_request_bytes=2, gap_fill_bytes=4)
    assert plan_read(ByteRange(18, 26), cache, 100, tight) == [
        ByteRange(18, 20),
        ByteRange(23, 25),
        ByteRange(25, 26),
    ]
    assert plan_read(ByteRange(100, 120), cache, 100, policy) == []
    assert plan_read(ByteRange(5, 5), cache, 100, policy) == []


# -- AccessPattern --------------------------------------------------------------------------


def test_access_pattern_doubles_on_sequential_reads_and_resets_on_seek() -> None:
    policy = ReadPolicy(minimum_range_request_bytes=8 * KiB, readahead_max=64 * KiB)
    pattern = AccessPattern(policy)
    pos = 0
    windows = []
    for _ in range(7):
        windows.append(pattern.observe(ByteRange(pos, pos + 100)))
        pos += 100
    assert windows == [0, 8 * KiB, 16 * KiB, 32 * KiB, 64 * KiB, 64 * KiB, 64 * KiB]
    assert pattern.sequential_run == 6
    assert pattern.window == 64 * KiB
    # A seek (back, or further forward than rows of tiles are apart): no read-ahead at all.
    assert pattern.observe(ByteRange(10_000_000, 10_000_100)) == 0
    assert pattern.sequential_run == 0
    assert pattern.observe(ByteRange(10_000_100, 10_000_200)) == 8 * KiB
    # Re-reading the same bytes is not sequential either.
    assert pattern.observe(ByteRange(10_000_100, 10_000_200)) == 0


def test_access_pattern_streaming_threshold() -> None:
    pattern = AccessPattern(ReadPolicy(stream_after_bytes=35))
    assert not pattern.is_streaming
    pattern.observe(ByteRange(100, 110))
    for i in range(1, 3):
        pattern.observe(ByteRange(100 + i * 10, 110 + i * 10))
        assert not pattern.is_streaming  # 20, then 30 bytes read in the run
    pattern.observe(ByteRange(130, 140))
    assert not pattern.is_streaming, "the read that crosses the threshold is not streamed"
    pattern.observe(ByteRange(140, 150))
    assert pattern.is_streaming, "the next one is"
    pattern.observe(ByteRange(500, 510))
    assert not pattern.is_streaming


def test_a_big_read_from_byte_zero_streams_at_once() -> None:
    pattern = AccessPattern(ReadPolicy(stream_after_bytes=1000))
    pattern.observe(ByteRange(0, 1000))
    assert pattern.is_streaming
    pattern.observe(ByteRange(5000, 6000))  # the same size elsewhere is a random read
    assert not pattern.is_streaming


def test_streams_are_bounded_and_grow_with_the_run() -> None:
    policy = ReadPolicy(stream_after_bytes=1 * MiB)
    pattern = AccessPattern(policy)
    pos = 5 * MiB
    lengths = []
    for _ in range(64):
        pattern.observe(ByteRange(pos, pos + 64 * KiB))
        pos += 64 * KiB
        lengths.append(pattern.stream_length())
    assert lengths[0] == 1 * MiB, "never below stream_after_bytes"
    assert lengths[-1] == STREAM_GROWTH * 4 * MiB, "a multiple of what the run has read"
    # A copy: streams of 4, 20, 100 MiB... cover 1 GiB in a few requests (a round trip each).
    covered, streams = 0, 0
    while covered < 1024 * MiB:
        covered += max(policy.stream_after_bytes, STREAM_GROWTH * max(covered, 1 * MiB))
        streams += 1
    assert streams <= 5
    pattern.observe(ByteRange(100, 200))  # a jump: the next run starts small again
    assert pattern.stream_length() == 1 * MiB
    # A copy (a big first read at byte 0) streams the rest of the file while it stays
    # sequential; any jump ends that.
    pattern.observe(ByteRange(0, 1 * MiB))
    assert pattern.is_streaming and pattern.stream_length() is None
    pattern.observe(ByteRange(1 * MiB, 2 * MiB))
    assert pattern.stream_length() is None
    pattern.observe(ByteRange(3 * MiB, 4 * MiB))
    assert pattern.stream_length() == STREAM_GROWTH * 1 * MiB


def test_read_ahead_fits_the_cache() -> None:
    assert fit_readahead(8 * MiB, 4 * KiB, 32 * MiB) == 8 * MiB
    assert fit_readahead(8 * MiB, 4 * KiB, 512 * KiB) == 508 * KiB
    assert fit_readahead(8 * MiB, 64 * KiB, 64 * KiB) == 0
    assert fit_readahead(0, 4 * KiB, 64 * KiB) == 0


def test_a_stream_with_little_left_is_drained() -> None:
    policy = ReadPolicy(stream_drain_bytes=256 * KiB)
    assert drain_instead_of_abandoning(0, policy)
    assert drain_instead_of_abandoning(256 * KiB, policy)
    assert not drain_instead_of_abandoning(256 * KiB + 1, policy)
    assert not drain_instead_of_abandoning(1, ReadPolicy(stream_drain_bytes=0))


def test_lean_after_two_random_reads_and_back_when_reads_continue() -> None:
    policy = ReadPolicy(minimum_range_request_bytes=8 * KiB)
    pattern = AccessPattern(policy)
    pattern.observe(ByteRange(10_000, 14_096))
    assert pattern.minimum_request == 8 * KiB
    pattern.observe(ByteRange(90_000, 94_096))
    assert pattern.lean and pattern.minimum_request == 0
    pattern.observe(ByteRange(50_000, 54_096))
    assert pattern.lean
    # The caller wanted more than one buffer: the next raw read continues the lean one.
    pattern.observe(ByteRange(54_096, 58_192))
    assert not pattern.lean
    pattern.observe(ByteRange(10, 20))
    pattern.observe(ByteRange(700_000, 700_100))
    assert not pattern.lean and pattern.minimum_request == 8 * KiB


def test_access_pattern_respects_readahead_max_below_minimum() -> None:
    pattern = AccessPattern(ReadPolicy(minimum_range_request_bytes=100, readahead_max=0))
    assert [pattern.observe(ByteRange(i, i + 1)) for i in range(5)] == [0, 0, 0, 0, 0]


@SETTINGS
@given(policy=policies(), steps=st.lists(st.tuples(st.booleans(), st.integers(1, 30)), max_size=20))
def test_access_pattern_window_bounds(policy: ReadPolicy, steps: list[tuple[bool, int]]) -> None:
    pattern = AccessPattern(policy)
    pos = 0
    previous = 0
    for sequential, length in steps:
        if not sequential:
            pos += 1000
        was_sequential = pattern.sequential_run
        window = pattern.observe(ByteRange(pos, pos + length))
        cluster_cap = min(policy.cluster_readahead_max, policy.max_request_bytes - length)
        if sequential and pos > 0 and was_sequential:
            assert 0 <= window <= policy.readahead_max
            assert window >= min(previous, policy.readahead_max), "sequential never shrinks"
        elif not sequential:
            # A jump forward after a run is read through as rows, within one request.
            assert 0 <= window <= max(0, cluster_cap)
        previous = window
        pos += length


def test_forward_skips_become_strided_after_two_and_cover_the_next_strides() -> None:
    policy = ReadPolicy(stride_gap_bytes=64 * KiB, stride_readahead_max=1 * MiB)
    pattern = AccessPattern(policy)
    # tar headers as the buffered layer reads them: 4 KiB at each header, members between.
    assert pattern.observe(ByteRange(0, 4096)) == 0
    assert pattern.observe(ByteRange(20_000, 24_096)) == 0, "one forward skip is not a pattern"
    assert not pattern.strided and pattern.lean, "...and it counts as a random read"
    window = pattern.observe(ByteRange(50_000, 54_096))
    assert pattern.strided and not pattern.lean
    assert window == STRIDES_AHEAD * 30_000, "the next few strides"
    assert pattern.observe(ByteRange(70_000, 74_096)) == 2 * window, "doubling"
    windows = [pattern.observe(ByteRange(s, s + 4096)) for s in range(90_000, 400_000, 20_000)]
    assert windows[-1] == 1 * MiB, "up to stride_readahead_max"
    assert all(a <= b for a, b in zip(windows, windows[1:]))
    # A sequential read inside the run (the next header just past the buffer) keeps the window.
    assert pattern.observe(ByteRange(394_096, 398_192)) >= 1 * MiB
    assert pattern.observe(ByteRange(410_000, 414_096)) == 1 * MiB
    # A jump backwards, or further than any window covers, is random: no read-ahead.
    assert pattern.observe(ByteRange(10, 4106)) == 0 and not pattern.strided
    assert pattern.observe(ByteRange(30_000, 34_096)) == 0
    assert pattern.observe(ByteRange(34_096 + 2 * MiB, 38_192 + 2 * MiB)) == 0


def test_skips_averaging_more_than_stride_gap_are_random_reads() -> None:
    policy = ReadPolicy(stride_gap_bytes=64 * KiB, stride_readahead_max=8 * MiB)
    pattern = AccessPattern(policy)
    pos = 0
    for _ in range(10):  # 200 KiB skips: each header is fetched alone, lean
        assert pattern.observe(ByteRange(pos, pos + 4096)) == 0
        pos += 4096 + 200 * KiB
    assert pattern.lean and not pattern.strided
    # Small skips bring the average down (recent skips weigh most): strided again.
    for _ in range(4):
        pattern.observe(ByteRange(pos, pos + 4096))
        pos += 4096 + 1000
    assert pattern.strided and pattern.window > 0
    # One long skip inside a run of short ones does not end it.
    pos += 100 * KiB
    assert pattern.observe(ByteRange(pos, pos + 4096)) > 0


def test_strided_read_ahead_fits_one_request_and_can_be_turned_off() -> None:
    tight = ReadPolicy(max_request_bytes=100 * KiB, stride_readahead_max=8 * MiB)
    pattern = AccessPattern(tight)
    for i in range(8):
        window = pattern.observe(ByteRange(i * 30_000, i * 30_000 + 4096))
    assert window == 100 * KiB - 4096, "the read and its read-ahead make one request"
    for off in (ReadPolicy(stride_readahead_max=0), ReadPolicy(stride_gap_bytes=0)):
        pattern = AccessPattern(off)
        assert [pattern.observe(ByteRange(i * 9000, i * 9000 + 100)) for i in range(6)] == [0] * 6


@SETTINGS
@given(
    policy=policies(),
    steps=st.lists(st.tuples(st.integers(-200, 200), st.integers(1, 30)), max_size=30),
)
def test_access_pattern_strided_bounds(policy: ReadPolicy, steps: list[tuple[int, int]]) -> None:
    pattern = AccessPattern(policy)
    pos = 500
    forward_skips = 0
    strided_cap = min(policy.stride_readahead_max, policy.max_request_bytes)
    for skip, length in steps:
        pos = max(0, pos + skip)
        before, last_start = pattern._last_stop, pattern._last_start
        window = pattern.observe(ByteRange(pos, pos + length))
        if before is not None and last_start is not None and last_start < pos < before:
            pos = max(pos + length, before)
            continue  # the continuation of a short read: the same logical read
        assert 0 <= window <= max(policy.readahead_max, strided_cap)
        gap = None if before is None else pos - before
        if gap is not None and 0 < gap <= policy.stride_readahead_max:
            forward_skips += 1
        elif gap != 0:
            forward_skips = 0
        if pattern.strided:
            assert forward_skips >= 2, "strided only after two forward skips in a row"
            assert gap is not None and 0 < gap <= policy.stride_gap_bytes * 2
            assert window <= max(0, policy.max_request_bytes - length), "one request"
        elif gap is not None and gap != 0:
            assert window == 0, "a read that is neither sequential nor strided gets none"
        pos += length


def simulate_buffered_reads(
    reads: list[int], size: int, policy: ReadPolicy, buffer: int = 4096
) -> tuple[list[ByteRange], ByteCache]:
    """The requests rangeio's planner makes for ``read(512)`` at each offset behind a
    ``buffer``-byte io.BufferedReader: what tarfile's listing does, without the network."""
    cache = ByteCache(64 * MiB)
    pattern = AccessPattern(policy)
    requests: list[ByteRange] = []
    held: ByteRange | None = None  # the buffered layer's buffer
    for pos in reads:
        if held is not None and held.start <= pos and pos + 512 <= held.stop:
            continue
        want = ByteRange(pos, min(size, pos + buffer))
        readahead = pattern.observe(want)
        plan = plan_read(want, cache, size, policy, readahead, pattern.minimum_request)
        for r in plan:
            cache.insert(r.start, bytes(len(r)))
        requests += plan
        held = want
    return requests, cache


def tar_header_offsets(sizes: list[int]) -> list[int]:
    offsets, pos = [], 0
    for n in sizes:
        offsets.append(pos)
        pos += 512 + -(-n // 512) * 512
    return [*offsets, pos, pos + 512]  # the two zero blocks at the end


def test_a_tar_listing_takes_a_few_requests_and_bounded_bytes() -> None:
    from tests.servers.tarball import make_member_tar

    data, contents = make_member_tar()
    reads = tar_header_offsets([len(v) for v in contents.values()])
    policy = ReadPolicy()
    requests, _ = simulate_buffered_reads(reads, len(data), policy)
    # fsspec's HTTPFileSystem lists the same archive in 15 requests (benchmarks/readers).
    assert len(requests) <= 9
    assert_sorted_disjoint(requests)
    fetched = sum(len(r) for r in requests)
    assert fetched <= (reads[-1] + 512) - reads[0] + policy.stride_readahead_max
    assert all(len(r) <= policy.max_request_bytes for r in requests)


def test_a_tar_of_big_members_is_read_header_by_header() -> None:
    # 1 MiB members: reading through would cost 1 MiB a header; a request each is cheaper.
    sizes = [1 * MiB + 100 * i for i in range(50)]
    reads = tar_header_offsets(sizes)
    requests, _ = simulate_buffered_reads(reads, reads[-1] + 1024, ReadPolicy())
    assert len(requests) == len(reads) - 1  # the two end blocks share one
    assert sum(len(r) for r in requests) <= len(reads) * 8 * KiB


# -- plan_vectored --------------------------------------------------------------------------


@SETTINGS
@given(
    wanted=st.lists(wants(), max_size=6),
    cache=caches(),
    size=st.integers(0, N),
    policy=policies(),
)
def test_plan_vectored_properties(
    wanted: list[ByteRange], cache: ByteCache, size: int, policy: ReadPolicy
) -> None:
    cached = cached_set(cache)
    requests = plan_vectored(wanted, cache, size, policy)
    assert_sorted_disjoint(requests)
    needed = {i for w in wanted for i in range(w.start, min(w.stop, size))} - cached
    asked = {i for r in requests for i in range(r.start, r.stop)}
    assert needed <= asked
    for r in requests:
        assert r.start in needed and r.stop - 1 in needed, f"{r} starts or ends on filler"
    assert all(r.stop <= size and len(r) <= policy.max_request_bytes for r in requests)
    # Only the gaps between needed bytes are filled, and only when short.
    for filler in runs(asked - needed):
        assert len(filler) <= policy.coalesce_gap_bytes
        assert filler.start - 1 in needed and filler.stop in needed
    # Requests close enough to merge are apart only because one would exceed the maximum.
    for a, b in zip(requests, requests[1:]):
        if b.start - a.stop <= policy.coalesce_gap_bytes:
            assert b.start - a.start >= policy.max_request_bytes, f"{a} and {b} should merge"


def test_plan_vectored_example() -> None:
    policy = ReadPolicy(minimum_range_request_bytes=1, max_request_bytes=50, coalesce_gap_bytes=10)
    cache = ByteCache(1000)
    cache.insert(100, bytes(20))
    got = plan_vectored(
        [ByteRange(0, 10), ByteRange(15, 20), ByteRange(40, 45), ByteRange(100, 130)],
        cache,
        125,
        policy,
    )
    assert got == [ByteRange(0, 20), ByteRange(40, 45), ByteRange(120, 125)]
    # Pieces of filler alone are never requested, however the split falls.
    tight = ReadPolicy(minimum_range_request_bytes=1, max_request_bytes=3, coalesce_gap_bytes=30)
    got = plan_vectored([ByteRange(0, 3), ByteRange(20, 23)], cache, 125, tight)
    assert got == [ByteRange(0, 3), ByteRange(20, 23)]


# -- opening and policy ---------------------------------------------------------------------


def test_opening_specs() -> None:
    assert opening_specs(1 * MiB, "END") == [RangeSpec.suffix(MiB), RangeSpec.closed(0, MiB)]
    assert opening_specs(100, "end") == [RangeSpec.suffix(100), RangeSpec.closed(0, 100)]
    assert opening_specs(100, "START") == [RangeSpec.closed(0, 100)]
    assert opening_specs(100, "start") == [RangeSpec.closed(0, 100)]
    assert opening_specs(0, "END") == [RangeSpec.closed(0, 1)]
    assert opening_specs(-5, "START") == [RangeSpec.closed(0, 1)]
    with pytest.raises(ValueError):
        opening_specs(100, "MIDDLE")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"minimum_range_request_bytes": 0},
        {"minimum_range_request_bytes": 100, "max_request_bytes": 99},
        {"readahead_max": -1},
        {"gap_fill_bytes": -1},
        {"coalesce_gap_bytes": -1},
        {"stride_gap_bytes": -1},
        {"stride_readahead_max": -1},
        {"stream_drain_bytes": -1},
    ],
)
def test_read_policy_validation(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        ReadPolicy(**kwargs)


def test_read_policy_defaults() -> None:
    policy = ReadPolicy()
    assert policy.minimum_range_request_bytes == 8 * KiB
    assert policy.readahead_max == 2 * MiB
    assert policy.max_request_bytes == 8 * MiB
    assert policy.gap_fill_bytes == 64 * KiB
    assert policy.coalesce_gap_bytes == 1 * MiB
    assert policy.stride_gap_bytes == 256 * KiB
    assert policy.stride_readahead_max == 8 * MiB
    assert policy.stream_drain_bytes == 256 * KiB


def test_read_ahead_starts_at_the_read_length() -> None:
    pattern = AccessPattern(ReadPolicy(minimum_range_request_bytes=8 * KiB))
    pattern.observe(ByteRange(0, 64 * KiB))
    assert pattern.observe(ByteRange(64 * KiB, 128 * KiB)) == 64 * KiB
    assert pattern.observe(ByteRange(128 * KiB, 192 * KiB)) == 128 * KiB


# -- clustered reads: rows of tiles and chunks, read-ahead that proves useful ----------------


def read_row(pattern: AccessPattern, start: int, tiles: int, tile: int) -> list[int]:
    """A reader going through one row of ``tiles`` adjacent tiles; the windows it got."""
    return [
        pattern.observe(ByteRange(start + i * tile, start + (i + 1) * tile)) for i in range(tiles)
    ]


def test_rows_of_tiles_are_read_through_after_the_first_row() -> None:
    policy = ReadPolicy()
    pattern = AccessPattern(policy)
    tile, row_pitch = 120 * KiB, 1900 * KiB  # 4 tiles of a row, then a jump to the next row
    read_row(pattern, 6 * MiB, 4, tile)
    run = 4 * tile
    jump = row_pitch - run
    first = pattern.observe(ByteRange(6 * MiB + row_pitch, 6 * MiB + row_pitch + tile))
    assert first == ROWS_AHEAD * (jump + run) - tile, "the next rows, jumps included"
    # Capped: one request, at most cluster_readahead_max.
    wide = AccessPattern(policy)
    read_row(wide, 0, 4, 1 * MiB)
    got = wide.observe(ByteRange(8 * MiB, 9 * MiB))
    assert got == min(policy.cluster_readahead_max, policy.max_request_bytes - 1 * MiB)


def test_a_jump_too_far_or_backwards_after_a_run_is_a_random_read() -> None:
    policy = ReadPolicy()
    for target in (100 * MiB, 0):
        pattern = AccessPattern(policy)
        read_row(pattern, 10 * MiB, 4, 64 * KiB)
        assert pattern.observe(ByteRange(target, target + 4 * KiB)) == 0
    # A read with no run before it (a random read) reads through nothing.
    lone = AccessPattern(policy)
    lone.observe(ByteRange(10 * MiB, 10 * MiB + 4 * KiB))
    assert lone.observe(ByteRange(11 * MiB, 11 * MiB + 4 * KiB)) == 0


def test_scattered_random_reads_stay_lean() -> None:
    import random

    rng = random.Random(7)
    pattern = AccessPattern(ReadPolicy())
    size = 1 << 30
    ahead = 0
    for _ in range(500):
        pos = rng.randrange(size - 4 * KiB)
        ahead += pattern.observe(ByteRange(pos, pos + 4 * KiB))
    assert ahead == 0 and pattern.lean


def test_a_sequential_run_of_large_reads_gets_a_bounded_first_window() -> None:
    pattern = AccessPattern(ReadPolicy())
    pattern.observe(ByteRange(50 * MiB, 50 * MiB + 480 * KiB))
    # Two tiles side by side: the second read does not bring a third for nothing.
    assert pattern.observe(ByteRange(50 * MiB + 480 * KiB, 50 * MiB + 960 * KiB)) == READ_WINDOW_MAX
    small = AccessPattern(ReadPolicy())
    small.observe(ByteRange(0, 64 * KiB))
    assert small.observe(ByteRange(64 * KiB, 128 * KiB)) == 64 * KiB, "a 64 KiB reader's next piece"


def test_a_short_rest_of_the_file_comes_with_the_read() -> None:
    policy = ReadPolicy(gap_fill_bytes=64 * KiB, readahead_max=2 * MiB)
    size = 10 * MiB
    cache = ByteCache(64 * MiB)
    # A lean random read 40 KiB before the end: the rest is one request, not two.
    near_end = ByteRange(size - 44 * KiB, size - 40 * KiB)
    assert plan_read(near_end, cache, size, policy, 0, 0) == [ByteRange(near_end.start, size)]
    # Further from the end, only the read.
    early = ByteRange(size - 200 * KiB, size - 196 * KiB)
    assert plan_read(early, cache, size, policy, 0, 0) == [early]
    # A sequential reader takes a rest within readahead_max along (the pattern says how much).
    seq = ByteRange(size - 2 * MiB, size - 2 * MiB + 64 * KiB)
    assert plan_read(seq, cache, size, policy, 64 * KiB) == [
        ByteRange(seq.start, seq.stop + 64 * KiB)
    ]
    tail = 2 * MiB
    assert plan_read(seq, cache, size, policy, 64 * KiB, tail=tail) == [ByteRange(seq.start, size)]
    # ...unless the cache has no room for it beside the read.
    assert plan_read(seq, cache, size, policy, 64 * KiB, room=1 * MiB, tail=tail) == [
        ByteRange(seq.start, seq.stop + 64 * KiB)
    ]
    pattern = AccessPattern(policy)
    pattern.observe(ByteRange(0, 4 * KiB))
    assert pattern.tail == policy.gap_fill_bytes
    pattern.observe(ByteRange(4 * KiB, 8 * KiB))
    assert pattern.tail == policy.readahead_max
