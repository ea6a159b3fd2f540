"""The mirror policy: agreement with the reference, drops with their reasons, workers' mirrors, speed-aware steals."""

from __future__ import annotations

import hashlib

import pytest

from rangeio._core.digests import ExpectedDigest
from rangeio._core.identity import ETag, Identity
from rangeio._core.mirrors import (
    MIRROR_FAILURES,
    DropReason,
    Fingerprint,
    MirrorSet,
    MirrorState,
    disagreement,
)
from rangeio._core.segments import ALIGN, SegmentTable

MiB = 1024 * 1024


def fp(size: int | None, etag: str | None = None, lm: str | None = None, digests=()) -> Fingerprint:
    return Fingerprint(Identity(ETag.parse(etag), lm, size), tuple(digests))


def sha(data: bytes, source: str = "Repr-Digest") -> ExpectedDigest:
    return ExpectedDigest("sha256", hashlib.sha256(data).digest(), source)


def test_same_size_and_same_strong_etag_agree() -> None:
    assert disagreement(fp(100, '"a"'), fp(100, '"a"')) is None


def test_another_size_or_no_size_is_dropped_for_size() -> None:
    assert disagreement(fp(100, '"a"'), fp(101, '"a"'))[0] is DropReason.SIZE  # type: ignore[index]
    assert disagreement(fp(100), fp(None))[0] is DropReason.SIZE  # type: ignore[index]


def test_two_different_strong_etags_are_dropped_for_etag() -> None:
    verdict = disagreement(fp(100, '"a"'), fp(100, '"b"'))
    assert verdict is not None and verdict[0] is DropReason.ETAG
    assert '"b"' in verdict[1] and '"a"' in verdict[1]


def test_weak_missing_etags_and_last_modified_are_not_compared() -> None:
    assert disagreement(fp(100, '"a"'), fp(100, 'W/"b"')) is None
    assert disagreement(fp(100, 'W/"a"'), fp(100, '"b"')) is None
    assert disagreement(fp(100, '"a"'), fp(100)) is None
    assert disagreement(fp(100, lm="Mon, 01 Jan 2024"), fp(100, lm="Tue, 02 Jan 2024")) is None


def test_equal_digests_prove_agreement_whatever_the_etags() -> None:
    digest = sha(b"file")
    assert disagreement(fp(4, '"a"', digests=[digest]), fp(4, '"b"', digests=[digest])) is None


def test_a_different_digest_is_dropped_even_with_equal_etags() -> None:
    verdict = disagreement(
        fp(4, '"a"', digests=[sha(b"file")]), fp(4, '"a"', digests=[sha(b"elif")])
    )
    assert verdict is not None and verdict[0] is DropReason.DIGEST


def test_digests_of_different_algorithms_are_not_compared() -> None:
    md5 = ExpectedDigest("md5", hashlib.md5(b"x").digest(), "Digest")
    assert (
        disagreement(fp(4, '"a"', digests=[sha(b"file")]), fp(4, '"b"', digests=[md5])) is not None
    )
    assert disagreement(fp(4, digests=[sha(b"file")]), fp(4, digests=[md5])) is None


def test_the_first_answer_decides_and_a_disagreeing_mirror_is_dropped_once() -> None:
    mirrors = MirrorSet(["r", "good", "bad"], 2, fp(100, '"a"'))
    assert mirrors.pinned(1) is None  # untried: judged on the size alone
    assert mirrors.answered(1, fp(100, '"a"')) is None
    assert mirrors.state(1) is MirrorState.AGREED
    assert mirrors.pinned(1) == Identity(ETag.parse('"a"'), None, 100)
    drop = mirrors.answered(2, fp(100, '"z"'))
    assert drop is not None and drop.reason is DropReason.ETAG and drop.url == "bad"
    # A second connection's answer from it: no second Drop, and it stays dropped (refused).
    assert mirrors.answered(2, fp(100, '"a"')) is None
    assert mirrors.state(2) is MirrorState.DROPPED
    assert mirrors.usable == [0, 1] and mirrors.dropped == [drop]


def test_every_answer_of_a_mirror_is_checked_and_another_version_of_it_is_changed() -> None:
    mirrors = MirrorSet(["r", "m"], 2, fp(100))
    assert mirrors.answered(1, fp(100, '"m1"')) is None
    assert mirrors.answered(1, fp(100, '"m1"')) is None
    assert mirrors.state(1) is MirrorState.AGREED
    # A second connection's request went out before the first answer (no If-Range): its
    # answer is of another version of that mirror.
    drop = mirrors.answered(1, fp(100, '"m2"'))
    assert drop is not None and drop.reason is DropReason.CHANGED and not drop.tainted


def test_a_mirror_found_to_disagree_after_it_served_bytes_is_a_tainted_drop() -> None:
    """A resume: the record pins no digests; a mirror agrees on the size, serves bytes, then
    the reference's first answer announces a digest the mirror's contradicts."""
    mirrors = MirrorSet(["r", "m", "n"], 1, fp(4))
    assert mirrors.answered(1, fp(4, digests=[sha(b"elif")])) is None
    assert mirrors.answered(2, fp(4)) is None  # no digest: nothing to contradict
    drop = mirrors.answered(0, fp(4, digests=[sha(b"file")]))
    assert drop is not None and drop.url == "m" and drop.reason is DropReason.DIGEST
    assert drop.tainted
    assert mirrors.usable == [0, 2]
    assert mirrors.answered(0, fp(4, digests=[sha(b"other")])) is None  # its first counted


def test_the_reference_learns_digests_from_its_first_answer_on_a_resume() -> None:
    mirrors = MirrorSet(["r", "m"], 1, fp(4, '"a"'))
    mirrors.answered(0, fp(4, '"a"', digests=[sha(b"file")]))
    drop = mirrors.answered(1, fp(4, '"a"', digests=[sha(b"elif")]))
    assert drop is not None and drop.reason is DropReason.DIGEST


def test_failures_drop_a_mirror_after_a_run_of_them_but_never_the_last_agreed() -> None:
    mirrors = MirrorSet(["r", "m"], 1, fp(100))
    mirrors.answered(1, fp(100))
    for _ in range(MIRROR_FAILURES - 1):
        assert mirrors.failed(1, "reset", retryable=True) is None
    drop = mirrors.failed(1, "reset", retryable=True)
    assert drop is not None and drop.reason is DropReason.FAILED
    for _ in range(5):
        assert mirrors.failed(0, "reset", retryable=True) is None  # the last one is retried
    assert mirrors.usable == [0]


def test_a_segment_served_resets_the_failure_count_but_a_good_head_does_not() -> None:
    mirrors = MirrorSet(["r", "m"], 1, fp(100))
    mirrors.answered(1, fp(100))
    for _ in range(3):
        assert mirrors.failed(1, "reset", retryable=True) is None
        mirrors.served(1)
    assert mirrors.state(1) is MirrorState.AGREED
    assert mirrors.failed(1, "cut", retryable=True) is None
    mirrors.answered(1, fp(100))  # the next head is fine, its body is cut again
    assert mirrors.failed(1, "cut", retryable=True) is not None


def test_a_failure_no_retry_fixes_drops_at_once_while_another_agreed_mirror_is_there() -> None:
    mirrors = MirrorSet(["r", "m", "u"], 1, fp(100))
    mirrors.answered(1, fp(100))
    assert mirrors.failed(0, "404", retryable=False) is not None  # even the reference
    # "u" is untried, so it does not count as a mirror to fall back on.
    assert mirrors.failed(1, "404", retryable=False) is None


def test_leaving_a_mirror_no_worker_was_assigned_to_raises() -> None:
    mirrors = MirrorSet(["r", "m"], 1, fp(100))
    with pytest.raises(ValueError):
        mirrors.leave(1)
    mirrors.leave(None)  # a worker that never got a mirror


def test_workers_spread_over_mirrors_up_to_per_mirror_and_leave_a_dropped_one() -> None:
    mirrors = MirrorSet(["r", "m"], 2, fp(100))
    assigned = [mirrors.assign(None) for _ in range(4)]
    assert sorted(assigned) == [0, 0, 1, 1]  # type: ignore[type-var]
    assert mirrors.assign(None) is None  # every connection is taken
    mirrors.drop(1, DropReason.CHANGED, "x")
    assert mirrors.assign(1) is None  # no room on the reference: the worker ends
    assert mirrors.assign(0) == 0  # a usable mirror keeps its workers


def test_a_worker_prefers_the_mirror_asked_for_then_the_fastest() -> None:
    mirrors = MirrorSet(["r", "m", "n"], 1, fp(100))
    assert mirrors.assign(None, prefer=0) == 0
    mirrors.note_rate(2, 7, 1000.0)
    mirrors.note_rate(1, 8, 10.0)
    assert mirrors.assign(None) == 2
    assert mirrors.speed(2) == 1000.0


def test_slot_speeds_name_the_speed_of_each_holder() -> None:
    mirrors = MirrorSet(["r", "m"], 2, fp(100))
    mirrors.note_rate(0, 1, 100.0)
    mirrors.note_rate(0, 2, 300.0)
    mirrors.hold(5, 0)
    mirrors.hold(6, 1)  # not measured yet: left out
    assert mirrors.slot_speeds() == {5: 200.0}
    mirrors.unhold(5)
    assert mirrors.slot_speeds() == {}


# -- the speed-aware steal -------------------------------------------------------------------


def test_a_fast_thief_takes_most_of_a_slow_segment() -> None:
    table = SegmentTable([], 64 * MiB, 4 * MiB, {})
    slow = table.claim()
    assert slow is not None
    thief = table.claim({slow: 1.0}, 4.0)
    assert thief is not None
    start, stop = table.span(thief)
    assert stop == 64 * MiB and start % ALIGN == 0
    assert abs((stop - start) - 64 * MiB * 4 // 5) <= ALIGN  # four fifths
    assert table.span(slow) == (0, start)


def test_the_victim_is_the_segment_that_would_finish_last() -> None:
    table = SegmentTable([], 64 * MiB, 1 * MiB, {})
    a = table.claim()
    b = table.claim()
    assert a is not None and b is not None
    # a has 32 MiB at 10 B/s, b 32 MiB at 1 B/s: b finishes last, so b is split.
    thief = table.claim({a: 10.0, b: 1.0}, 10.0)
    assert thief is not None
    assert table.span(thief)[1] == 64 * MiB
    assert table.span(a) == (0, 32 * MiB)


def test_a_small_rest_of_a_slow_segment_is_still_worth_stealing() -> None:
    table = SegmentTable([], 2 * MiB, 4 * MiB, {})
    slow = table.claim()
    assert slow is not None
    assert table.claim() is None  # equal speeds: below 2 * min_segment, no steal
    thief = table.claim({slow: 1.0}, 8.0)
    assert thief is not None and table.span(thief)[1] == 2 * MiB


def test_without_speeds_the_steal_is_the_old_half_split() -> None:
    table = SegmentTable([], 10 * MiB, ALIGN, {})
    owner = table.claim()
    thief = table.claim({}, None)
    assert owner is not None and thief is not None
    assert abs(table.span(thief)[0] - 5 * MiB) < ALIGN


def _simulate(speeds: list[int], total_chunks: int, *, aware: bool) -> tuple[int, list[int]]:
    """Workers of the given speeds (ALIGN-sized chunks per step) drain a table of
    ``total_chunks`` chunks, claiming as the engine does; (steps taken, chunks per worker)."""
    table = SegmentTable([], total_chunks * ALIGN, 4 * MiB, {})
    held: dict[int, int] = {}  # worker -> slot
    done = [0] * len(speeds)
    steps = 0
    while not table.done:
        steps += 1
        assert steps < 10 * total_chunks, "the table never finished"
        for worker, speed in enumerate(speeds):
            if worker not in held:
                by_slot = {slot: float(speeds[w]) for w, slot in held.items()} if aware else None
                slot = table.claim(by_slot, float(speed) if aware else None)
                if slot is None:
                    continue
                held[worker] = slot
            slot = held[worker]
            cursor, stop = table.span(slot)
            step = min(speed * ALIGN, stop - cursor)
            table.advance(slot, bytes(step))
            done[worker] += step // ALIGN
            if table.span(slot)[0] >= table.span(slot)[1]:
                table.release(slot)
                del held[worker]
    return steps, done


def test_a_four_times_slower_mirror_adds_its_share_and_never_holds_the_tail() -> None:
    fast_alone, _ = _simulate([4] * 4, 1024, aware=True)
    both, done = _simulate([4] * 4 + [1] * 4, 1024, aware=True)
    assert sum(done) == 1024
    # The slow mirror's connections carry about their fifth of the capacity: some, not more...
    assert 0.1 * 1024 <= sum(done[4:]) <= 0.25 * 1024
    # ... and the two finish sooner than the fast one alone (1.25x its capacity: 0.8x ideal).
    assert both <= 0.9 * fast_alone
    # Splitting in halves, blind to speed, leaves half the file on the slow mirror: the two
    # would take longer than the fast one alone.
    blind, _ = _simulate([4] * 4 + [1] * 4, 1024, aware=False)
    assert blind > fast_alone
