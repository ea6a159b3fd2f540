"""The low-speed rule: a body that stays slower than a floor for a whole window has stalled.

A read timeout only fires when *nothing* arrives for that long, so a server that drips one byte
every few hundred milliseconds (a slow-loris body) would hold a read open for days. curl's
``--speed-limit``/``--speed-time`` and GDAL's ``GDAL_HTTP_LOW_SPEED_LIMIT``/``_TIME`` close that
hole with an average-speed floor over a window; this is the same rule.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LowSpeed:
    """At least ``bytes_per_second`` on average over every ``seconds``-long window of a body."""

    bytes_per_second: int
    seconds: float

    def __post_init__(self) -> None:
        if self.bytes_per_second < 1:
            raise ValueError("low-speed limit must be >= 1 byte per second")
        if self.seconds <= 0:
            raise ValueError("low-speed time must be > 0 seconds")

    def describe(self) -> str:
        return f"slower than {self.bytes_per_second} bytes/s for {self.seconds:g} s"


class StallWatch:
    """Watches one response body: feed it every chunk's size with a clock reading.

    The clock should run only while the client waits for the body: a reader who pauses between
    chunks (a stream consumed slowly) is not the server being slow. The window restarts whenever
    it has seen enough bytes, so a fast start cannot pay for a long crawl later; and a window is
    only judged once it is complete, so one slow chunk after a pause (the read timeout's
    business) is not a stall by itself.
    """

    __slots__ = ("limit", "_window_start", "_window_bytes")

    def __init__(self, limit: LowSpeed, now: float) -> None:
        self.limit = limit
        self._window_start = now
        self._window_bytes = 0

    def deadline(self) -> float:
        """The clock reading at which, if nothing more arrives, a whole window will have seen
        too little: a wait that lasts until then (the client busy with bytes that are not
        body, such as endless chunked trailers) has stalled, and is cut there. The current
        window ends too slow if it holds less than a window's worth; if it holds enough, it
        passes and the next one, empty, ends too slow. Never more than two windows away, so
        bytes that came fast cannot pay for an endless wait."""
        limit = self.limit
        # Exactly a window's worth passes only if judged at the very end of the window; judged
        # any later (a clock read a moment after) it is too little: the earlier deadline holds.
        if self._window_bytes <= limit.bytes_per_second * limit.seconds:
            return self._window_start + limit.seconds
        return self._window_start + 2 * limit.seconds

    def stalled(self, nbytes: int, now: float) -> bool:
        """Record ``nbytes`` that arrived at ``now``; True when the window just completed too slow."""
        self._window_bytes += nbytes
        elapsed = now - self._window_start
        if elapsed < self.limit.seconds:
            return False
        if self._window_bytes < self.limit.bytes_per_second * elapsed:
            return True
        self._window_start = now
        self._window_bytes = 0
        return False
