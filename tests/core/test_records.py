"""Record (`_core/records.py`): the written-out values keep what their frozen dataclasses gave."""

from __future__ import annotations

import pickle

import pytest

from rangeio._core.exchange import ReadBody, Result, Skip, Wait
from rangeio._core.identity import Identity
from rangeio._core.ranges import ByteRange
from rangeio._core.redirects import ResolvedUrl
from rangeio._core.validate import Failure, Partial


def _result(**changes: object) -> Result:
    fields: dict[str, object] = {
        "data": b"abc",
        "range": ByteRange(0, 3),
        "total": 10,
        "identity": Identity(size=10),
        "full": False,
        "unsatisfiable": False,
        "url": ResolvedUrl("http://example.test/f"),
    }
    return Result(**{**fields, **changes})  # type: ignore[arg-type]


def test_equal_by_fields_and_type_only() -> None:
    assert Partial(ByteRange(0, 3), 10, Identity()) == Partial(ByteRange(0, 3), 10, Identity())
    assert Partial(ByteRange(0, 3), 10, Identity()) != Partial(ByteRange(0, 4), 10, Identity())
    assert ReadBody(3) != Wait(3)  # same values, another type
    assert Skip() == Skip()
    assert _result() == _result() and _result() != _result(date="x")
    assert hash(Failure(503, True, 1.0, "busy")) == hash(Failure(503, True, 1.0, "busy"))


def test_defaults_keywords_and_repr() -> None:
    verdict = Partial(ByteRange(0, 3), None, Identity(), asked=ByteRange(0, 5))
    assert verdict.asked == ByteRange(0, 5) and verdict.wanted == ByteRange(0, 5)
    assert Partial(ByteRange(0, 3), None, Identity()).asked is None
    assert _result().pieces == () and _result().not_modified is False
    assert repr(Wait(0.5)) == "Wait(seconds=0.5)"
    assert repr(ReadBody(None)) == "ReadBody(expected=None)"


def test_immutable() -> None:
    wait = Wait(1.0)
    with pytest.raises(AttributeError):
        wait.seconds = 2.0  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del wait.seconds
    with pytest.raises(AttributeError):
        wait.other = 1  # type: ignore[attr-defined]
    assert wait.seconds == 1.0


def test_pickles() -> None:
    for value in (_result(pieces=((0, b"abc"),)), Failure(404, False, None, "gone"), Skip()):
        assert pickle.loads(pickle.dumps(value)) == value


def test_loads_what_the_frozen_dataclass_pickled(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pickle made before (Identity was a frozen slotted dataclass, whose pickled state is its
    field values in order) loads into the Record."""
    from dataclasses import dataclass

    import rangeio._core.identity as identity_module

    @dataclass(frozen=True, slots=True)
    class Former:
        etag: object = None
        last_modified: str | None = None
        size: int | None = None

    Former.__module__, Former.__qualname__ = identity_module.__name__, "Identity"
    with monkeypatch.context() as patch:
        patch.setattr(identity_module, "Identity", Former)
        old = pickle.dumps(Former(None, "Tue, 01 Dec 2026 00:00:00 GMT", 10), protocol=2)
    loaded = pickle.loads(old)
    assert type(loaded) is Identity
    assert loaded == Identity(None, "Tue, 01 Dec 2026 00:00:00 GMT", 10)
