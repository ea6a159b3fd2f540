"""read_ranges against servers that cap the ranges of one request, or never answer multipart;
and cursors reading at once are not throttled below the connections kept per host."""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest

from rangeio.testing import Faults, FaultServer
from tests.adapters import Opener
from tests.servers.nginx import Nginx

PATH = "/scattered.bin"
SIZE = 16 * 1024 * 1024
COUNT, LENGTH = 200, 4096
DATA = random.Random(12).randbytes(SIZE)


def scattered() -> list[tuple[int, int]]:
    """200 random 4 KiB ranges, at least 64 KiB apart (so no gap merges them)."""
    rng = random.Random(5)
    step = SIZE // COUNT
    return [(s, s + LENGTH) for s in (i * step + rng.randrange(0, step // 4) for i in range(COUNT))]


class TimelineServer(FaultServer):
    """A FaultServer that numbers two events per request: its arrival, and the end of its answer
    (an event counter, no clock)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.events: list[tuple[int, int]] = []  # (arrival, answered), by arrival
        self._clock = 0
        self._tick = threading.Lock()
        self._mine = threading.local()

    def _next(self) -> int:
        with self._tick:
            self._clock += 1
            return self._clock

    def _record(self, request: Any) -> None:
        super()._record(request)
        with self._tick:
            self._clock += 1
            self.events.append((self._clock, 1 << 62))
            self._mine.index = (self.events, len(self.events) - 1)

    def _serve_one(self, sock: Any, conn: Any) -> Any:
        self._mine.index = None
        try:
            return super()._serve_one(sock, conn)
        finally:
            mine = self._mine.index
            if mine is not None:  # a request from before reset() is in a list left behind
                events, index = mine
                events[index] = (events[index][0], self._next())

    def reset(self) -> None:
        self.clear_log()
        with self._tick:
            self.events = []

    def rounds(self) -> int:
        """Round trips: the longest chain of requests each of which arrived after the one
        before it had been answered (requests in flight together are one round)."""
        depth: list[int] = []
        for i, (arrived, _) in enumerate(self.events):
            before = [depth[j] for j in range(i) if self.events[j][1] < arrived]
            depth.append(1 + max(before, default=0))
        return max(depth, default=0)

    def most_in_flight(self) -> int:
        edges = sorted([(a, 1) for a, _ in self.events] + [(d, -1) for _, d in self.events])
        most = now = 0
        for _, step in edges:
            now += step
            most = max(most, now)
        return most


@pytest.fixture
def timeline() -> Any:
    with TimelineServer({PATH: DATA}) as server:
        yield server


def test_capped_server_takes_at_most_three_round_trips(
    timeline: TimelineServer, opener: Opener
) -> None:
    wanted = scattered()
    with opener(timeline.url(PATH), prefetch_bytes=0) as f:
        # The delay keeps the requests of one round in flight together.
        timeline.faults = Faults(max_ranges=64, delay=0.05)
        timeline.reset()
        assert f.read_ranges(wanted) == [DATA[a:b] for a, b in wanted]
        assert timeline.rounds() <= 3
        # 2 refused groups of 100 (dropped unread), then 4 of 50.
        counts = [r.range.count(",") + 1 for r in timeline.requests if r.range]
        assert sorted(counts) == [50, 50, 50, 50, 100, 100]
        assert f.stats.bytes_fetched <= 2 * COUNT * LENGTH
        assert f._remote.multipart_support is True
        # The cap is remembered: the next call takes one round, no refusal.
        timeline.reset()
        again = [(a + 7, b + 7) for a, b in wanted]
        assert f.read_ranges(again) == [DATA[a:b] for a, b in again]
        assert timeline.rounds() == 1 and len(timeline.requests) == 4


def test_nginx_max_ranges_is_discovered(nginx: Nginx, opener: Opener) -> None:
    nginx.add_file("scattered.bin", DATA)
    wanted = scattered()
    with opener(nginx.url("capped/scattered.bin"), prefetch_bytes=0) as f:
        before = f.stats.requests
        assert f.read_ranges(wanted) == [DATA[a:b] for a, b in wanted]
        # Two refused requests of 100 ranges, then four of 50: two rounds.
        assert f.stats.requests - before == 6
        assert f.stats.bytes_fetched <= 2 * COUNT * LENGTH
        assert f._remote.multipart_support is True


def test_server_without_multipart_stays_on_concurrent_single_ranges(
    timeline: TimelineServer, opener: Opener
) -> None:
    wanted = scattered()
    with opener(timeline.url(PATH), prefetch_bytes=0) as f:
        timeline.faults = Faults(max_ranges=1, delay=0.02)
        assert f.read_ranges(wanted) == [DATA[a:b] for a, b in wanted]
        assert f._remote.multipart_support is False
        assert f.stats.bytes_fetched <= 2 * COUNT * LENGTH  # the 200s were dropped unread
        timeline.reset()
        # More than coalesce_gap_bytes (1 MiB) apart: one single-range request each.
        again = [(i * 1_600_000, i * 1_600_000 + LENGTH) for i in range(10)]
        assert f.read_ranges(again) == [DATA[a:b] for a, b in again]
        assert all("," not in (r.range or "") for r in timeline.requests)
        assert len(timeline.requests) == 10
        assert timeline.most_in_flight() >= 4  # concurrent, not one after another


def test_sixteen_cursors_get_sixteen_requests_in_flight(
    timeline: TimelineServer, opener: Opener
) -> None:
    with opener(timeline.url(PATH), prefetch_bytes=0) as f:
        timeline.faults = Faults(delay=0.3)
        timeline.reset()
        cursors = [f.clone() for _ in range(16)]
        results: list[bytes | None] = [None] * 16
        file = getattr(f, "file", None)
        if file is not None:  # an async file: read on its loop, all at once
            import asyncio

            async def read(i: int) -> bytes:
                c = cursors[i].file
                c.seek(i * 1_000_000)
                return await c.read(4096)  # type: ignore[no-any-return]

            async def gather() -> list[bytes]:
                return list(await asyncio.gather(*(read(i) for i in range(16))))

            results = list(f._run(gather()))
        else:

            def work(i: int) -> None:
                cursors[i].seek(i * 1_000_000)
                results[i] = cursors[i].read(4096)

            threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        for i, got in enumerate(results):
            assert got == DATA[i * 1_000_000 : i * 1_000_000 + 4096]
        assert len(timeline.requests) == 16
        # A borrowed niquests session blocks at its own pool of 10 connections: there the
        # client's pool is the limit, as it should be; every other adapter gets all 16.
        assert timeline.most_in_flight() == (10 if opener.kind.startswith("niquests") else 16)
        for c in cursors:
            c.close()
