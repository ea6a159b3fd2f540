"""Connections kept across answers whose body rangeio does not need, on every adapter.

An error status (a 404 probe, a 503 before its retry), a multipart body whose close delimiter
has arrived and a HEAD leave a small, framed rest; rangeio drains it so the next request reuses
the connection (`_core/drain.py`). A large, close-delimited or endless rest is still dropped,
and a drain never hangs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pytest

import rangeio
from tests.adapters import ALL_ADAPTERS, Opener
from tests.conftest import make_bytes
from tests.raw_server import RawConnection, RawRequest, RawServer, response_head, serve_range
from tests.servers.nginx import Nginx

SIZE = 50_000
DATA = make_bytes(SIZE, seed=12)
FAST = rangeio.RetryPolicy(attempts=3, backoff=0.01, max_backoff=0.02)
QUICK = rangeio.Timeout(connect=2.0, read=2.0)
PROBES = 20
# nginx's own 404 page is about 150 bytes; this is a typical error body.
ERROR_BODY = b"<html><body><h1>404 Not Found</h1></body></html>\n"


@pytest.fixture(params=ALL_ADAPTERS)
def shared(request: pytest.FixtureRequest) -> Iterator[Opener]:
    """An opener whose files all share one client (rangeio's own clients are per file)."""
    opener = Opener(request.param)
    try:
        if opener.kind == "urllib3":
            import urllib3

            pool = urllib3.PoolManager()
            opener.client = pool
            opener._closers.append(pool.clear)
        elif opener.kind == "aiohttp":
            session = opener.client = opener._run(_aiohttp_session())
            opener._closers.append(partial(_close_session, opener, session))
        yield opener
    finally:
        opener.close()


async def _aiohttp_session() -> Any:
    import aiohttp

    return aiohttp.ClientSession()


def _close_session(opener: Opener, session: Any) -> None:
    opener._run(session.close())


def _answers(status: int, body: bytes, framing: str = "length") -> Callable[..., None]:
    """Every request gets ``status`` with ``body``, framed by a Content-Length or chunks."""

    def handler(conn: RawConnection, request: RawRequest) -> None:
        headers = {"Content-Type": "text/html"}
        if framing == "chunked":
            headers["Transfer-Encoding"] = "chunked"
            payload = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if body else b"0\r\n\r\n"
        else:
            headers["Content-Length"] = str(len(body))
            payload = body
        conn.send(response_head(status, headers) + payload)

    return handler


def _probe(opener: Opener, url: str) -> None:
    with pytest.raises(rangeio.HTTPStatusError):
        opener(url, retries=FAST, timeout=QUICK)


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_404_probes_reuse_one_connection(shared: Opener, framing: str) -> None:
    with RawServer(_answers(404, ERROR_BODY, framing), keep_alive=True) as srv:
        for i in range(PROBES):
            _probe(shared, srv.url(f"/missing{i}.aux.xml"))
        srv.wait_for_requests(PROBES)
        assert srv.connections == 1


def test_multipart_answers_from_nginx_reuse_the_connection(nginx: Nginx, opener: Opener) -> None:
    # A guard: nginx writes the close delimiter and its CRLF together, so its multipart bodies
    # are complete when the parser finishes; they must stay on one connection.
    data = (nginx.www / "data.bin").read_bytes()
    groups = [
        [(i * 100_000 + j * 7_000, i * 100_000 + j * 7_000 + 500) for j in range(3)]
        for i in range(5)
    ]
    mark = len(nginx.log_lines())
    with opener(nginx.url("data.bin"), prefetch_bytes=0, multipart=True) as f:
        for group in groups:
            assert f.read_ranges(group) == [data[a:b] for a, b in group]
        # The open, then one multipart request per group, all on one connection.
        assert nginx.connections_since(mark, 1 + len(groups)) == {
            nginx.connections_since(mark, 1).pop()
        }


def _multipart(spans: list[tuple[int, int]]) -> bytes:
    parts = [
        b"--BOUND\r\nContent-Range: bytes %d-%d/%d\r\n\r\n%s\r\n" % (a, b - 1, SIZE, DATA[a:b])
        for a, b in spans
    ]
    return b"".join(parts) + b"--BOUND--"


def _late_epilogue(conn: RawConnection, request: RawRequest) -> None:
    """Single ranges answered honestly; a multipart body whose closing CRLF (counted in its
    Content-Length) comes a moment after the close delimiter, as a separate write."""
    if request.range is None or "," not in request.range:
        conn.send(serve_range(DATA, request))
        return
    body = _multipart(request.spans())
    headers = {
        "Content-Type": "multipart/byteranges; boundary=BOUND",
        "ETag": '"raw-1"',
        "Content-Length": str(len(body) + 2),
    }
    if conn.send(response_head(206, headers) + body):
        conn.drip(b"\r\n", 0.1, piece=2)


def test_multipart_epilogue_after_the_close_delimiter_is_drained(opener: Opener) -> None:
    # Ranges 20 kB apart: farther than multipart_gap_bytes, so each group is one multipart.
    groups = [
        [(i * 300 + j * 20_000, i * 300 + j * 20_000 + 200) for j in range(3)] for i in range(4)
    ]
    with (
        RawServer(_late_epilogue, keep_alive=True) as srv,
        opener(srv.url(), prefetch_bytes=0, multipart=True, retries=FAST, timeout=QUICK) as f,
    ):
        for group in groups:
            assert f.read_ranges(group) == [DATA[a:b] for a, b in group]
        srv.wait_for_requests(1 + len(groups))
        assert srv.connections == 1


def _unavailable_then_served(conn: RawConnection, request: RawRequest) -> None:
    """Two 503s with a small body (and Retry-After: 0) on every other request, then the range."""
    if len(conn.server.requests) % 3:
        body = b"Service Unavailable\n"
        head = {"Content-Length": str(len(body)), "Retry-After": "0"}
        conn.send(response_head(503, head) + body)
        return
    conn.send(serve_range(DATA, request))


def test_retries_after_503_reuse_the_connection(opener: Opener) -> None:
    with RawServer(_unavailable_then_served, keep_alive=True) as srv:
        with opener(srv.url(), prefetch_bytes=1000, retries=FAST, timeout=QUICK) as f:
            assert f.read(1000) == DATA[:1000]
        srv.wait_for_requests(3)
        assert srv.connections == 1


def _error_body(kind: str) -> Callable[..., None]:
    """404s whose body is not worth draining: large, endless (chunked or close-delimited), or
    dripped so slowly that the drain's time bound ends it."""

    def handler(conn: RawConnection, request: RawRequest) -> None:
        if kind == "large":
            body = b"x" * (1024 * 1024)
            conn.send(response_head(404, {"Content-Length": str(len(body))}) + body)
            return
        if kind == "close":
            conn.send(response_head(404, {"Content-Type": "text/html"}))
            conn.endless(lambda i: b"not found " * 100)
            return
        conn.send(response_head(404, {"Transfer-Encoding": "chunked"}))
        if kind == "endless-chunked":
            conn.endless(lambda i: b"400\r\n" + b"n" * 1024 + b"\r\n")
        else:  # dripped: 16 bytes every 50 ms, far above the low-speed floor, never ending
            conn.endless(lambda i: b"10\r\n" + b"d" * 16 + b"\r\n", interval=0.05)

    return handler


@pytest.mark.parametrize("kind", ["large", "close", "endless-chunked", "dripped"])
def test_an_error_body_not_worth_draining_is_dropped(shared: Opener, kind: str) -> None:
    probes = 1 if kind == "dripped" else 3  # a dripped body costs the drain's whole bound
    with RawServer(_error_body(kind), keep_alive=True) as srv:
        started = time.monotonic()
        for i in range(probes):
            _probe(shared, srv.url(f"/missing{i}"))
        # The drain's bound (`_core/drain.py` DRAIN_SECONDS, 1 s) per probe, with room.
        assert time.monotonic() - started < probes * 2.5
        srv.wait_for_requests(probes)
        assert srv.connections == probes


def _widened(conn: RawConnection, request: RawRequest) -> None:
    """Every single range answered with 1000 bytes more than asked (a cache aligning to its
    blocks), the tail it adds written a moment after the bytes asked for."""
    spans = request.spans()
    assert len(spans) == 1
    (start, stop), tail = spans[0], 1000
    end = min(stop + tail, SIZE)
    headers = {
        "ETag": '"raw-1"',
        "Content-Range": f"bytes {start}-{end - 1}/{SIZE}",
        "Content-Length": str(end - start),
    }
    if conn.send(response_head(206, headers) + DATA[start:stop]):
        conn.drip(DATA[stop:end], 0.1, piece=end - stop or 1)


def test_the_unneeded_tail_of_a_widened_206_is_drained(opener: Opener) -> None:
    offsets = [5_000, 15_000, 25_000, 35_000]
    with (
        RawServer(_widened, keep_alive=True) as srv,
        opener(srv.url(), prefetch_bytes=0, retries=FAST, timeout=QUICK) as f,
    ):
        for at in offsets:
            assert f.read_ranges([(at, at + 100)]) == [DATA[at : at + 100]]
        srv.wait_for_requests(1 + len(offsets))
        assert srv.connections == 1
        # Every body byte received is counted, the drained tails too: 1 + 1000 at the open.
        assert f.stats.bytes_fetched == 1001 + len(offsets) * 1100


def test_download_retries_after_503_reuse_the_connection(shared: Opener, tmp_path: Any) -> None:
    """The download engine releases a status answer the same way (`_engine/body.py` release)."""
    with RawServer(_unavailable_then_served, keep_alive=True) as srv:
        dest = tmp_path / "out.bin"
        result = shared.download(srv.url(), dest, retries=FAST, timeout=QUICK)
        assert dest.read_bytes() == DATA
        assert result.requests == 3
        assert srv.connections == 1
