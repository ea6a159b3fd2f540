"""The helper threads that send for a transport whose head the watchdog cannot cut
(`_sync/handoff.py`), driven with a transport that answers when the test says so."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from rangeio._sync.handoff import Abandoned, Helpers
from rangeio._transport.watchdog import WATCHDOG

WITHIN = 0.2  # the head deadline of these sends
GUARD = 10.0  # only a hang reaches it


class Response:
    def __init__(self) -> None:
        self.closed = threading.Event()
        self.cut = False

    def shutdown(self) -> None:
        self.cut = True

    def close(self) -> None:
        self.closed.set()


class Held:
    """A transport whose sends return a Response only once ``answer`` is set."""

    def __init__(self) -> None:
        self.answer = threading.Event()
        self.sent: list[Response] = []

    def send(self, request: Any, timeout: Any) -> Response:
        assert self.answer.wait(GUARD)
        response = Response()
        self.sent.append(response)
        return response


def poll(condition: Any, what: str) -> None:
    deadline = time.monotonic() + GUARD
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def test_a_late_head_is_abandoned_then_closed_and_its_guard_released() -> None:
    helpers, transport = Helpers(limit=2), Held()
    guard = WATCHDOG.guard()
    started = time.monotonic()
    with pytest.raises(Abandoned):
        helpers.send(transport, None, None, guard, WITHIN)
    assert time.monotonic() - started < GUARD
    transport.answer.set()
    poll(lambda: transport.sent and transport.sent[0].closed.is_set(), "never closed")
    assert transport.sent[0].cut  # cut before it was closed: no drained body
    assert guard.fired
    poll(lambda: guard not in WATCHDOG._guards, "the guard was never released")


def test_a_send_waits_for_a_helper_within_its_deadline_and_never_starts_late() -> None:
    """With every helper held by an abandoned send, the next send waits only until its own
    deadline; once abandoned it is never sent (the helper skips it)."""
    helpers, transport = Helpers(limit=1), Held()
    first, second = WATCHDOG.guard(), WATCHDOG.guard()
    with pytest.raises(Abandoned):
        helpers.send(transport, None, None, first, WITHIN)
    started = time.monotonic()
    with pytest.raises(Abandoned):
        helpers.send(transport, None, None, second, WITHIN)
    assert time.monotonic() - started < GUARD
    transport.answer.set()
    poll(lambda: second not in WATCHDOG._guards, "the queued send's guard was never released")
    assert len(transport.sent) == 1  # only the first was ever sent
    # The helper is free again, and reused: a third send is answered.
    third = WATCHDOG.guard()
    assert isinstance(helpers.send(transport, None, None, third, GUARD), Response)
    third.release()


def test_a_send_that_answers_in_time_is_handed_back() -> None:
    helpers, transport = Helpers(limit=1), Held()
    transport.answer.set()
    guard = WATCHDOG.guard()
    response = helpers.send(transport, None, None, guard, GUARD)
    assert response is transport.sent[0]
    assert not response.closed.is_set()
    assert not guard.fired
    guard.release()


def test_an_error_is_raised_in_the_caller() -> None:
    class Failing:
        def send(self, request: Any, timeout: Any) -> Any:
            raise ConnectionResetError("cut")

    guard = WATCHDOG.guard()
    with pytest.raises(ConnectionResetError):
        Helpers(limit=1).send(Failing(), None, None, guard, GUARD)
    guard.release()
