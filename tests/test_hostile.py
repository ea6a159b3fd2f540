"""Hostile and broken servers: bounded memory and typed errors through the file, stream and download faces."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import rangeio
import rangeio.aio
from rangeio._core import exchange as exchange_module
from rangeio._core.multipart import MAX_PART_HEADER_BYTES, MAX_PREAMBLE_BYTES, MultipartParser
from rangeio._core.redirects import MAX_REDIRECTS
from rangeio._transport.base import CHUNK_BYTES
from rangeio.testing import Faults, FaultServer
from tests.adapters import Opener
from tests.conftest import make_bytes

PATH = "/h.bin"
SIZE = 300_000
FAST = rangeio.RetryPolicy(attempts=2, backoff=0.01, max_backoff=0.02)
# Two seconds to connect, half a second between two reads of a body.
QUICK = (2.0, 0.5)
STREAM_KINDS = ["sync", "async"]
# Enough multipart parts that the body (about 5.6 MB) dwarfs what the parser may hold.
MANY_PARTS = 50_000
# Where the body is refused from the headers alone, thousands are enough (and cheaper to build).
SOME_PARTS = 5_000
# The download face runs on the same transports as the file face, which covers every adapter;
# for the slow faults one sync and one async adapter are enough.
TWO_ADAPTERS = pytest.mark.parametrize("opener", ["urllib3", "aiohttp"], indirect=True)


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer({PATH: make_bytes(SIZE, seed=7)}) as srv:
        yield srv


def open_file(server: FaultServer, opener: Opener, **options: Any) -> Any:
    options.setdefault("retries", FAST)
    options.setdefault("prefetch_bytes", 0)
    return opener(server.url(PATH), **options)


def stream_read(
    server: FaultServer, kind: str, span: tuple[int, int], faults: Faults | None, **options: Any
) -> tuple[bytes, rangeio.Stats]:
    """Open a RangeStream on a well-behaved server, switch ``faults`` on, read ``span``."""
    options.setdefault("retries", FAST)
    url = server.url(PATH)
    if kind == "sync":
        with rangeio.RangeStream(url, **options) as rs:
            server.faults = faults
            try:
                return rs.add(span).read(), rs.stats
            finally:
                server.faults = None

    async def main() -> tuple[bytes, rangeio.Stats]:
        async with rangeio.aio.RangeStream(url, **options) as rs:
            server.faults = faults
            try:
                return await (await rs.add(span)).read(), rs.stats
            finally:
                server.faults = None

    return asyncio.run(main())


def stream_open(server: FaultServer, kind: str, **options: Any) -> None:
    """Open (and close) a RangeStream: its one request meets whatever faults are on."""
    options.setdefault("retries", FAST)
    url = server.url(PATH)
    if kind == "sync":
        rangeio.RangeStream(url, **options).close()
        return

    async def main() -> None:
        async with rangeio.aio.RangeStream(url, **options):
            pass

    asyncio.run(main())


def cut_haul(server: FaultServer, opener: Opener, dest: Path, cut: int = 100_000) -> int:
    """A haul cut after ``cut`` body bytes, so the next attempt is a range request (a resume)."""
    server.faults = Faults(truncate_after=cut, times=1)
    with pytest.raises(rangeio.PartialDownloadError) as info:
        opener.haul(server.url(PATH), dest, policy=rangeio.DownloadPolicy(checkpoint_bytes=1))
    server.faults = None
    assert 0 < info.value.bytes_done <= cut
    return info.value.bytes_done


class _Watermarks:
    """The most any multipart parser held at once (buffer + part body) and the parts it kept."""

    def __init__(self) -> None:
        self.buffered = 0
        self.parts = 0
        self.feeds = 0


@pytest.fixture
def watermarks(monkeypatch: pytest.MonkeyPatch) -> _Watermarks:
    """Record the multipart parser's buffered bytes after every feed, even one that raises."""
    marks = _Watermarks()

    class Recording(MultipartParser):
        def feed(self, chunk: bytes | bytearray | memoryview) -> None:
            try:
                super().feed(chunk)
            finally:
                marks.feeds += 1
                marks.buffered = max(marks.buffered, len(self._buf) + len(self._body))
                marks.parts = max(marks.parts, len(self.parts))

    monkeypatch.setattr(exchange_module, "MultipartParser", Recording)
    return marks


# -- multipart/byteranges: thousands of tiny parts, missing or wrong boundary -----------------


def test_thousands_of_tiny_parts_file(
    server: FaultServer, opener: Opener, watermarks: _Watermarks
) -> None:
    """50,000 one-byte parts answering two ranges: refused at the third part, and the parser
    never holds more than one transport chunk plus a part header, though the body is ~5.6 MB."""
    with open_file(server, opener, multipart=True) as f:
        server.faults = Faults(multipart_parts=MANY_PARTS)
        with pytest.raises(rangeio.ProtocolError, match="more parts than the 2 asked for"):
            f.read_ranges([(1000, 1100), (200_000, 200_100)])
    assert watermarks.feeds >= 1
    assert watermarks.parts <= 2
    assert watermarks.buffered <= CHUNK_BYTES + MAX_PART_HEADER_BYTES


def test_parts_that_were_not_asked_for_file(
    server: FaultServer, opener: Opener, watermarks: _Watermarks
) -> None:
    with open_file(server, opener, multipart=True) as f:
        server.faults = Faults(multipart_parts=MANY_PARTS)
        with pytest.raises(rangeio.ProtocolError, match="was not asked for"):
            f.read_ranges([(1000, 1001), (200_000, 200_001)])
    assert watermarks.parts <= 1
    assert watermarks.buffered <= CHUNK_BYTES + MAX_PART_HEADER_BYTES


@pytest.mark.parametrize("bad", ["missing", "wrong"])
def test_bad_boundary_file(
    server: FaultServer, opener: Opener, watermarks: _Watermarks, bad: str
) -> None:
    """A missing boundary is refused from the headers; a wrong one is refused once the preamble
    limit is passed (a large body) or the body ends (a small one): a ProtocolError at once, not
    a retried "cut" body. With multipart="auto" the file falls back to single ranges."""
    data = server.get_file(PATH)
    big = [(0, 100_000), (200_000, 250_000)]
    small = [(10, 20), (30_000, 30_010)]
    with open_file(server, opener, multipart=True) as f:
        server.faults = Faults(bad_boundary=bad)  # type: ignore[arg-type]
        for ranges in (big, small):
            sent = len(server.requests)
            with pytest.raises(rangeio.ProtocolError, match="multipart"):
                f.read_ranges(ranges)
            assert len(server.requests) == sent + 1  # not retried: asking again gets the same
    assert watermarks.buffered <= CHUNK_BYTES + MAX_PREAMBLE_BYTES
    with open_file(server, opener) as f:
        assert f.read_ranges(big) == [data[a:b] for a, b in big]
        assert f._remote.multipart_support is False


@pytest.mark.parametrize("kind", STREAM_KINDS)
def test_multipart_answers_stream(server: FaultServer, kind: str) -> None:
    """A stream asks single ranges; a multipart answer is refused from its headers, unread."""
    server.faults = Faults(multipart_parts=SOME_PARTS)
    with pytest.raises(rangeio.ProtocolError, match="multipart"):
        stream_open(server, kind)
    server.faults = None
    with pytest.raises(rangeio.ProtocolError, match="multipart"):
        stream_read(server, kind, (1000, 1100), Faults(multipart_parts=SOME_PARTS))


def test_multipart_answers_download(server: FaultServer, opener: Opener, tmp_path: Path) -> None:
    """A resume (haul) and a parallel download meet multipart answers: ProtocolError, and the
    durable progress of the resume is kept."""
    dest = tmp_path / "out.bin"
    done = cut_haul(server, opener, dest)
    server.faults = Faults(multipart_parts=SOME_PARTS)
    with pytest.raises(rangeio.ProtocolError, match="multipart"):
        opener.haul(server.url(PATH), dest)
    with pytest.raises(rangeio.ProtocolError, match="multipart"):
        opener.download(server.url(PATH), tmp_path / "other.bin", connections=2, retries=FAST)
    server.faults = None
    assert not dest.exists()
    assert opener.download(server.url(PATH), dest).bytes_reused == done
    assert dest.read_bytes() == server.get_file(PATH)


# -- endless bodies ----------------------------------------------------------------------------
#
# The rule: a body is bounded by what its own headers promise. Past a Content-Range span (or past
# a Content-Length the client enforces) the extra bytes are not the file's: a 206 whose framing
# runs on (chunked) is broken, so it is refused (ProtocolError, not retried: asking again gets
# the same); when the framing itself ends at the right length, the bytes are correct and the
# garbage behind them is dropped with the connection. A 200 of unknown length to a range request
# is bounded by the cache budget. Only a download has no such bound: a fresh GET of unknown
# length (chunked) is a legitimate stream of any size, as with curl or wget; the caller bounds
# it (on_progress may raise, and the progress made is kept).


def test_endless_chunked_206_file(server: FaultServer, opener: Opener) -> None:
    with open_file(server, opener) as f:
        server.faults = Faults(endless=True, chunked=True)
        sent = f.stats.requests
        f.seek(100_000)
        with pytest.raises(rangeio.ProtocolError, match="longer than"):
            f.read(5000)
        assert f.stats.requests == sent + 1


def test_endless_200_is_bounded_by_the_cache_budget(server: FaultServer, opener: Opener) -> None:
    budget = 512 * 1024
    with open_file(server, opener, cache_bytes=budget) as f:
        server.faults = Faults(endless=True, chunked=True, ignore_range=True)
        before = f.stats.bytes_fetched
        f.seek(100_000)
        with pytest.raises(rangeio.RangeNotSupportedError, match="cache budget"):
            f.read(5000)
        assert f.stats.bytes_fetched - before <= budget


def test_endless_200_with_a_true_length_file(server: FaultServer, opener: Opener) -> None:
    """The framing ends at the right length: correct bytes; the filler behind them goes with
    the connection, which is not reused (the next file on the same client reads correctly)."""
    data = server.get_file(PATH)
    server.faults = Faults(endless=True, ignore_range=True)
    with open_file(server, opener) as f:
        f.seek(SIZE - 100)
        assert f.read() == data[-100:]
    server.faults = None
    with open_file(server, opener) as f:
        f.seek(5)
        assert f.read(10) == data[5:15]


def test_endless_200_with_a_length_lie_file(server: FaultServer, opener: Opener) -> None:
    server.faults = Faults(endless=True, ignore_range=True, content_length_delta=10**12)
    with pytest.raises(rangeio.RangeNotSupportedError, match="cache budget"):
        open_file(server, opener)
    server.faults = None
    with open_file(server, opener, prefetch_bytes=1000) as f:
        server.faults = Faults(endless=True, ignore_range=True, content_length_delta=10**12)
        f.seek(0)
        with pytest.raises(rangeio.RemoteChangedError, match="size changed"):
            f.read(10)


@pytest.mark.parametrize("kind", STREAM_KINDS)
def test_endless_bodies_stream(server: FaultServer, kind: str) -> None:
    data = server.get_file(PATH)
    span = (100_000, 120_000)
    with pytest.raises(rangeio.ProtocolError, match="longer than"):
        stream_read(server, kind, span, Faults(endless=True, chunked=True))
    for chunked in (False, True):
        faults = Faults(endless=True, chunked=chunked, ignore_range=True)
        with pytest.raises(rangeio.RangeNotSupportedError):
            stream_read(server, kind, span, faults)
    try:
        got, _ = stream_read(server, kind, span, Faults(endless=True))
    except rangeio.NetworkError:
        # aiohttp keeps a connection whose finished response was followed by garbage, parses
        # the garbage as the next response and fails that request (sometimes the one resuming
        # this range): typed, but not the bytes. The sync clients drop such a connection.
        assert kind == "async"
    else:
        assert got == data[span[0] : span[1]]


def test_endless_bodies_download(server: FaultServer, opener: Opener, tmp_path: Path) -> None:
    data = server.get_file(PATH)
    server.faults = Faults(endless=True, ignore_range=True)
    assert opener.download(server.url(PATH), tmp_path / "a.bin").size == SIZE
    assert (tmp_path / "a.bin").read_bytes() == data

    dest = tmp_path / "b.bin"
    cut_haul(server, opener, dest)
    server.faults = Faults(endless=True, chunked=True)
    sent = len(server.requests)
    with pytest.raises(rangeio.ProtocolError, match="longer than"):
        opener.download(server.url(PATH), dest, retries=FAST)
    assert len(server.requests) == sent + 1  # refused, not retried
    server.faults = None
    opener.download(server.url(PATH), dest)
    assert dest.read_bytes() == data


class _Enough(Exception):
    pass


def test_endless_chunked_download_is_bounded_by_the_caller(
    server: FaultServer, opener: Opener, tmp_path: Path
) -> None:
    """A fresh download of unknown length has no bound of its own; a raising on_progress stops
    it, and what arrived is kept as durable progress."""
    limit = 1024 * 1024
    seen: list[int] = []

    def on_progress(done: int, total: int | None) -> None:
        assert total is None
        seen.append(done)
        if done > limit:
            raise _Enough

    server.faults = Faults(endless=True, chunked=True)
    dest = tmp_path / "out.bin"
    with pytest.raises(_Enough):
        opener.download(server.url(PATH), dest, on_progress=on_progress)
    assert limit < seen[-1] <= limit + CHUNK_BYTES
    assert not dest.exists()
    assert Path(f"{dest}.part").stat().st_size == seen[-1]


# -- header floods and huge header lines ---------------------------------------------------------


@pytest.mark.parametrize(
    "faults",
    [Faults(header_flood=20_000), Faults(huge_header=1024 * 1024)],
    ids=["flood", "huge-line"],
)
def test_header_limits_file(server: FaultServer, opener: Opener, faults: Faults) -> None:
    """Every client refuses these heads (its own limits); rangeio's error is typed, keeps the
    client's as its cause, and the attempts are bounded by the retry policy."""
    server.faults = faults
    with pytest.raises(rangeio.NetworkError) as info:
        open_file(server, opener)
    assert info.value.__cause__ is not None
    assert len(server.requests) == FAST.attempts


@pytest.mark.parametrize("kind", STREAM_KINDS)
def test_header_limits_stream(server: FaultServer, kind: str) -> None:
    for faults in (Faults(header_flood=20_000), Faults(huge_header=1024 * 1024)):
        server.faults = faults
        with pytest.raises(rangeio.NetworkError) as info:
            stream_open(server, kind, retries=0)
        assert info.value.__cause__ is not None
        server.faults = None
        with pytest.raises(rangeio.NetworkError):
            stream_read(server, kind, (10, 20), faults, retries=0)


@TWO_ADAPTERS
def test_header_limits_download(server: FaultServer, opener: Opener, tmp_path: Path) -> None:
    server.faults = Faults(huge_header=1024 * 1024)
    with pytest.raises(rangeio.PartialDownloadError) as info:
        opener.download(server.url(PATH), tmp_path / "out.bin", retries=FAST)
    assert isinstance(info.value.__cause__, rangeio.NetworkError)
    assert len(server.requests) == FAST.attempts
    server.faults = Faults(header_flood=20_000)
    with pytest.raises(rangeio.PartialDownloadError):
        opener.haul(server.url(PATH), tmp_path / "out.bin")


# -- slow loris ----------------------------------------------------------------------------------


def test_slow_loris_file(server: FaultServer, opener: Opener) -> None:
    with open_file(server, opener, timeout=QUICK, retries=0) as f:
        server.faults = Faults(drip=1.0)
        f.seek(1000)
        with pytest.raises(rangeio.NetworkTimeoutError):
            f.read(10)


@pytest.mark.parametrize("kind", STREAM_KINDS)
def test_slow_loris_stream(server: FaultServer, kind: str) -> None:
    with pytest.raises(rangeio.NetworkTimeoutError):
        stream_read(server, kind, (1000, 1010), Faults(drip=1.0), timeout=QUICK, retries=0)


@TWO_ADAPTERS
def test_slow_loris_download(server: FaultServer, opener: Opener, tmp_path: Path) -> None:
    server.faults = Faults(drip=1.0)
    with pytest.raises(rangeio.PartialDownloadError) as info:
        opener.download(server.url(PATH), tmp_path / "out.bin", timeout=QUICK, retries=0)
    assert isinstance(info.value.__cause__, rangeio.NetworkTimeoutError)


def test_read_timeout_is_per_read_not_a_deadline(server: FaultServer) -> None:
    """A byte every 0.2 s never trips a 0.5 s read timeout, though the read takes longer than
    that in all: the timeout bounds silence, as in urllib3, httpx and aiohttp's sock_read. The
    low-speed floor (next tests) is what catches a drip; its default window is a minute."""
    data = server.get_file(PATH)
    got, _ = stream_read(server, "sync", (1000, 1004), Faults(drip=0.2), timeout=QUICK, retries=0)
    assert got == data[1000:1004]


# A byte every 0.2 s passes the 0.5 s read timeout; the floor (100 B/s over 1 s) catches it.
FLOOR = rangeio.Timeout(2.0, 0.5, low_speed=rangeio.LowSpeed(100, 1.0))


def test_low_speed_floor_catches_a_drip_file(server: FaultServer, opener: Opener) -> None:
    with open_file(server, opener, timeout=FLOOR, retries=0) as f:
        server.faults = Faults(drip=0.2)
        f.seek(1000)
        with pytest.raises(rangeio.NetworkTimeoutError, match="low_speed"):
            f.read(50)


@pytest.mark.parametrize("kind", STREAM_KINDS)
def test_low_speed_floor_catches_a_drip_stream(server: FaultServer, kind: str) -> None:
    with pytest.raises(rangeio.NetworkTimeoutError, match="low_speed"):
        stream_read(server, kind, (1000, 1050), Faults(drip=0.2), timeout=FLOOR, retries=0)


@TWO_ADAPTERS
def test_low_speed_floor_catches_a_drip_download(
    server: FaultServer, opener: Opener, tmp_path: Path
) -> None:
    server.faults = Faults(drip=0.2)
    with pytest.raises(rangeio.PartialDownloadError) as info:
        opener.download(server.url(PATH), tmp_path / "out.bin", timeout=FLOOR, retries=0)
    assert isinstance(info.value.__cause__, rangeio.NetworkTimeoutError)
    assert "low_speed" in str(info.value.__cause__)


def test_low_speed_floor_counts_only_waiting(server: FaultServer) -> None:
    """A reader who pauses between chunks is not a slow server. This one takes 16 KiB every
    0.1 s (about 160 KB/s of wall time) against a floor of 1 MB/s over 0.3 s windows: counted
    in wall time it would stall, counted in time spent waiting for the network it does not."""
    data = server.get_file(PATH)
    floor = rangeio.Timeout(2.0, 2.0, low_speed=rangeio.LowSpeed(1_000_000, 0.3))
    with rangeio.RangeStream(server.url(PATH), timeout=floor, retries=0) as stream:
        part = stream.add((0, SIZE), name="all")
        got = bytearray()
        while piece := part.read(16 * 1024):
            got += piece
            time.sleep(0.1)  # the behaviour under test: a reader who pauses (not a sync)
    assert bytes(got) == data


# -- a Content-Range total that changes between responses ---------------------------------------


def test_total_changes_file(server: FaultServer, opener: Opener) -> None:
    with open_file(server, opener) as f:
        server.faults = Faults(total_delta=5)
        f.seek(1000)
        with pytest.raises(rangeio.RemoteChangedError, match="size changed"):
            f.read(10)
    server.faults = None
    with open_file(server, opener, multipart=True) as f:
        server.faults = Faults(total_delta=5)
        with pytest.raises(rangeio.RemoteChangedError):
            f.read_ranges([(10, 20), (200_000, 200_010)])


@pytest.mark.parametrize("kind", STREAM_KINDS)
def test_total_changes_stream(server: FaultServer, kind: str) -> None:
    with pytest.raises(rangeio.RemoteChangedError, match="size changed"):
        stream_read(server, kind, (1000, 1010), Faults(total_delta=-5))


def test_total_changes_download(server: FaultServer, opener: Opener, tmp_path: Path) -> None:
    """A resume whose answer has another total is never spliced: progress is discarded (the
    change is the cause), and the next attempt downloads the file afresh."""
    dest = tmp_path / "out.bin"
    cut_haul(server, opener, dest)
    server.faults = Faults(total_delta=5)
    with pytest.raises(rangeio.PartialDownloadError) as info:
        opener.haul(server.url(PATH), dest)
    assert info.value.bytes_done == 0
    assert isinstance(info.value.__cause__, rangeio.RemoteChangedError)
    assert not Path(f"{dest}.part").exists()
    cut_haul(server, opener, dest)
    server.faults = Faults(total_delta=5)
    result = opener.download(server.url(PATH), dest, retries=FAST)
    assert dest.read_bytes() == server.get_file(PATH)
    assert result.bytes_reused == 0
    first, second = server.requests[-2:]
    assert first.range is not None and second.range is None  # a resume refused, then afresh


# -- redirect loops ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", STREAM_KINDS)
def test_redirect_loop_stream(server: FaultServer, kind: str) -> None:
    server.set_faults("/loop", Faults(redirect_to="/loop"))
    with pytest.raises(rangeio.NetworkError, match="redirects"):
        rangeio.RangeStream(server.url("/loop")) if kind == "sync" else asyncio.run(
            rangeio.aio.RangeStream(server.url("/loop")).open()
        )
    assert len(server.requests) == MAX_REDIRECTS + 1


def test_redirect_loop_download(server: FaultServer, opener: Opener, tmp_path: Path) -> None:
    server.set_faults("/loop", Faults(redirect_to="/loop"))
    with pytest.raises(rangeio.NetworkError, match="redirects"):
        opener.download(server.url("/loop"), tmp_path / "out.bin", retries=FAST)
    assert len(server.requests) == MAX_REDIRECTS + 1
    assert not (tmp_path / "out.bin").exists()
