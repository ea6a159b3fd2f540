"""SharedFiles (which remote files an fsspec filesystem keeps, for how long) and version_key."""

from __future__ import annotations

import pytest

from rangeio._core.identity import ETag, Identity
from rangeio._core.sharing import SharedFiles, version_key


class Value:
    """A stand-in for a remote file: compared by identity, as the table does."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


def test_take_shares_until_the_trust_period_of_an_idle_value_ends() -> None:
    table: SharedFiles[Value] = SharedFiles(max_idle=4, trust_seconds=10)
    a = Value("a")
    assert table.take("u", 0) is None
    table.add("u", a, 0)
    assert table.take("u", 1) is a  # two users now
    table.release("u", a, 2)
    table.release("u", a, 3)  # idle since t=3
    assert table.take("u", 13) is a  # 10 s later: still trusted
    table.release("u", a, 13)
    assert table.retired() == []
    assert table.take("u", 23.5) is None  # idle for longer than 10 s: opened afresh
    assert table.retired() == [a]
    assert "u" not in table


def test_a_value_in_use_is_trusted_whatever_its_age() -> None:
    table: SharedFiles[Value] = SharedFiles(max_idle=4, trust_seconds=1)
    a = Value("a")
    table.add("u", a, 0)
    assert table.take("u", 1000) is a
    assert table.retired() == []


def test_lru_bound_evicts_idle_values_only() -> None:
    table: SharedFiles[Value] = SharedFiles(max_idle=2, trust_seconds=100)
    a, b, c, d = Value("a"), Value("b"), Value("c"), Value("d")
    table.add("a", a, 0)  # stays in use throughout
    for key, value, t in (("b", b, 1), ("c", c, 2)):
        table.add(key, value, t)
        table.release(key, value, t)
    assert table.take("b", 3) is b  # b is now the most recently used
    table.release("b", b, 3)
    table.add("d", d, 4)
    table.release("d", d, 4)
    # Idle: c (used at 2), b (3), d (4); bound 2: c goes. a is in use and never counts.
    assert table.retired() == [c]
    assert "a" in table and "b" in table and "d" in table and len(table) == 3


def test_expired_idle_values_are_retired_on_any_change() -> None:
    table: SharedFiles[Value] = SharedFiles(max_idle=8, trust_seconds=5)
    a, b = Value("a"), Value("b")
    table.add("a", a, 0)
    table.release("a", a, 0)
    table.add("b", b, 6)
    assert table.retired() == [a]


def test_discard_detaches_a_value_in_use_until_its_last_user_leaves() -> None:
    table: SharedFiles[Value] = SharedFiles(max_idle=8, trust_seconds=100)
    a, a2 = Value("a"), Value("a2")
    table.add("u", a, 0)
    assert table.take("u", 0) is a
    table.discard("u")
    assert table.take("u", 1) is None  # the next open opens afresh ...
    table.add("u", a2, 1)
    table.release("u", a, 2)  # ... while the old value's users finish
    assert table.retired() == []
    table.release("u", a, 3)
    assert table.retired() == [a]
    assert table.take("u", 4) is a2


def test_discard_all_and_idle_values() -> None:
    table: SharedFiles[Value] = SharedFiles()
    a, b = Value("a"), Value("b")
    table.add("a", a, 0)
    table.release("a", a, 0)
    table.add("b", b, 0)
    table.discard()
    assert table.retired() == [a]
    assert len(table) == 0
    table.release("b", b, 1)
    assert table.retired() == [b]


def test_drain_hands_back_every_value() -> None:
    table: SharedFiles[Value] = SharedFiles()
    a, b, c = Value("a"), Value("b"), Value("c")
    table.add("a", a, 0)  # in use
    table.add("b", b, 0)
    table.release("b", b, 0)  # idle
    table.add("c", c, 0)
    table.discard("c")  # detached, in use
    assert sorted(table.drain(), key=repr) == [a, b, c]
    assert len(table) == 0 and table.retired() == []
    table.release("c", c, 1)
    assert table.retired() == []  # handed back once only


def test_zero_bound_keeps_nothing_idle() -> None:
    table: SharedFiles[Value] = SharedFiles(max_idle=0, trust_seconds=100)
    a = Value("a")
    table.add("u", a, 0)
    table.release("u", a, 0)
    assert table.retired() == [a]


@pytest.mark.parametrize("max_idle, trust", [(-1, 1.0), (1, -1.0)])
def test_bad_bounds(max_idle: int, trust: float) -> None:
    with pytest.raises(ValueError):
        SharedFiles(max_idle, trust)


STRONG, WEAK = ETag("v1"), ETag("v1", weak=True)
DATE = "Tue, 01 Dec 2026 10:00:00 GMT"


def test_version_key_prefers_the_strong_etag() -> None:
    key = version_key(Identity(STRONG, DATE, 10), 10)
    assert key is not None and len(key) == 64
    # Same strong ETag: same version, whatever the date says.
    assert version_key(Identity(STRONG, "other", 10), 10) == key
    assert version_key(Identity(ETag("v2"), DATE, 10), 10) != key


def test_version_key_falls_back_to_last_modified_and_size() -> None:
    key = version_key(Identity(WEAK, DATE, 10), 10)
    assert key == version_key(Identity(None, DATE, 10), 10)  # a weak tag is not used beside a date
    assert key != version_key(Identity(None, DATE, 11), 11)  # rewritten within the second
    assert key != version_key(Identity(None, "Wed, 02 Dec 2026 10:00:00 GMT", 10), 10)
    weak_only = version_key(Identity(WEAK, None, 10), 10)
    assert weak_only is not None and weak_only != key
    assert version_key(Identity(None, None, 10), 10) is None
    assert version_key(None, 10) is None
