"""Files used after os.fork(): they work in the child on connections of its own, or raise
rangeio.ForkError; they never hang, even when the parent was mid-request at the fork."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest

import rangeio
import rangeio.aio
from rangeio.testing import Faults, FaultServer
from tests.poll import wait_until

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
    pytest.mark.timeout(60),
]

DATA = "/data.bin"
CHILD_SECONDS = 20.0  # far above what a child needs; reaching it means the child hung


def in_child(check: Callable[[], None]) -> tuple[str, str]:
    """Fork; run ``check`` in the child. Returns (outcome, detail): "ok", "error" (an exception
    and its text) or "hung" (the child was killed after CHILD_SECONDS)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe, never return into pytest
        os.close(read_end)
        try:
            check()
            message = "ok\n"
        except BaseException as exc:
            message = f"error\n{type(exc).__module__}.{type(exc).__qualname__}: {exc}"
        os.write(write_end, message.encode())
        os._exit(0)
    os.close(write_end)
    deadline = time.monotonic() + CHILD_SECONDS
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.02)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(read_end)
        return "hung", ""
    with os.fdopen(read_end, "rb") as pipe:
        outcome, _, detail = pipe.read().decode().partition("\n")
    return outcome, detail


@pytest.fixture
def busy_parent(fault_server: FaultServer) -> Iterator[tuple[rangeio.HttpFile, bytes, list[str]]]:
    """A file (rangeio's own pool) with bytes cached, and two threads in the middle of slow
    requests at the moment the test forks: one reading the file object itself (so its buffered
    layer's lock is held), one reading a clone (a fetch in flight on the shared file)."""
    data = fault_server.get_file(DATA)
    f = rangeio.open(fault_server.url(DATA), prefetch_bytes=0)
    assert f.read(1000) == data[:1000]
    fault_server.faults = Faults(delay=1.0, times=2)
    started = threading.Barrier(3)
    parent_errors: list[str] = []

    def slow_read(cursor: rangeio.HttpFile, offset: int) -> None:
        started.wait()
        cursor.seek(offset)
        if cursor.read(5000) != data[offset : offset + 5000]:
            parent_errors.append(f"parent read at {offset} was wrong")

    clone = f.clone()
    threads = [
        threading.Thread(target=slow_read, args=(f, 2_000_000)),
        threading.Thread(target=slow_read, args=(clone, 1_000_000)),
    ]
    before = len(fault_server.requests)
    for t in threads:
        t.start()
    started.wait()
    # Both requests sent, answers delayed: locks held, fetches in flight.
    wait_until(lambda: len(fault_server.requests) == before + 2, "both slow requests")
    yield f, data, parent_errors
    for t in threads:
        t.join(10)
    # The parent's own reads finished correctly despite the fork.
    assert not parent_errors
    assert not any(t.is_alive() for t in threads)
    f.close()


def test_bare_fork_while_parent_mid_request(
    busy_parent: tuple[rangeio.HttpFile, bytes, list[str]], fault_server: FaultServer
) -> None:
    f, data, _ = busy_parent
    connections_before = fault_server.connections

    def check() -> None:
        # The very object another thread was reading (its lock is the parent thread's), the
        # bytes the parent's in-flight fetches were getting, and a vectored read.
        f.seek(0)
        assert f.read(1000) == data[:1000]  # cached before the fork: no request
        f.seek(2_000_000)
        assert f.read(5000) == data[2_000_000:2_005_000]
        clone = f.clone()
        clone.seek(1_000_000)
        assert clone.read(5000) == data[1_000_000:1_005_000]
        got = f.read_ranges([(10, 20), (3_000_000, 3_000_100)])
        assert got == [data[10:20], data[3_000_000:3_000_100]]

    assert in_child(check) == ("ok", "")
    # The child connected on its own (a socket shared with the parent would not show here).
    assert fault_server.connections > connections_before


def test_fork_during_a_stream(fault_server: FaultServer) -> None:
    """A sequential reader's streaming response is the parent's socket: the child must not
    read from it (that would split the body between two processes) but ask again."""
    data = fault_server.get_file(DATA)
    with rangeio.open(fault_server.url(DATA), prefetch_bytes=0, stream_after_bytes=64 * 1024) as f:
        fault_server.faults = Faults(throttle=2_000_000)
        got = bytearray()
        while len(got) < 256 * 1024:
            got += f.read(16 * 1024)
        pos = f.tell()

        def check() -> None:
            rest = f.read(600_000)
            assert rest == data[pos : pos + 600_000]

        assert in_child(check) == ("ok", "")
        # The parent's stream goes on untouched.
        assert f.read(100_000) == data[pos : pos + 100_000]
        assert bytes(got) == data[: len(got)]


def test_fork_during_a_range_stream(fault_server: FaultServer) -> None:
    """A RangeStream range half read at the fork: the child gets the rest of the range, whole,
    on a request of its own (never a short read), and the parent's response goes on."""
    data = fault_server.get_file(DATA)
    with rangeio.RangeStream(fault_server.url(DATA)) as stream:
        fault_server.faults = Faults(throttle=2_000_000)
        part = stream.add((100_000, 900_000), name="part")
        head = part.read(64 * 1024)

        def check() -> None:
            rest = part.read()
            assert rest == data[100_000 + len(head) : 900_000], f"child got {len(rest)} bytes"

        assert in_child(check) == ("ok", "")
        assert head + part.read() == data[100_000:900_000]


def _pool_read(offset: int) -> bytes:
    assert _SHARED is not None
    clone = _SHARED.clone()
    clone.seek(offset)
    return clone.read(4096)


_SHARED: rangeio.HttpFile | None = None


def test_multiprocessing_fork_pool(fault_server: FaultServer) -> None:
    global _SHARED
    data = fault_server.get_file(DATA)
    offsets = [i * 150_000 for i in range(20)]
    with rangeio.open(fault_server.url(DATA)) as f:
        assert f.read(100) == data[:100]
        _SHARED = f
        try:
            with multiprocessing.get_context("fork").Pool(3) as pool:
                results = pool.map_async(_pool_read, offsets).get(timeout=CHILD_SECONDS)
        finally:
            _SHARED = None
        assert results == [data[o : o + 4096] for o in offsets]
        f.seek(2_500_000)
        assert f.read(10) == data[2_500_000:2_500_010]


def test_borrowed_client_raises_fork_error_in_child(fault_server: FaultServer) -> None:
    import requests

    data = fault_server.get_file(DATA)
    with (
        requests.Session() as session,
        rangeio.open(fault_server.url(DATA), client=session, prefetch_bytes=0) as f,
    ):
        assert f.read(1000) == data[:1000]

        def check() -> None:
            f.seek(0)
            assert f.read(1000) == data[:1000]  # cached: needs no connection
            f.seek(2_000_000)
            f.read(10)  # needs the network

        outcome, detail = in_child(check)
        assert outcome == "error"
        assert detail.startswith("rangeio.errors.ForkError:")
        f.seek(2_000_000)
        assert f.read(10) == data[2_000_000:2_000_010]  # the parent is unaffected


def test_async_file_raises_fork_error_in_child(fault_server: FaultServer) -> None:
    data = fault_server.get_file(DATA)
    loop = asyncio.new_event_loop()
    try:
        f = loop.run_until_complete(rangeio.aio.open(fault_server.url(DATA), prefetch_bytes=0))
        f.seek(0)
        assert loop.run_until_complete(f.read(100)) == data[:100]

        def check() -> None:
            f.seek(3_000_000)
            asyncio.run(f.read(10))

        outcome, detail = in_child(check)
        assert outcome == "error"
        assert detail.startswith("rangeio.errors.ForkError:")
        f.seek(3_000_000)
        assert loop.run_until_complete(f.read(10)) == data[3_000_000:3_000_010]
        loop.run_until_complete(f.close())
    finally:
        loop.close()


@pytest.mark.skipif(sys.platform != "linux", reason="fork with threads: tested on Linux")
def test_forks_in_a_loop_never_hang(fault_server: FaultServer) -> None:
    """Forks at random moments of 4 reader threads: every child reads right or fails typed."""
    data = fault_server.get_file(DATA)
    fault_server.faults = Faults(delay=0.01)
    with rangeio.open(fault_server.url(DATA), prefetch_bytes=0, cache_bytes=256 * 1024) as f:
        stop = threading.Event()

        def reader(seed: int) -> None:
            cursor = f.clone()
            offset = seed * 100_000
            while not stop.is_set():
                offset = (offset + 70_001) % (len(data) - 5000)
                cursor.seek(offset)
                assert cursor.read(5000) == data[offset : offset + 5000]

        threads = [threading.Thread(target=reader, args=(i,), daemon=True) for i in range(4)]
        for t in threads:
            t.start()
        try:
            for i in range(8):
                # Fork while the readers are at work: each fork comes after a new request.
                seen = len(fault_server.requests)
                wait_until(
                    lambda seen=seen: len(fault_server.requests) > seen,
                    "the readers' next request",
                )

                def check(i: int = i) -> None:
                    offset = 123_457 * (i + 1)
                    f.seek(offset)
                    assert f.read(20_000) == data[offset : offset + 20_000]

                assert in_child(check) == ("ok", "")
        finally:
            stop.set()
            for t in threads:
                t.join(10)


def test_fork_bookkeeping_does_not_keep_files_alive(fault_server: FaultServer) -> None:
    """The registries the fork hooks walk hold weak references: closed, dropped files leave."""
    import gc

    from rangeio._engine import remote as remote_module
    from rangeio._sync import file as file_module
    from rangeio._sync import runner as runner_module

    def sizes() -> tuple[int, int, int]:
        gc.collect()
        return (
            len(remote_module._REMOTES),
            len(runner_module._RUNNERS),
            len(file_module._FILES),
        )

    before = sizes()
    files = [rangeio.open(fault_server.url(DATA), prefetch_bytes=0) for _ in range(5)]
    clones = [f.clone() for f in files]
    assert sizes() == (before[0] + 5, before[1] + 5, before[2] + 10)
    for f in files:
        f.close()
    del files, clones, f
    assert sizes() == before


def test_a_borrowed_client_in_the_child_gets_fresh_helper_threads(
    fault_server: FaultServer,
) -> None:
    """A borrowed session sends on helper threads (`_sync/handoff.py`); the parent's stay behind
    at a fork, so a file the child opens with a session of its own must get new ones (else its
    send waits for a helper that does not exist until the head timeout)."""
    import requests

    data = fault_server.get_file(DATA)
    url = fault_server.url(DATA)
    with requests.Session() as session, rangeio.open(url, client=session, prefetch_bytes=0) as f:
        assert f.read(100) == data[:100]  # the parent has an idle helper now

    def check() -> None:
        timeout = rangeio.Timeout(connect=5, read=5, head=3)
        once = rangeio.RetryPolicy(attempts=1)
        with (
            requests.Session() as own,
            rangeio.open(url, client=own, prefetch_bytes=0, timeout=timeout, retries=once) as g,
        ):
            g.seek(1000)
            assert g.read(100) == data[1000:1100]

    outcome, detail = in_child(check)
    assert outcome == "ok", detail
