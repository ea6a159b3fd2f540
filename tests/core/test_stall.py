"""The low-speed rule against a brute-force model of windows, and its edge cases."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from rangeio._core.stall import LowSpeed, StallWatch


def test_a_drip_under_the_floor_stalls_once_the_window_is_complete() -> None:
    watch = StallWatch(LowSpeed(bytes_per_second=10, seconds=2.0), now=0.0)
    # One byte every 0.4 s never trips a 0.5 s read timeout; the window judges the average.
    verdicts = [watch.stalled(1, now=0.4 * i) for i in range(1, 6)]
    assert verdicts == [False, False, False, False, True]


def test_a_body_at_the_floor_never_stalls() -> None:
    watch = StallWatch(LowSpeed(bytes_per_second=100, seconds=1.0), now=0.0)
    assert not any(watch.stalled(10, now=0.1 * i) for i in range(1, 200))


def test_a_fast_start_does_not_pay_for_a_later_crawl() -> None:
    watch = StallWatch(LowSpeed(bytes_per_second=100, seconds=1.0), now=0.0)
    assert not watch.stalled(10_000, now=1.0)  # a full, fast window: it restarts here
    verdicts = [watch.stalled(1, now=1.0 + 0.25 * i) for i in range(1, 5)]
    assert verdicts[-1] is True


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError):
        LowSpeed(0, 1.0)
    with pytest.raises(ValueError):
        LowSpeed(1, 0.0)
    assert LowSpeed(1024, 30).describe() == "slower than 1024 bytes/s for 30 s"


@settings(max_examples=300, deadline=None)
@given(
    rate=st.integers(1, 1000),
    window=st.floats(0.1, 5.0),
    gaps=st.lists(st.tuples(st.floats(0.0, 2.0), st.integers(0, 2000)), max_size=40),
)
def test_matches_a_model_of_consecutive_windows(
    rate: int, window: float, gaps: list[tuple[float, int]]
) -> None:
    watch = StallWatch(LowSpeed(rate, window), now=0.0)
    start, got, now = 0.0, 0, 0.0
    for gap, nbytes in gaps:
        now += gap
        got += nbytes
        elapsed = now - start
        expected = elapsed >= window and got < rate * elapsed
        assert watch.stalled(nbytes, now) is expected
        if expected:
            return  # the body is abandoned at the first stall
        if elapsed >= window:
            start, got = now, 0


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 1000),
    st.floats(0.1, 10.0),
    st.lists(st.tuples(st.integers(0, 5000), st.floats(0.0, 3.0)), max_size=20),
)
def test_deadline_is_when_the_window_would_fail(
    rate: int, seconds: float, arrivals: list[tuple[int, float]]
) -> None:
    """Whatever arrived so far, waiting with nothing more arriving first fails a window (the
    rule judged at every moment) at deadline(): cutting the wait there is the floor's verdict."""
    watch = StallWatch(LowSpeed(rate, seconds), now=0.0)
    now = 0.0
    for nbytes, gap in arrivals:
        now += gap
        if watch.stalled(nbytes, now):
            return
    deadline = watch.deadline()
    assert now <= deadline <= now + 2 * seconds
    step = seconds / 1000
    # A window holding within a step's worth of the floor passes only if judged within a step
    # of its end, which stepping by `step` may miss: judging at every moment is what is modelled.
    assume(abs(watch._window_bytes - rate * seconds) > 2 * rate * step)
    t = now
    while not watch.stalled(0, t):
        t += step
    assert t == pytest.approx(deadline, abs=2 * step)


def test_exactly_a_windows_worth_gets_the_earlier_deadline() -> None:
    """Judged a moment after its end, a window holding exactly the floor is too little: the
    deadline is its end, not the next window's (hypothesis found rate 1, 1 s, 1 byte)."""
    watch = StallWatch(LowSpeed(1, 1.0), now=0.0)
    assert not watch.stalled(1, 0.0)
    assert watch.deadline() == 1.0
    assert watch.stalled(0, 1.001)
    more = StallWatch(LowSpeed(1, 1.0), now=0.0)
    assert not more.stalled(2, 0.0)
    assert more.deadline() == 2.0


def test_timeout_head_follows_a_bare_number_or_the_read_timeout() -> None:
    from rangeio._core.options import Timeout

    assert Timeout().head == 60.0
    assert Timeout.coerce(5).head == 5.0
    assert Timeout.coerce((2, 7)).head == 7.0
    assert Timeout(head=None).head is None
    with pytest.raises(ValueError):
        Timeout(head=0)


@pytest.mark.parametrize(
    ("status", "interim"), [(100, True), (102, True), (103, True), (101, False), (200, False)]
)
def test_interim_statuses(status: int, interim: bool) -> None:
    from rangeio._core.validate import is_interim

    assert is_interim(status) is interim
