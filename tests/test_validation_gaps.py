"""Answers that looked valid and were not, or were valid and refused: every face, every adapter.

- a 200 carrying a Content-Range (a range answer with the wrong status) is never the whole file;
- a size learned after bytes were validated never shrinks the file below them;
- multipart parts must be disjoint; the body is not read past its close delimiter;
- a body that delivered every byte, then lost its connection, has succeeded;
- an honest 206 for another range than asked (shifted, widened by an aligning cache) is used.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import rangeio
import rangeio.aio
from rangeio.testing import Faults, FaultServer
from tests.adapters import Opener
from tests.conftest import make_bytes
from tests.raw_server import RawConnection, RawRequest, RawServer, response_head, serve_range

SIZE = 50_000
DATA = make_bytes(SIZE, seed=11)
PATH = "/v.bin"
FAST = rangeio.RetryPolicy(attempts=2, backoff=0.01, max_backoff=0.02)
QUICK = rangeio.Timeout(connect=2.0, read=2.0)
STREAM_KINDS = ["sync", "async"]
# How long a read that must not hang may take before the test calls it hung.
HANG = 10.0


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer({PATH: DATA}) as srv:
        yield srv


def raw(handler: Callable[[RawConnection, RawRequest], None], keep_alive: bool = False) -> Any:
    return RawServer(handler, keep_alive=keep_alive)


def _range_of(request: RawRequest, size: int) -> tuple[int, int] | None:
    """[start, stop) of a single-range request (None for none)."""
    spec = request.range
    if not spec or not spec.startswith("bytes=") or "," in spec:
        return None
    first, _, last = spec[6:].partition("-")
    if first:
        return int(first), min(int(last) + 1 if last else size, size)
    return max(size - int(last), 0), size


def _chunked(body: bytes, piece: int = 4096) -> bytes:
    return b"".join(
        b"%x\r\n%s\r\n" % (len(body[i : i + piece]), body[i : i + piece])
        for i in range(0, len(body), piece)
    )


def within(seconds: float, call: Callable[[], Any], on_hang: Callable[[], None]) -> Any:
    """Run ``call`` in a thread; if it has not returned after ``seconds``, call ``on_hang``
    (which stops the server, so the thread ends) and fail: it hung."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        on_hang()
        thread.join(HANG)
        pytest.fail(f"did not return within {seconds} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


# -- a 200 carrying a Content-Range ----------------------------------------------------------


def _200_with_content_range(conn: RawConnection, request: RawRequest) -> None:
    """Every GET is answered 200, but with the Content-Range and body of the last 100 bytes
    (a range answer whose status a proxy rewrote)."""
    body = DATA[-100:]
    conn.send(
        response_head(
            200,
            {
                "Content-Range": f"bytes {SIZE - 100}-{SIZE - 1}/{SIZE}",
                "Content-Length": str(len(body)),
                "ETag": '"raw-1"',
            },
        )
        + (body if request.method == "GET" else b"")
    )


@pytest.mark.parametrize("prefetch", [100, 0])
def test_200_with_content_range_at_open_is_not_the_file(opener: Opener, prefetch: int) -> None:
    with (
        raw(_200_with_content_range) as srv,
        pytest.raises(rangeio.ProtocolError, match="Content-Range"),
    ):
        opener(srv.url(), prefetch_bytes=prefetch, retries=FAST, timeout=QUICK)


def test_200_with_content_range_is_not_the_whole_download(opener: Opener, tmp_path: Path) -> None:
    dest = tmp_path / "out.bin"
    with raw(_200_with_content_range) as srv:
        with pytest.raises(rangeio.ProtocolError, match="Content-Range"):
            opener.haul(srv.url(), dest, timeout=QUICK)
        with pytest.raises(rangeio.ProtocolError, match="Content-Range"):
            opener.download(srv.url(), dest, retries=1, timeout=QUICK)
    assert not dest.exists()


@pytest.mark.parametrize("kind", STREAM_KINDS)
def test_200_with_content_range_is_not_a_stream(kind: str) -> None:
    with (
        raw(_200_with_content_range) as srv,
        pytest.raises(rangeio.ProtocolError, match="Content-Range"),
    ):
        _stream_read(srv.url(), kind, (0, 10), retries=FAST, timeout=QUICK)


def _stream_read(
    url: str,
    kind: str,
    span: tuple[int, int],
    server: FaultServer | None = None,
    faults: Faults | None = None,
    **options: Any,
) -> bytes:
    """Open a RangeStream, switch ``faults`` on (after the open), read ``span``."""
    if kind == "sync":
        with rangeio.RangeStream(url, **options) as rs:
            if server is not None:
                server.faults = faults
            return bytes(rs.add(span).read())

    async def main() -> bytes:
        async with rangeio.aio.RangeStream(url, **options) as rs:
            if server is not None:
                server.faults = faults
            return bytes(await (await rs.add(span)).read())

    return asyncio.run(main())


# -- a size learned later --------------------------------------------------------------------


def _star_total_then_small_head(conn: RawConnection, request: RawRequest) -> None:
    """Ranges are answered with `/*` totals; HEAD then says the file is 50 bytes, though bytes up
    to 1000 were already sent."""
    if request.method == "HEAD":
        conn.send(response_head(200, {"Content-Length": "50", "ETag": '"raw-1"'}))
        return
    span = _range_of(request, SIZE)
    assert span is not None
    start, stop = span
    body = DATA[start:stop]
    head = {
        "Content-Range": f"bytes {start}-{stop - 1}/*",
        "Content-Length": str(len(body)),
        "ETag": '"raw-1"',
    }
    conn.send(response_head(206, head) + body)


def test_a_smaller_size_from_head_never_shrinks_the_file(opener: Opener) -> None:
    with (
        raw(_star_total_then_small_head) as srv,
        pytest.raises(rangeio.RemoteChangedError, match="already received"),
    ):
        opener(srv.url(), prefetch_bytes=1000, prefetch_direction="START", retries=FAST)


# -- multipart: disjoint parts, no reading past the close delimiter ---------------------------


def test_overlapping_parts_are_a_protocol_error(server: FaultServer, opener: Opener) -> None:
    with opener(server.url(PATH), prefetch_bytes=0, retries=FAST, multipart=True) as f:
        server.faults = Faults(overlapping_parts=True)
        with pytest.raises(rangeio.ProtocolError, match="overlaps"):
            f.read_ranges([(0, 100), (20_000, 20_100)])


def test_overlapping_parts_never_give_wrong_bytes(server: FaultServer, opener: Opener) -> None:
    # Unprobed, the refused multipart answer makes the file ask range by range instead.
    with opener(server.url(PATH), prefetch_bytes=0, retries=FAST) as f:
        server.faults = Faults(overlapping_parts=True)
        got = f.read_ranges([(0, 100), (20_000, 20_100)])
    assert got == [DATA[0:100], DATA[20_000:20_100]]


def _multipart(spans: list[tuple[int, int]], boundary: str = "BOUND") -> bytes:
    out = b""
    for start, stop in spans:
        out += (
            (
                f"--{boundary}\r\nContent-Type: application/octet-stream\r\n"
                f"Content-Range: bytes {start}-{stop - 1}/{SIZE}\r\n\r\n"
            ).encode()
            + DATA[start:stop]
            + b"\r\n"
        )
    return out + f"--{boundary}--\r\n".encode()


EPILOGUE_FRAMINGS = ["close", "chunked", "huge-length"]


def _endless_epilogue(framing: str) -> Callable[[RawConnection, RawRequest], None]:
    """Single ranges are answered honestly; a multi-range request gets a complete multipart
    body, then an epilogue that never ends, framed by the connection's close, by chunks never
    terminated, or by a Content-Length far beyond it."""

    def handler(conn: RawConnection, request: RawRequest) -> None:
        if request.range is None or "," not in request.range:
            conn.send(serve_range(DATA, request))
            return
        body = _multipart(request.spans())
        headers = {"Content-Type": "multipart/byteranges; boundary=BOUND", "ETag": '"raw-1"'}
        filler = b"epilogue " * 2000
        if framing == "chunked":
            headers["Transfer-Encoding"] = "chunked"
            conn.send(response_head(206, headers) + _chunked(body))
            conn.endless(lambda i: _chunked(filler))
        else:
            if framing == "huge-length":
                headers["Content-Length"] = str(10**15)
            conn.send(response_head(206, headers) + body)
            conn.endless(lambda i: filler)

    return handler


@pytest.mark.parametrize("framing", EPILOGUE_FRAMINGS)
def test_endless_epilogue_does_not_hang_read_ranges(opener: Opener, framing: str) -> None:
    wanted = [(0, 100), (20_000, 20_100), (40_000, 40_100)]
    with (
        raw(_endless_epilogue(framing), keep_alive=True) as srv,
        opener(srv.url(), prefetch_bytes=0, retries=FAST, multipart=True) as f,
    ):
        got = within(HANG, lambda: f.read_ranges(wanted), srv.stop)
    assert got == [DATA[a:b] for a, b in wanted]


def test_endless_epilogue_fault_server(server: FaultServer, opener: Opener) -> None:
    wanted = [(0, 100), (20_000, 20_100)]
    with opener(server.url(PATH), prefetch_bytes=0, retries=FAST, multipart=True) as f:
        server.faults = Faults(endless=True, chunked=True)
        got = within(HANG, lambda: f.read_ranges(wanted), server.stop)
    assert got == [DATA[a:b] for a, b in wanted]


# -- every byte arrived, then the connection went ---------------------------------------------


def _complete_then_cut(ignore_range: bool = False) -> Callable[[RawConnection, RawRequest], None]:
    """Chunked answers holding every byte, closed before the terminating ``0`` chunk. The
    opening 1-byte request is answered whole, so that the file opens."""

    def handler(conn: RawConnection, request: RawRequest) -> None:
        span = _range_of(request, SIZE)
        # Each connection serves one answer; saying so keeps clients from reusing it.
        if span == (0, 1):
            conn.send(serve_range(DATA, request, {"Connection": "close"}))
            return
        headers = {"ETag": '"raw-1"', "Transfer-Encoding": "chunked", "Connection": "close"}
        if ignore_range or span is None:
            status, body = 200, DATA
        else:
            start, stop = span
            status, body = 206, DATA[start:stop]
            headers["Content-Range"] = f"bytes {start}-{stop - 1}/{SIZE}"
        conn.send(response_head(status, headers) + _chunked(body))

    return handler


def test_complete_then_cut_206_is_a_success(opener: Opener) -> None:
    with (
        raw(_complete_then_cut()) as srv,
        opener(srv.url(), prefetch_bytes=0, retries=FAST, timeout=QUICK) as f,
    ):
        f.seek(10_000)
        assert f.read(5000) == DATA[10_000:15_000]
        assert f.read_ranges([(100, 200), (30_000, 30_050)]) == [
            DATA[100:200],
            DATA[30_000:30_050],
        ]
        assert f.stats.retries == 0


def test_complete_then_cut_200_of_a_known_size_is_a_success(opener: Opener) -> None:
    with (
        raw(_complete_then_cut(ignore_range=True)) as srv,
        opener(srv.url(), prefetch_bytes=0, retries=FAST, timeout=QUICK) as f,
    ):
        f.seek(10_000)
        assert f.read(100) == DATA[10_000:10_100]
        assert f.stats.retries == 0


@pytest.mark.parametrize("kind", STREAM_KINDS)
def test_complete_then_cut_stream(kind: str) -> None:
    with raw(_complete_then_cut()) as srv:
        got = _stream_read(srv.url(), kind, (1000, 9000), retries=0, timeout=QUICK)
    assert got == DATA[1000:9000]


def _cut_then_resumed_complete(conn: RawConnection, request: RawRequest) -> None:
    """A plain GET gets a 200 cut after 20,000 bytes; a resume (``bytes=N-``) gets a chunked 206
    with every byte to the end, closed before its terminating chunk."""
    span = _range_of(request, SIZE)
    if span is None:
        head = {"ETag": '"raw-1"', "Content-Length": str(SIZE)}
        conn.send(response_head(200, head) + DATA[:20_000])
        return
    start, stop = span
    head = {
        "ETag": '"raw-1"',
        "Transfer-Encoding": "chunked",
        "Content-Range": f"bytes {start}-{stop - 1}/{SIZE}",
    }
    conn.send(response_head(206, head) + _chunked(DATA[start:stop]))


def test_complete_then_cut_resumed_haul(opener: Opener, tmp_path: Path) -> None:
    dest = tmp_path / "out.bin"
    with raw(_cut_then_resumed_complete) as srv:
        with pytest.raises(rangeio.PartialDownloadError):
            opener.haul(srv.url(), dest, timeout=QUICK)
        result = opener.haul(srv.url(), dest, timeout=QUICK)
        assert srv.requests[-1].range == "bytes=20000-"
    assert dest.read_bytes() == DATA
    assert result.sha256 == hashlib.sha256(DATA).hexdigest()


# -- an honest 206 for another range than asked ----------------------------------------------


@pytest.mark.parametrize("block", [512, 4096])
def test_aligned_ranges_are_used(server: FaultServer, opener: Opener, block: int) -> None:
    server.faults = Faults(align_ranges=block)
    with opener(server.url(PATH), retries=FAST, prefetch_bytes=1000) as f:
        assert f.size == SIZE
        f.seek(5000)
        assert f.read(100) == DATA[5000:5100]
        f.seek(SIZE - 10)
        assert f.read() == DATA[-10:]
        assert f.read_ranges([(10, 20), (30_001, 30_003)]) == [DATA[10:20], DATA[30_001:30_003]]


@pytest.mark.parametrize("shift", [1, -1, 300])
def test_a_shifted_answer_is_used_and_the_rest_fetched(
    server: FaultServer, opener: Opener, shift: int
) -> None:
    with opener(server.url(PATH), retries=FAST, prefetch_bytes=0) as f:
        server.faults = Faults(content_range_shift=shift, times=1)
        f.seek(5000)
        assert f.read(1000) == DATA[5000:6000]
        # One request answered shifted, one follow-up for the bytes it lacked; no retry.
        assert f.stats.retries == 0


def test_a_server_that_always_shifts_cannot_give_every_byte(
    server: FaultServer, opener: Opener
) -> None:
    with opener(server.url(PATH), retries=FAST, prefetch_bytes=0) as f:
        server.faults = Faults(content_range_shift=1)
        f.seek(5000)
        # Byte 5000 is never sent: the last follow-up's answer holds none of what it asks.
        with pytest.raises(rangeio.ProtocolError, match="holds none"):
            f.read(100)


@pytest.mark.parametrize("kind", STREAM_KINDS)
def test_aligned_and_shifted_streams(server: FaultServer, kind: str) -> None:
    url, span, want = server.url(PATH), (5000, 9000), DATA[5000:9000]
    assert _stream_read(url, kind, span, server, Faults(align_ranges=4096), retries=FAST) == want
    # Shifted forward: bytes 5700.. arrive first and are held until 5000..5700 have come.
    shifted = Faults(content_range_shift=700, times=1)
    assert _stream_read(url, kind, span, server, shifted, retries=FAST) == want
    shifted = Faults(content_range_shift=-700, times=1)
    assert _stream_read(url, kind, span, server, shifted, retries=FAST) == want


@pytest.mark.parametrize(
    "faults",
    [Faults(align_ranges=4096), Faults(content_range_shift=-7, times=1)],
    ids=["aligned", "shifted-back"],
)
def test_a_wider_resume_is_written_where_its_bytes_belong(
    server: FaultServer, opener: Opener, tmp_path: Path, faults: Faults
) -> None:
    dest = tmp_path / "out.bin"
    server.faults = Faults(truncate_after=20_000, times=1)
    with pytest.raises(rangeio.PartialDownloadError):
        opener.haul(server.url(PATH), dest)
    # The resume asks for bytes=20000- and gets an answer that starts earlier (and, shifted,
    # ends 7 bytes short: the next attempt asks for those).
    server.faults = faults
    result = opener.download(server.url(PATH), dest, retries=FAST)
    assert dest.read_bytes() == DATA
    assert result.sha256 == hashlib.sha256(DATA).hexdigest()
    assert any(r.headers.get("range") == "bytes=20000-" for r in server.requests)


@pytest.mark.parametrize("shift", [7, -7])
def test_shifted_download_is_never_written_at_the_asked_offset(  # a guard of the new path
    server: FaultServer, opener: Opener, tmp_path: Path, shift: int
) -> None:
    dest = tmp_path / "out.bin"
    server.faults = Faults(content_range_shift=shift)
    policy = rangeio.DownloadPolicy(min_segment_bytes=5000)
    with pytest.raises(rangeio.RangeioError):
        opener.download(server.url(PATH), dest, connections=4, retries=FAST, policy=policy)
    part = dest.with_name(dest.name + ".part")
    # Whatever was written sits where its bytes belong.
    if part.exists():
        written = part.read_bytes()
        for i in range(0, len(written), 997):
            assert written[i] in (0, DATA[i]), i
    assert not dest.exists()
