"""Bounds on the whole response, and 1xx interim responses, through every adapter.

A read timeout is per socket read: a status line or headers dripped a byte at a time, or chunked
trailers sent forever, never fire it. These servers do exactly that, and each must end in
NetworkTimeoutError within the configured bounds (the generous HANG_GUARD only catches a hang;
no test asserts speed). Interim responses (103 Early Hints, several 1xx in a row) must be
skipped, never taken for the answer.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import rangeio
import rangeio.aio
from tests.adapters import Opener, sync_client
from tests.conftest import make_bytes
from tests.raw_server import RawConnection, RawRequest, raw_server, serve_range

DATA = make_bytes(20_000, seed=11)
NO_RETRY = rangeio.RetryPolicy(attempts=1)
# Half a second for the head and for a too-slow body window (the floor is high, so that the
# bytes already received do not pay for a longer wait); a drip never trips `read`. Tests of
# correct bytes use RELAXED instead, so that a loaded machine cannot make them time out.
BOUNDS = rangeio.Timeout(connect=2, read=1, low_speed=rangeio.LowSpeed(256 * 1024, 0.5), head=0.5)
RELAXED = rangeio.Timeout(connect=5, read=5, head=10)
HANG_GUARD = 10.0  # far above the bounds: only a hang (the bug) reaches it
DRIP = 0.2  # seconds between two dripped bytes: well under the read timeout


def open_bounded(opener: Opener, url: str, **options: Any) -> Any:
    options.setdefault("timeout", BOUNDS)
    options.setdefault("retries", NO_RETRY)
    options.setdefault("prefetch_bytes", 0)
    return opener(url, **options)


def timed(call: Callable[[], Any]) -> tuple[BaseException | None, float]:
    started = time.monotonic()
    try:
        call()
    except BaseException as exc:  # the test inspects it
        return exc, time.monotonic() - started
    return None, time.monotonic() - started


def answer_first(handler: Callable[[RawConnection, RawRequest], None]) -> Any:
    """A handler that answers the first request (the open) honestly, then runs ``handler``."""

    def handle(conn: RawConnection, request: RawRequest) -> None:
        if len(conn.server.requests) == 1:
            conn.send(serve_range(DATA, request))
        else:
            handler(conn, request)

    return handle


def drip_status(conn: RawConnection, request: RawRequest) -> None:
    conn.drip(serve_range(DATA, request), DRIP)


def drip_headers(conn: RawConnection, request: RawRequest) -> None:
    answer = serve_range(DATA, request)
    status_line, _, rest = answer.partition(b"\r\n")
    conn.send(status_line + b"\r\n")
    conn.drip(rest, DRIP)


def endless_trailers(conn: RawConnection, request: RawRequest) -> None:
    """The requested bytes, honestly, as one chunk; then chunked trailers, one line every
    0.1 s, forever (the body never ends)."""
    honest = serve_range(DATA, request)
    head, _, body = honest.partition(b"\r\n\r\n")
    lines = [line for line in head.split(b"\r\n") if not line.startswith(b"Content-Length")]
    lines.append(b"Transfer-Encoding: chunked")
    chunk = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n"
    conn.send(b"\r\n".join(lines) + b"\r\n\r\n" + chunk)
    conn.endless(lambda i: f"X-Trailer-{i}: {i}\r\n".encode(), interval=0.1)


@pytest.mark.parametrize("handler", [drip_status, drip_headers], ids=["status-line", "headers"])
def test_dripped_head_ends_in_timeout(opener: Opener, handler: Any) -> None:
    with raw_server(handler) as server:
        error, elapsed = timed(lambda: open_bounded(opener, server.url()))
    assert isinstance(error, rangeio.NetworkTimeoutError), error
    assert elapsed < HANG_GUARD


@pytest.mark.parametrize("handler", [drip_status, drip_headers], ids=["status-line", "headers"])
def test_dripped_head_on_read_ranges_ends_in_timeout(opener: Opener, handler: Any) -> None:
    with (
        raw_server(answer_first(handler), keep_alive=True) as server,
        open_bounded(opener, server.url()) as f,
    ):
        error, elapsed = timed(lambda: f.read_ranges([(1000, 2000), (5000, 6000)]))
    assert isinstance(error, rangeio.NetworkTimeoutError), error
    assert elapsed < HANG_GUARD


def test_endless_trailers_end_in_timeout(opener: Opener) -> None:
    with (
        raw_server(answer_first(endless_trailers), keep_alive=True) as server,
        open_bounded(opener, server.url()) as f,
    ):
        f.seek(1000)
        error, elapsed = timed(lambda: f.read(1000))
    assert isinstance(error, rangeio.NetworkTimeoutError), error
    assert elapsed < HANG_GUARD


def test_endless_trailers_on_open_end_in_timeout(opener: Opener) -> None:
    with raw_server(endless_trailers) as server:
        error, elapsed = timed(lambda: open_bounded(opener, server.url(), prefetch_bytes=1000))
    assert isinstance(error, rangeio.NetworkTimeoutError), error
    assert elapsed < HANG_GUARD


def interim_then_answer(*interims: bytes) -> Callable[[RawConnection, RawRequest], None]:
    def handle(conn: RawConnection, request: RawRequest) -> None:
        conn.send(b"".join(interims) + serve_range(DATA, request))

    return handle


EARLY_HINTS = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n"
PROCESSING = b"HTTP/1.1 102 Processing\r\n\r\n"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


@pytest.mark.parametrize(
    "interims",
    [(EARLY_HINTS,), (CONTINUE, PROCESSING, EARLY_HINTS, EARLY_HINTS)],
    ids=["103", "several"],
)
def test_interim_responses_are_skipped(opener: Opener, interims: tuple[bytes, ...]) -> None:
    with (
        raw_server(interim_then_answer(*interims), keep_alive=True) as server,
        open_bounded(opener, server.url(), timeout=RELAXED) as f,
    ):
        f.seek(3000)
        assert f.read(4000) == DATA[3000:7000]
        assert f.read_ranges([(0, 10), (15_000, 16_000)]) == [DATA[:10], DATA[15_000:16_000]]


def test_endless_interim_responses_end_in_an_error(opener: Opener) -> None:
    # niquests skips interims itself, with no limit of its own: the head timeout ends it.

    def handle(conn: RawConnection, request: RawRequest) -> None:
        conn.endless(lambda i: EARLY_HINTS, interval=0.01)

    with raw_server(handle) as server:
        error, elapsed = timed(lambda: open_bounded(opener, server.url()))
    assert isinstance(error, rangeio.NetworkError), error
    assert elapsed < HANG_GUARD


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_range_stream_meets_the_head_timeout(kind: str) -> None:
    with raw_server(answer_first(drip_status), keep_alive=True) as server:
        url = server.url()
        options: dict[str, Any] = {"timeout": BOUNDS, "retries": NO_RETRY}
        if kind == "sync":

            def run() -> None:
                with rangeio.RangeStream(url, **options) as rs:
                    rs.add((1000, 3000)).read()

        else:

            def run() -> None:
                async def main() -> None:
                    async with rangeio.aio.RangeStream(url, **options) as rs:
                        await (await rs.add((1000, 3000))).read()

                asyncio.run(main())

        error, elapsed = timed(run)
    assert isinstance(error, rangeio.NetworkTimeoutError), error
    assert elapsed < HANG_GUARD


def test_sync_range_stream_meets_the_head_timeout_on_every_client(client: Any) -> None:
    """RangeStream through each borrowed sync client: the stream's request is dripped."""
    with raw_server(answer_first(drip_headers), keep_alive=True) as server:
        options: dict[str, Any] = {"timeout": BOUNDS, "retries": NO_RETRY}

        def run() -> None:
            with rangeio.RangeStream(server.url(), client, **options) as rs:
                rs.add((1000, 3000)).read()

        error, elapsed = timed(run)
    assert isinstance(error, rangeio.NetworkTimeoutError), error
    assert elapsed < HANG_GUARD


@pytest.mark.parametrize("handler", [drip_status, drip_headers], ids=["status-line", "headers"])
def test_borrowed_pool_meets_the_head_timeout(handler: Any) -> None:
    """A urllib3.PoolManager the user passes keeps its own connections, which hand over no
    socket during the head: the open and a read_ranges on a kept-alive connection still end
    at the head timeout."""
    import urllib3

    options: dict[str, Any] = {"timeout": BOUNDS, "retries": NO_RETRY, "prefetch_bytes": 0}
    with urllib3.PoolManager() as pool:
        with raw_server(handler) as server:
            error, elapsed = timed(lambda: rangeio.open(server.url(), client=pool, **options))
        assert isinstance(error, rangeio.NetworkTimeoutError), error
        assert elapsed < HANG_GUARD
        with (
            raw_server(answer_first(handler), keep_alive=True) as server,
            rangeio.open(server.url(), client=pool, **options) as f,
        ):
            error, elapsed = timed(lambda: f.read_ranges([(1000, 2000), (5000, 6000)]))
        assert isinstance(error, rangeio.NetworkTimeoutError), error
        assert elapsed < HANG_GUARD


BOUNDED: dict[str, Any] = {"timeout": BOUNDS, "retries": NO_RETRY, "prefetch_bytes": 0}


@pytest.fixture(params=["requests", "httpx", "niquests", "urllib3.PoolManager"])
def borrowed(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Each borrowed sync client that reads a head without handing over its socket."""
    if request.param == "urllib3.PoolManager":
        import urllib3

        with urllib3.PoolManager() as pool:
            yield pool
        return
    client, close = sync_client(request.param)
    try:
        yield client
    finally:
        close()


def test_an_abandoned_exchange_is_closed_once_the_client_returns(borrowed: Any) -> None:
    """The caller gets its NetworkTimeoutError while the client still reads a dripped head;
    when the server at last finishes the head (and starts a body that never ends), the
    response the client returns is closed (the server sees the connection go) and its
    watchdog guard released."""
    from rangeio._transport.watchdog import WATCHDOG

    finish = threading.Event()
    hung_up = threading.Event()

    def handle(conn: RawConnection, request: RawRequest) -> None:
        head, _, _ = serve_range(DATA, request).partition(b"\r\n\r\n")
        head = head.replace(b"Content-Length", b"X-Was-Length")
        head += b"\r\nTransfer-Encoding: chunked\r\n\r\n"
        sent = 0  # a byte of the status line every DRIP until the test says finish
        while not finish.wait(DRIP) and sent < 8:
            if not conn.send(head[sent : sent + 1]):
                return
            sent += 1
        if not finish.wait(HANG_GUARD) or not conn.send(head[sent:]):
            return
        conn.endless(lambda i: b"1\r\nX\r\n", interval=0.02)
        if not conn.server.stopping.is_set():
            hung_up.set()

    guarded = len(WATCHDOG)
    with (
        raw_server(answer_first(handle), keep_alive=True) as server,
        rangeio.open(server.url(), client=borrowed, **BOUNDED) as f,
    ):
        error, elapsed = timed(lambda: f.read_ranges([(1000, 2000)]))
        assert isinstance(error, rangeio.NetworkTimeoutError), error
        assert elapsed < HANG_GUARD
        finish.set()
        assert hung_up.wait(HANG_GUARD), "the abandoned response was never closed"
        deadline = time.monotonic() + HANG_GUARD
        while len(WATCHDOG) > guarded:
            assert time.monotonic() < deadline, "the abandoned guard was never released"
            time.sleep(0.01)


def test_a_process_with_an_abandoned_exchange_exits() -> None:
    """A borrowed session's helper thread is still reading a status line that never ends when
    the caller has its NetworkTimeoutError: the process exits anyway."""

    def never_ending_status(conn: RawConnection, request: RawRequest) -> None:
        conn.endless(lambda i: b"H", interval=DRIP)

    with raw_server(never_ending_status) as server:
        script = textwrap.dedent(
            f"""
            import requests, rangeio
            timeout = rangeio.Timeout(connect=2, read=1, head=0.5)
            try:
                rangeio.open({server.url()!r}, client=requests.Session(), timeout=timeout,
                             retries=1)
            except rangeio.NetworkTimeoutError:
                print("timed out")
            """
        )
        done = subprocess.run(
            [sys.executable, "-c", script], timeout=HANG_GUARD * 3, capture_output=True
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == b"timed out", done.stdout
        assert server.requests, "the request never reached the server"


@pytest.mark.parametrize("face", ["download", "haul"])
@pytest.mark.parametrize("handler", [drip_status, endless_trailers], ids=["head", "trailers"])
def test_downloads_meet_the_bounds(opener: Opener, face: str, handler: Any, tmp_path: Path) -> None:
    with raw_server(handler) as server:
        fetch = getattr(opener, face)
        options: dict[str, Any] = {"timeout": BOUNDS}
        if face == "download":
            options["retries"] = NO_RETRY
        error, elapsed = timed(lambda: fetch(server.url(), tmp_path / "out.bin", **options))
    # A download reports an interruption as PartialDownloadError (resumable), the timeout its
    # cause.
    assert isinstance(error, rangeio.PartialDownloadError), error
    assert isinstance(error.__cause__, rangeio.NetworkTimeoutError), error.__cause__
    assert elapsed < HANG_GUARD


def test_hanging_server_never_blocks_interpreter_exit() -> None:
    """A thread left reading from a server that drips forever must not keep the process alive
    past the bounds: the exit waits for rangeio's fetch threads, and they are cut."""
    with raw_server(drip_status) as server:
        script = textwrap.dedent(
            f"""
            import threading, rangeio
            timeout = rangeio.Timeout(connect=2, read=1, head=1.0)
            def reader():
                try:
                    rangeio.open({server.url()!r}, timeout=timeout, retries=1)
                except rangeio.NetworkError:
                    pass
            threading.Thread(target=reader).start()
            """
        )
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-c", script], timeout=HANG_GUARD * 3, capture_output=True
        )
        assert done.returncode == 0, done.stderr
        assert time.monotonic() - started < HANG_GUARD * 3


# -- the same faults as FaultServer switches (what a user's own tests would reach for) --------

FAULT_PATH = "/f.bin"


@pytest.fixture
def fault_server() -> Any:
    from rangeio.testing import FaultServer

    with FaultServer({FAULT_PATH: DATA}) as server:
        yield server


def test_fault_server_early_hints_are_skipped(opener: Opener, fault_server: Any) -> None:
    from rangeio.testing import Faults

    fault_server.faults = Faults(early_hints=3)
    with open_bounded(opener, fault_server.url(FAULT_PATH), timeout=RELAXED) as f:
        f.seek(2000)
        assert f.read(5000) == DATA[2000:7000]
    assert len(fault_server.requests) >= 2


@pytest.mark.parametrize("switch", ["drip_head", "endless_trailers"])
def test_fault_server_slow_heads_and_trailers_end_in_timeout(
    opener: Opener, fault_server: Any, switch: str
) -> None:
    from rangeio.testing import Faults

    with open_bounded(opener, fault_server.url(FAULT_PATH)) as f:
        if switch == "drip_head":
            fault_server.faults = Faults(drip_head=DRIP)
        else:
            fault_server.faults = Faults(endless_trailers=0.1)
        f.seek(2000)
        error, elapsed = timed(lambda: f.read(5000))
    assert isinstance(error, rangeio.NetworkTimeoutError), error
    assert elapsed < HANG_GUARD


@pytest.mark.parametrize(
    "interims", [(EARLY_HINTS,), (CONTINUE, EARLY_HINTS, PROCESSING)], ids=["103", "several"]
)
def test_borrowed_pool_skips_interim_responses(interims: tuple[bytes, ...]) -> None:
    """A urllib3.PoolManager the user passes keeps its own connections (never reconfigured),
    whose http.client takes a 103 for the answer: rangeio reads on to the real one."""
    import urllib3

    with (
        urllib3.PoolManager() as pool,
        raw_server(interim_then_answer(*interims), keep_alive=True) as server,
    ):
        options: dict[str, Any] = {"timeout": RELAXED, "retries": NO_RETRY, "prefetch_bytes": 0}
        with rangeio.open(server.url(), client=pool, **options) as f:
            f.seek(3000)
            assert f.read(4000) == DATA[3000:7000]
            assert f.read_ranges([(0, 10), (15_000, 16_000)]) == [DATA[:10], DATA[15_000:16_000]]
        # The connections it got back (closed: http.client still holds the 1xx) serve again.
        with rangeio.open(server.url(), client=pool, **options) as again:
            assert again.read(100) == DATA[:100]
