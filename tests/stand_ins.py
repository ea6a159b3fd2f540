"""Stand-ins for the two third-party modules the seeds' README examples import beside the seed
(python-ranges' ``ranges`` and ``tenacity``), used only when the real one is not installed, so
that the examples still run unchanged. Each keeps just the names and behaviour the examples use.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class Range:
    """python-ranges' ``Range(start, end)``: half-open ``[start, end)`` unless told otherwise."""

    start: int
    end: int
    include_start: bool = True
    include_end: bool = False

    def __str__(self) -> str:
        return f"[{self.start}, {self.end})"


def ranges_module() -> types.ModuleType:
    module = types.ModuleType("ranges", "stand-in for python-ranges (tests/stand_ins.py)")
    module.Range = Range  # type: ignore[attr-defined]
    return module


def tenacity_module() -> types.ModuleType:
    """``retry(retry=retry_if_exception_type(E), wait=..., stop=stop_after_attempt(n))`` on a
    coroutine function: call it again, up to n attempts in all, while it raises E. The wait is
    recorded on the module (``waits``), never slept: a test must not sleep."""
    module = types.ModuleType("tenacity", "stand-in for tenacity (tests/stand_ins.py)")
    waits: list[Any] = []

    def retry(
        *, retry: type[BaseException], wait: Any, stop: int
    ) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
        def decorate(function: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
            @functools.wraps(function)
            async def again(*args: Any, **kwargs: Any) -> Any:
                for attempt in range(1, stop + 1):
                    try:
                        return await function(*args, **kwargs)
                    except retry:
                        if attempt == stop:
                            raise
                        waits.append(wait)

            return again

        return decorate

    module.retry = retry  # type: ignore[attr-defined]
    module.retry_if_exception_type = lambda kind: kind  # type: ignore[attr-defined]
    module.stop_after_attempt = lambda n: n  # type: ignore[attr-defined]
    module.wait_exponential_jitter = lambda **kw: kw  # type: ignore[attr-defined]
    module.waits = waits  # type: ignore[attr-defined]
    return module
