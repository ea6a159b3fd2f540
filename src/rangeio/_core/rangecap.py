"""RangeCap: how many ranges one multipart request may carry on this server, learned from its answers.

Servers cap the ranges of one request (nginx's ``max_ranges``, Apache's ``MaxRanges`` 200, lower
ones elsewhere) and answer a request over the cap with ``200`` and the whole file, as a server
that never answers multipart does (S3). The two differ only in what a smaller request gets, so
the cap is discovered by splitting refused groups, GDAL-style:

- ``UNKNOWN``: nothing answered yet; groups hold up to the policy's ``max_ranges_per_request``.
- ``REFUSING``: a group was refused and none answered yet. The next groups hold half the
  refused count (a cap just below what was asked, as nginx and Apache are configured); if those
  are refused too, one request of 2 ranges tests whether the server answers multipart at all,
  while the other ranges go single (``group()``), so an S3-like server costs two refused rounds,
  not a halving down to 2.
- ``MULTIPART``: a group of ``largest_answered`` ranges was answered. Groups hold that many, or
  half the smallest refused count when that is more (so a cap far above a small test is found
  by halving from above, each refusal lowering the bound).
- ``SINGLE``: even 2 ranges were refused, or the answer was not usable multipart: every range
  is its own request (the concurrent single-range path).

Each refusal of a group sized by the current limit lowers the limit, so discovery ends.
Answers to groups sent before a change (they were in flight) are taken as they come; after
``SINGLE`` they change nothing.
"""

from __future__ import annotations

import enum

from rangeio._core.planner import ReadPolicy, group_for_multipart
from rangeio._core.ranges import ByteRange

KiB = 1024

# A 200 answering a multi-range request carries the whole file. It is read (its bytes are all
# the reader asked for and more) only when it holds at most this much beyond the bytes asked
# for: what a link carries in one round trip at 100 Mbit/s and 20 ms, the price of asking
# again. A larger one is dropped unread (the response is closed) and the group split.
FULL_BODY_SLACK = 256 * KiB


class CapState(enum.Enum):
    UNKNOWN = "unknown"
    REFUSING = "refusing"
    MULTIPART = "multipart"
    SINGLE = "single"


class RangeCap:
    """The multipart cap of one server, as far as its answers tell (see the module)."""

    __slots__ = ("state", "largest_answered", "smallest_refused", "_max", "_trial", "_halved")

    def __init__(self, max_ranges: int) -> None:
        if max_ranges < 1:
            raise ValueError("max_ranges must be >= 1")
        self._max = max_ranges
        self.state = CapState.UNKNOWN if max_ranges >= 2 else CapState.SINGLE
        self.largest_answered = 0
        self.smallest_refused: int | None = None
        # While REFUSING: the group size to try next, and whether it was halved already.
        self._trial = max_ranges
        self._halved = False

    def limit(self) -> int:
        """The most ranges the next multipart request should hold (1: single ranges only)."""
        state = self.state
        if state is CapState.SINGLE:
            return 1
        if state is CapState.UNKNOWN:
            return self._max
        if state is CapState.REFUSING:
            return self._trial
        refused = self.smallest_refused
        if refused is None:
            return self._max
        return min(self._max, max(self.largest_answered, refused // 2))

    @property
    def testing(self) -> bool:
        """Whether the next round tests 2 ranges in one request (the rest go single)."""
        return self.state is CapState.REFUSING and self._trial == 2

    def answered(self, count: int) -> None:
        """A request of ``count`` ranges got a multipart answer."""
        _check_count(count)
        if self.state is CapState.SINGLE:
            return  # sent before the server was judged; one answer does not undo that
        self.state = CapState.MULTIPART
        self.largest_answered = max(self.largest_answered, count)
        refused = self.smallest_refused
        if refused is not None and refused <= self.largest_answered:
            # A count refused before works now: that refusal said something else (load).
            self.smallest_refused = None

    def refused(self, count: int) -> None:
        """A request of ``count`` ranges got 200 (the whole file) instead of multipart."""
        _check_count(count)
        state = self.state
        if state is CapState.SINGLE:
            return
        refused = self.smallest_refused
        self.smallest_refused = count if refused is None else min(refused, count)
        if state is CapState.MULTIPART:
            if count <= self.largest_answered:
                # It refuses what it answered before: believe the refusal, below it.
                self.largest_answered = count - 1
                if self.largest_answered < 2:
                    self.state = CapState.SINGLE
            return
        if count <= 2:
            self.state = CapState.SINGLE
            return
        if count > self._trial:
            return  # sent under an earlier, larger limit: nothing new
        self.state = CapState.REFUSING
        if self._halved:
            self._trial = 2
        else:
            self._halved = True
            self._trial = max(2, count // 2)

    def unusable(self) -> None:
        """A multi-range request got an answer that is not usable multipart (malformed parts,
        one part for ranges far apart): the server is served range by range from now on."""
        self.state = CapState.SINGLE

    def group(self, ranges: list[ByteRange], policy: ReadPolicy) -> list[list[ByteRange]]:
        """``ranges`` grouped into requests under the current limit (single when it is 1; one
        group of 2 and the rest single while ``testing``)."""
        limit = self.limit()
        if limit < 2 or len(ranges) < 2:
            return [[r] for r in ranges]
        if self.testing:
            return [ranges[:2], *([r] for r in ranges[2:])]
        return group_for_multipart(ranges, policy, max_ranges=limit)


def _check_count(count: int) -> None:
    if count < 2:
        raise ValueError(f"a request of {count} range(s) says nothing about multipart")


def full_body_bound(asked: int, cache_bytes: int) -> int:
    """The largest 200 worth reading in answer to a multi-range request asking ``asked`` bytes
    (see ``FULL_BODY_SLACK``); never more than the cache holds."""
    return min(cache_bytes, asked + FULL_BODY_SLACK)
