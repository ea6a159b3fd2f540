"""RangeStream (sync and async): lazy named ranges, pruning, bounded responses, validation."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

import rangeio
import rangeio.aio
from rangeio import ByteRange
from rangeio.testing import Faults, FaultServer

DATA = "/data.bin"


def test_open_learns_size_in_one_request(fault_server: FaultServer, client: Any) -> None:
    data = fault_server.get_file(DATA)
    with rangeio.RangeStream(fault_server.url(DATA), client) as rs:
        assert rs.total_bytes == len(data)
        assert rs.stats.requests == 1 and len(rs.ranges) == 0


def test_ranges_are_lazy_and_named(fault_server: FaultServer, client: Any) -> None:
    data = fault_server.get_file(DATA)
    with rangeio.RangeStream(fault_server.url(DATA), client) as rs:
        header = rs.add((0, 100), name="header")
        tail = rs.add((-500, 0), name="tail")
        assert rs.stats.requests == 1  # nothing fetched until read
        assert rs.read(10) == data[-500:-490]  # the active range is the one added last
        assert rs.tell() == 10
        rs.activate("header")
        assert rs.read() == data[:100] and header.is_consumed()
        rs.activate("tail")
        assert rs.read() == data[-490:] and tail.is_consumed()
        assert rs.stats.requests == 3
        rs.add((0, 100), name="again")  # already present: no request, active again
        assert rs.stats.requests == 3 and rs.active.name == "header"
        header.seek(50)
        assert header.read(5) == data[50:55]
        assert [r.name for r in rs.ranges.values()] == ["header", "tail"]


def test_abandoned_range_fetches_little(fault_server: FaultServer) -> None:
    data = fault_server.get_file(DATA)
    with rangeio.RangeStream(fault_server.url(DATA)) as rs:
        big = rs.add((0, len(data)))
        assert big.read(10) == data[:10]
        big.close()
        assert rs.stats.bytes_fetched < len(data) // 2


@dataclass
class PyRange:
    """Shaped like python-ranges' Range (start, end, include_start, include_end)."""

    start: int
    end: int
    include_start: bool = True
    include_end: bool = False


def test_python_ranges_style_objects(fault_server: FaultServer) -> None:
    data = fault_server.get_file(DATA)
    with rangeio.RangeStream(
        fault_server.url(DATA), byte_range=PyRange(10, 19, include_end=True)
    ) as rs:
        assert rs.read() == data[10:20]
        rs.add(ByteRange(30, 40))
        assert rs.read() == data[30:40]


def test_pruning_replant(fault_server: FaultServer) -> None:
    data = fault_server.get_file(DATA)
    with rangeio.RangeStream(fault_server.url(DATA)) as rs:
        rs.add((0, 1000), name="a")
        assert rs.read(200) == data[:200]
        rs.add((500, 1500), name="b")
        assert list(rs.ranges) == [ByteRange(0, 500), ByteRange(500, 1500)]
        rs.activate("a")
        assert rs.tell() == 200 and rs.read() == data[200:500]  # the kept head, read on
        rs.add((100, 200), name="inside")  # splits "a" around it
        assert ByteRange(0, 100) in rs.ranges and ByteRange(200, 500) in rs.ranges


def test_pruning_burn_and_strict(fault_server: FaultServer) -> None:
    with rangeio.RangeStream(fault_server.url(DATA), pruning_level=1) as rs:
        rs.add((0, 1000), name="a")
        rs.add((500, 1500), name="b")
        assert list(rs.ranges) == [ByteRange(500, 1500)]
    with rangeio.RangeStream(fault_server.url(DATA), pruning_level=2) as rs:
        rs.add((0, 1000))
        with pytest.raises(rangeio.RangeOverlapError):
            rs.add((999, 1001))


def test_500_ranges_keep_few_responses_open(fault_server: FaultServer) -> None:
    import httpx

    data = fault_server.get_file(DATA)
    # A small pool, as range-streams users hit: one open response per range would exhaust it.
    limits = httpx.Limits(max_connections=10)
    with (
        httpx.Client(limits=limits) as client,
        rangeio.RangeStream(fault_server.url(DATA), client) as rs,
    ):
        spans = [(i * 4000, i * 4000 + 100) for i in range(600)]
        for i, span in enumerate(spans):
            rs.add(span, name=f"m{i}")
        for i, (a, _) in enumerate(spans):
            response = rs.activate(f"m{i}")
            assert response.read(40) == data[a : a + 40]  # partly read: stays open
            assert rs.open_responses <= 8
        for i, (a, b) in enumerate(spans[:20]):
            assert rs.activate(f"m{i}").read() == data[a + 40 : b]  # re-requested
    assert rs.open_responses == 0


@pytest.mark.parametrize(
    ("faults", "error"),
    [
        (Faults(ignore_range=True), rangeio.RangeNotSupportedError),
        (Faults(always_416=True), rangeio.ProtocolError),
        # Every answer shifted: the first 3 bytes are never sent, whatever is asked.
        (Faults(content_range_shift=3), rangeio.ProtocolError),
        (Faults(gzip=True), rangeio.RangeNotSupportedError),
    ],
)
def test_range_answers_are_validated(
    fault_server: FaultServer, faults: Faults, error: type
) -> None:
    with rangeio.RangeStream(fault_server.url(DATA), retries=0) as rs:
        rs.add((1000, 2000))
        fault_server.faults = faults
        with pytest.raises(error):
            rs.read()


def test_changed_file_is_refused(fault_server: FaultServer) -> None:
    data = fault_server.get_file(DATA)
    with rangeio.RangeStream(fault_server.url(DATA)) as rs:
        rs.add((0, 10))
        fault_server.replace(DATA, data[::-1])
        with pytest.raises(rangeio.RemoteChangedError):
            rs.read()


def test_async_range_stream(fault_server: FaultServer) -> None:
    data = fault_server.get_file(DATA)

    async def main() -> None:
        async with rangeio.aio.RangeStream(fault_server.url(DATA)) as rs:
            assert rs.total_bytes == len(data) and rs.stats.requests == 1
            first = await rs.add((5, 50), name="first")
            await rs.add((-10, 0), name="last")
            assert await rs.read() == data[-10:]
            rs.activate("first")
            assert await rs.read(5) == data[5:10]
            assert await first.read() == data[10:50]
            for i in range(520):
                await rs.add((10_000 + i * 1000, 10_000 + i * 1000 + 64), name=f"r{i}")
            for i in range(520):
                assert await rs.activate(f"r{i}").read(8) == data[10_000 + i * 1000 :][:8]
                assert rs.open_responses <= 8

    asyncio.run(main())


def test_initial_negative_range(fault_server: FaultServer) -> None:
    data = fault_server.get_file(DATA)
    with rangeio.RangeStream(fault_server.url(DATA), byte_range=(-100, 0)) as rs:
        assert rs.read() == data[-100:]


# -- range-streams' promises: ranges' values, empty ranges, pruning_level, activate, one request


def test_ranges_values_read_bytes(fault_server: FaultServer, client: Any) -> None:
    data = fault_server.get_file(DATA)
    with rangeio.RangeStream(fault_server.url(DATA), client) as rs:
        rs.add((0, 100), name="head")
        rs.add((-50, 0), name="tail")
        head = rs.ranges[ByteRange(0, 100)]
        assert isinstance(head, rangeio.RangeResponse)
        assert rs.ranges[(0, 100)] is head  # one face per range; a tuple names the same key
        assert head.read(10) == data[:10] and head.read() == data[10:100]
        tail_key = ByteRange(len(data) - 50, len(data))
        assert rs.ranges[tail_key].read() == data[-50:]
        assert [r.name for r in rs.ranges.values()] == ["head", "tail"]
        assert rs.ranges[PyRange(0, 100)] is head
        assert (5, 6) not in rs.ranges


def test_async_ranges_values_are_awaitable(fault_server: FaultServer) -> None:
    data = fault_server.get_file(DATA)

    async def main() -> None:
        async with rangeio.aio.RangeStream(fault_server.url(DATA)) as rs:
            await rs.add((1000, 1100))
            await rs.add((0, 10), activate=False)
            response = rs.ranges[(1000, 1100)]
            assert isinstance(response, rangeio.aio.RangeResponse)
            assert await response.read() == data[1000:1100]
            assert await rs.ranges[(0, 10)].read() == data[:10]
            assert rs.active is response  # the one added with activate=False did not take over

    asyncio.run(main())


@pytest.mark.parametrize(
    "empty", [(0, 0), PyRange(0, 0), ByteRange(0, 0), (7, 7)], ids=["tuple", "pyrange", "br", "7"]
)
def test_empty_range_adds_nothing(fault_server: FaultServer, empty: Any) -> None:
    data = fault_server.get_file(DATA)
    with rangeio.RangeStream(fault_server.url(DATA), byte_range=empty) as rs:
        assert rs.total_bytes == len(data)  # set by the opening probe
        assert len(rs.ranges) == 0 and len(fault_server.requests) == 1
        response = rs.add(empty)
        assert response.read() == b"" and response.is_consumed()
        assert len(rs.ranges) == 0 and len(fault_server.requests) == 1
        with pytest.raises(ValueError, match="no active range"):
            rs.read()

    async def main() -> None:
        async with rangeio.aio.RangeStream(fault_server.url(DATA), byte_range=empty) as ars:
            assert ars.total_bytes == len(data) and len(ars.ranges) == 0

    asyncio.run(main())


def test_pruning_level_can_change_and_is_checked(fault_server: FaultServer) -> None:
    with pytest.raises(ValueError, match="pruning_level"):
        rangeio.RangeStream(fault_server.url(DATA), pruning_level=3)
    assert fault_server.requests == []  # refused before any request
    with rangeio.RangeStream(fault_server.url(DATA)) as rs:
        rs.add((0, 1000), name="a")
        rs.pruning_level = 2
        assert rs.pruning_level == 2
        with pytest.raises(rangeio.RangeOverlapError):
            rs.add((500, 1500))
        rs.pruning_level = 1
        rs.add((500, 1500), name="b")
        assert list(rs.ranges) == [ByteRange(500, 1500)]  # burnt, not replanted
        for bad in (3, -1, "1", True, 1.0, None):
            with pytest.raises(ValueError, match="pruning_level"):
                rs.pruning_level = bad  # type: ignore[assignment]
        assert rs.pruning_level == 1


def test_add_without_activating(fault_server: FaultServer) -> None:
    data = fault_server.get_file(DATA)
    with rangeio.RangeStream(fault_server.url(DATA)) as rs:
        rs.add((0, 10), name="first")
        later = rs.add((100, 110), name="later", activate=False)
        assert rs.active.name == "first" and rs.read() == data[:10]
        assert later.read() == data[100:110]
        rs.add((100, 110), activate=False)  # present already: stays inactive
        assert rs.active.name == "first"


def test_seek_back_after_the_whole_range_arrived(fault_server: FaultServer) -> None:
    """A small range comes whole in one chunk; seeking back must not hand out the bytes
    after the read position."""
    data = fault_server.get_file(DATA)
    with rangeio.RangeStream(fault_server.url(DATA)) as rs:
        r = rs.add((0, 100))
        assert r.read(5) == data[:5]
        r.seek(0)
        assert r.read(5) == data[:5]
        r.seek(50)
        assert r.read() == data[50:100]


def _gets(server: FaultServer) -> list[str | None]:
    return [r.range for r in server.requests if r.method == "GET"]


def test_single_request_serves_every_range_from_one_response(
    fault_server: FaultServer, opener: Any
) -> None:
    """Ranges added out of order, read out of order: one request after the probe, covering
    the lowest start to the highest stop; bytes of ranges passed over are kept for them."""
    data = fault_server.get_file(DATA)
    url = fault_server.url(DATA)
    spans = {"b": (50_000, 60_000), "a": (100, 200), "c": (20_000, 20_100)}

    def check(got: dict[str, bytes]) -> None:
        for name, (start, stop) in spans.items():
            assert got[name] == data[start:stop], name
        assert _gets(fault_server) == ["bytes=0-0", "bytes=100-59999"]

    if not opener.is_async:
        with rangeio.RangeStream(url, opener.client, single_request=True) as rs:
            for name, span in spans.items():
                rs.add(span, name=name)
            assert len(fault_server.requests) == 1  # nothing until the first read
            got = {"b": rs.activate("b").read()}  # the last in the file, read first
            assert rs.open_responses == 0  # its end reached: the response is finished
            got["a"] = rs.activate("a").read()
            rs.activate("a").seek(0)
            assert rs.read(10) == data[100:110]  # seeking back costs nothing
            got["c"] = rs.activate("c").read()
            check(got)
            with pytest.raises(rangeio.SingleRequestError):
                rs.add((300, 400))  # passed over, held by no range
            with pytest.raises(rangeio.SingleRequestError):
                rs.add((59_000, 61_000))  # past the response's span
            assert rs.add((120, 150)).read() == data[120:150]  # held by "a", replanted
        check(got)
        return

    async def main() -> None:
        async with rangeio.aio.RangeStream(url, opener.client, single_request=True) as rs:
            for name, span in spans.items():
                await rs.add(span, name=name)
            got = {"b": await rs.activate("b").read()}
            got["a"] = await rs.ranges[(100, 200)].read()
            got["c"] = await rs.activate("c").read()
            check(got)
            with pytest.raises(rangeio.SingleRequestError):
                await rs.add((300, 400))

    opener._run(main())


def test_single_request_ranges_added_while_reading(fault_server: FaultServer) -> None:
    """A range added after the first read is served if the response has not passed it."""
    data = fault_server.get_file(DATA)
    with rangeio.RangeStream(fault_server.url(DATA), single_request=True) as rs:
        rs.add((0, 10), name="start")
        rs.add((200_000, 200_010), name="end")
        assert rs.activate("start").read() == data[:10]
        ahead = rs.add((100_000, 100_500), activate=False)  # ahead of the response: fine
        assert rs.activate("end").read() == data[200_000:200_010]
        assert ahead.read() == data[100_000:100_500]
        assert _gets(fault_server) == ["bytes=0-0", "bytes=0-200009"]
