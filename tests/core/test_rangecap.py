"""RangeCap: discovering how many ranges a server answers in one multipart request."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rangeio._core.planner import ReadPolicy, group_for_multipart
from rangeio._core.rangecap import (
    FULL_BODY_SLACK,
    CapState,
    RangeCap,
    full_body_bound,
)
from rangeio._core.ranges import ByteRange

POLICY = ReadPolicy()


def ranges(count: int, step: int = 100_000, length: int = 4096) -> list[ByteRange]:
    return [ByteRange(i * step, i * step + length) for i in range(count)]


def simulate(cap: RangeCap, server_cap: int, count: int) -> tuple[int, int]:
    """Rounds and requests ``read_ranges`` of ``count`` ranges takes against a server that
    answers up to ``server_cap`` ranges (1: never multipart). Each round sends its groups at
    once (as the engine does) and re-asks the refused ones."""
    left = ranges(count)
    rounds = requests = 0
    while left:
        rounds += 1
        groups = cap.group(left, POLICY)
        left = []
        for group in groups:
            requests += 1
            if len(group) == 1:
                continue
            if len(group) <= server_cap:
                cap.answered(len(group))
            else:
                cap.refused(len(group))
                left.extend(group)
        assert rounds < 20
    return rounds, requests


def test_cap_of_64_takes_two_rounds_and_is_remembered() -> None:
    cap = RangeCap(100)
    assert simulate(cap, 64, 200) == (2, 2 + 4)  # 2 refused groups of 100, then 4 of 50
    assert cap.state is CapState.MULTIPART
    assert (cap.largest_answered, cap.smallest_refused, cap.limit()) == (50, 100, 50)
    # The next call uses what worked: one round, no refusal.
    assert simulate(cap, 64, 200) == (1, 4)


def test_server_without_multipart_ends_single_after_two_refused_rounds() -> None:
    cap = RangeCap(100)
    rounds, requests = simulate(cap, 1, 200)
    # 100+100 refused, 4x50 refused, then one test of 2 (refused) beside 198 single ranges,
    # then those 2 single: never a halving down to 2 in many rounds.
    assert rounds == 4
    assert requests == 2 + 4 + (1 + 198) + 2
    assert cap.state is CapState.SINGLE and cap.limit() == 1
    assert simulate(cap, 1, 10) == (1, 10)


def test_low_cap_is_found_from_the_two_range_test() -> None:
    cap = RangeCap(100)
    simulate(cap, 10, 200)
    assert cap.state is CapState.MULTIPART and cap.largest_answered >= 2
    for _ in range(6):
        simulate(cap, 10, 200)
    assert 5 <= cap.limit() <= 10  # within a factor 2 of the true cap, by halving from above
    assert simulate(cap, 10, 200)[0] == 1


def test_two_ranges_refused_is_single_at_once() -> None:
    cap = RangeCap(100)
    cap.refused(2)
    assert cap.state is CapState.SINGLE


def test_refusal_of_groups_sent_earlier_changes_nothing_more() -> None:
    cap = RangeCap(100)
    cap.refused(69)
    assert cap.limit() == 34
    cap.refused(68)  # the other group of the same round
    assert (cap.limit(), cap.testing) == (34, False)
    cap.refused(34)
    assert cap.testing and cap.limit() == 2


def test_refusing_what_was_answered_lowers_below_it() -> None:
    cap = RangeCap(100)
    cap.answered(40)
    cap.refused(30)
    assert (cap.largest_answered, cap.smallest_refused) == (29, 30)
    cap.refused(2)
    assert cap.state is CapState.SINGLE


def test_answer_over_a_refused_count_forgets_the_refusal() -> None:
    cap = RangeCap(100)
    cap.refused(100)
    cap.answered(100)
    assert cap.smallest_refused is None and cap.limit() == 100


def test_single_is_final() -> None:
    cap = RangeCap(100)
    cap.unusable()
    cap.answered(5)
    cap.refused(5)
    assert cap.state is CapState.SINGLE
    assert cap.group(ranges(3), POLICY) == [[r] for r in ranges(3)]


def test_misuse_raises() -> None:
    with pytest.raises(ValueError):
        RangeCap(0)
    cap = RangeCap(100)
    for call in (cap.answered, cap.refused):
        with pytest.raises(ValueError, match="says nothing"):
            call(1)
    assert RangeCap(1).state is CapState.SINGLE


@settings(max_examples=200, deadline=None)
@given(
    server_cap=st.integers(1, 300),
    count=st.integers(2, 400),
    max_ranges=st.integers(2, 200),
)
def test_discovery_always_ends_and_never_exceeds_what_worked(
    server_cap: int, count: int, max_ranges: int
) -> None:
    cap = RangeCap(max_ranges)
    rounds, _ = simulate(cap, server_cap, count)
    assert rounds <= 5
    if server_cap >= 2 and cap.state is CapState.MULTIPART:
        assert cap.largest_answered <= server_cap
    # Later calls halve down from what was refused (each refused round lowers the bound, so
    # fewer than log2(max_ranges) extra rounds in all), then take one round each.
    later = [simulate(cap, server_cap, count)[0] for _ in range(10)]
    assert sum(later) - len(later) <= max_ranges.bit_length() and later[-1] == 1


def test_groups_are_balanced_and_bounded() -> None:
    groups = group_for_multipart(ranges(250), POLICY, max_ranges=100)
    assert [len(g) for g in groups] == [84, 84, 82]
    assert [len(g) for g in group_for_multipart(ranges(200), POLICY, max_ranges=64)] == [
        50,
        50,
        50,
        50,
    ]
    with pytest.raises(ValueError):
        group_for_multipart(ranges(2), POLICY, max_ranges=0)


def test_full_body_bound() -> None:
    assert full_body_bound(1000, 64 << 20) == 1000 + FULL_BODY_SLACK
    assert full_body_bound(1000, 10) == 10
