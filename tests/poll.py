"""Waiting for something a test can observe (a request the server logged, a counter, an
event), polled with a deadline: never a fixed sleep that hopes the other side is there by then."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

# Long enough for a loaded 2-core machine; a condition that never comes fails the test here.
DEADLINE = 10.0
_STEP = 0.002


def wait_until(condition: Callable[[], object], what: str, timeout: float = DEADLINE) -> None:
    """Return once ``condition()`` is true; AssertionError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(_STEP)


async def until(condition: Callable[[], object], what: str, timeout: float = DEADLINE) -> None:
    """``wait_until`` for a coroutine: the event loop runs the other tasks meanwhile."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(_STEP)
