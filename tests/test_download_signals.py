"""Downloads under Ctrl-C and cancellation, with validators the record cannot hold, and a bare 416;
for every sync and async adapter."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import rangeio
import rangeio.aio
from rangeio._core import control
from rangeio._disk import PartFiles
from rangeio.testing import Faults, FaultServer
from tests.adapters import SYNC_ADAPTERS, Opener
from tests.conftest import make_bytes
from tests.raw_server import RawConnection, RawRequest, raw_server, response_head, serve_range

DATA = "/data.bin"
FAST = rangeio.RetryPolicy(attempts=4, backoff=0.01, max_backoff=0.05)
# No periodic checkpoint within a test's lifetime: whatever the record holds after an
# interruption was written by the interruption itself.
NO_PERIODIC = rangeio.DownloadPolicy(
    min_segment_bytes=256 * 1024, checkpoint_bytes=1 << 40, checkpoint_seconds=3600.0
)
STEAL_SLACK = 64 * 1024  # what one cut-off body may write past a stolen stop


def ctrl_of(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part.ctrl")


def ranges_seen(server: FaultServer) -> list[str | None]:
    return [r.range for r in server.requests if r.method == "GET"]


# -- Ctrl-C and cancellation during a parallel download ----------------------------------------


class _Trigger:
    """Calls ``fire`` once, from on_progress, when at least ``after`` bytes are written."""

    def __init__(self, after: int, fire: Any) -> None:
        self.after = after
        self.fire = fire
        self.at: int | None = None
        self._lock = threading.Lock()

    def __call__(self, done: int, total: int | None) -> None:
        with self._lock:
            if self.at is not None or done < self.after:
                return
            self.at = done
        self.fire()


def interrupt_parallel(opener: Opener, url: str, dest: Path, how: str, after: int) -> int:
    """A 4-connection download interrupted once ``after`` bytes are written: by a
    KeyboardInterrupt raised in a progress callback (a worker thread), by SIGINT to the main
    thread, or (async) by cancelling the task. Returns the progress reported at that moment."""
    options: dict[str, Any] = {"connections": 4, "policy": NO_PERIODIC, "retries": 0}
    if opener.is_async:
        loop = opener._loop
        assert loop is not None
        holder: list[asyncio.Task[Any]] = []
        trigger = _Trigger(after, lambda: holder[0].cancel())
        coro = rangeio.aio.download(url, dest, client=opener.client, on_progress=trigger, **options)
        holder.append(loop.create_task(coro))
        with pytest.raises(asyncio.CancelledError):
            loop.run_until_complete(holder[0])
    else:

        def fire() -> None:
            if how == "signal":
                os.kill(os.getpid(), signal.SIGINT)  # delivered to the main thread, in Join
            else:
                raise KeyboardInterrupt

        trigger = _Trigger(after, fire)
        with pytest.raises(KeyboardInterrupt):
            rangeio.download(url, dest, client=opener.client, on_progress=trigger, **options)
    assert trigger.at is not None
    return trigger.at


def check_interrupted(opener: Opener, server: FaultServer, tmp_path: Path, how: str) -> None:
    data = server.get_file(DATA)
    dest = tmp_path / "out.bin"
    server.faults = Faults(throttle=1024 * 1024)  # per connection: 4 run side by side
    seen = interrupt_parallel(opener, server.url(DATA), dest, how, after=len(data) // 3)

    record = control.decode(ctrl_of(dest).read_bytes())
    saved = control.durable_bytes(record)
    # The interruption checkpointed: everything reported written is recorded ...
    assert saved >= seen
    assert sum(1 for s in record.segments if s.cursor > s.start) >= 2
    part = (tmp_path / "out.bin.part").read_bytes()
    for segment in record.segments:  # ... and nothing past what is on disk
        assert part[segment.start : segment.cursor] == data[segment.start : segment.cursor]

    server.clear_faults()
    server.clear_log()
    result = opener.download(server.url(DATA), dest, connections=4, policy=NO_PERIODIC)
    assert dest.read_bytes() == data
    assert result.bytes_reused == saved
    # Each segment resumed from its own durable cursor: little is fetched twice.
    assert result.bytes_transferred <= len(data) - saved + STEAL_SLACK * len(record.segments)
    starts = {int((r or "bytes=0-").split("=")[1].split("-")[0]) for r in ranges_seen(server)}
    unfinished = {s.cursor for s in record.segments if s.cursor < (s.stop or 0)}
    assert unfinished <= starts


def test_interrupted_parallel_download_saves_every_segment(
    fault_server: FaultServer, opener: Opener, tmp_path: Path
) -> None:
    """Sync: KeyboardInterrupt raised by a progress callback, on a worker thread. Async: the
    task is cancelled."""
    check_interrupted(opener, fault_server, tmp_path, "raise")


@pytest.mark.parametrize("kind", SYNC_ADAPTERS)
def test_sigint_during_a_parallel_download_saves_every_segment(
    fault_server: FaultServer, tmp_path: Path, kind: str
) -> None:
    """SIGINT reaches the main thread while it waits for the workers (Ctrl-C)."""
    opener = Opener(kind)
    # As an interactive Python has it, even when this process inherited SIGINT ignored.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        check_interrupted(opener, fault_server, tmp_path, "signal")
    finally:
        signal.signal(signal.SIGINT, previous)
        opener.close()


# -- validators the control record cannot hold --------------------------------------------------


def _cut_haul(opener: Opener, url: str, dest: Path, server: FaultServer, **faults: Any) -> int:
    server.faults = Faults(truncate_after=600_000, times=1, **faults)
    with pytest.raises(rangeio.PartialDownloadError) as info:
        opener.haul(url, dest, policy=rangeio.DownloadPolicy(checkpoint_bytes=128 * 1024))
    return info.value.bytes_done


@pytest.mark.parametrize("etag", ['"' + "e" * 2000 + '"', '"ab\tcd"'], ids=["long", "tab"])
def test_an_unstorable_etag_resumes_on_last_modified(
    fault_server: FaultServer, opener: Opener, tmp_path: Path, etag: str
) -> None:
    data = fault_server.get_file(DATA)
    fault_server.add_file(DATA, data, etag="none")  # Last-Modified only, plus our ETag
    headers = (("ETag", etag),)
    dest = tmp_path / "out.bin"
    done = _cut_haul(opener, fault_server.url(DATA), dest, fault_server, extra_headers=headers)
    assert done > 0
    record = control.decode(ctrl_of(dest).read_bytes())
    assert record.etag is None and record.last_modified is not None
    fault_server.faults = Faults(extra_headers=headers)
    fault_server.clear_log()
    result = opener.haul(fault_server.url(DATA), dest)
    assert dest.read_bytes() == data and result.bytes_reused == done
    assert ranges_seen(fault_server) == [f"bytes={done}-"]
    assert fault_server.requests[0].headers["if-range"] == record.last_modified
    assert result.etag == etag  # the result still reports the server's validator


@pytest.mark.parametrize("etag", ['"' + "e" * 2000 + '"', '"ab\tcd"'], ids=["long", "tab"])
def test_an_unstorable_only_validator_means_a_fresh_transfer_each_time(
    fault_server: FaultServer,
    opener: Opener,
    tmp_path: Path,
    etag: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = fault_server.get_file(DATA)
    fault_server.add_file(DATA, data, etag="none", last_modified=False)
    headers = (("ETag", etag),)
    dest = tmp_path / "out.bin"
    with caplog.at_level(logging.WARNING, logger="rangeio.download"):
        done = _cut_haul(opener, fault_server.url(DATA), dest, fault_server, extra_headers=headers)
    assert done == 0 and not ctrl_of(dest).exists()  # nothing is claimed that cannot resume
    assert any("cannot resume" in r.message for r in caplog.records)
    fault_server.faults = Faults(extra_headers=headers, reset_after=400_000, times=1)
    fault_server.clear_log()
    result = opener.download(fault_server.url(DATA), dest, retries=FAST)
    assert dest.read_bytes() == data and result.bytes_reused == 0
    assert ranges_seen(fault_server) == [None, None]  # never a Range over unpinned bytes


def test_a_10_kib_etag_completes_or_fails_typed(
    fault_server: FaultServer, opener: Opener, tmp_path: Path
) -> None:
    data = fault_server.get_file(DATA)
    fault_server.add_file(DATA, data, etag="none")
    fault_server.faults = Faults(extra_headers=(("ETag", '"' + "e" * 10 * 1024 + '"'),))
    dest = tmp_path / "out.bin"
    if opener.kind == "aiohttp":
        # aiohttp refuses any header line over 8190 bytes (max_field_size) before rangeio sees it.
        with pytest.raises(rangeio.NetworkError):
            opener.download(fault_server.url(DATA), dest, retries=0)
        return
    result = opener.download(fault_server.url(DATA), dest, retries=0)
    assert dest.read_bytes() == data and result.etag is not None and len(result.etag) > 10240


def test_a_url_over_8_kib_downloads_without_resuming(
    fault_server: FaultServer, opener: Opener, tmp_path: Path
) -> None:
    data = fault_server.get_file(DATA)
    path = "/" + "u" * (control.MAX_URL_CHARS + 10)
    fault_server.add_file(path, data)
    url = fault_server.url(path)
    dest = tmp_path / "out.bin"
    assert _cut_haul(opener, url, dest, fault_server) == 0 and not ctrl_of(dest).exists()
    fault_server.faults = Faults(reset_after=400_000, times=1)
    fault_server.clear_log()
    result = opener.download(url, dest, retries=FAST, connections=2)
    assert dest.read_bytes() == data and result.bytes_reused == 0
    assert fault_server.requests[0].range in (None, "bytes=0-")


@pytest.mark.parametrize("connections", [1, 4])
def test_a_total_over_2_62_is_a_typed_error(
    opener: Opener, tmp_path: Path, connections: int
) -> None:
    huge = control.MAX_OFFSET + 1

    def handler(conn: RawConnection, request: RawRequest) -> None:
        # Only the head: the exchange (meaning_of) refuses it before any body is read.
        if request.range:
            head = {"Content-Range": f"bytes 0-{huge - 1}/{huge}", "Content-Length": str(huge)}
            conn.send(response_head(206, {"ETag": '"big"', **head}) + b"x" * 1024)
        else:
            conn.send(response_head(200, {"ETag": '"big"', "Content-Length": str(huge)}))

    dest = tmp_path / "out.bin"
    refused = pytest.raises(rangeio.ProtocolError, match="2\\*\\*62")
    with raw_server(handler) as server, refused:
        opener.download(server.url(), dest, connections=connections, retries=FAST)
    assert not dest.exists() and not ctrl_of(dest).exists()


# -- a bare 416 (no Content-Range) to a resume --------------------------------------------------


class _Switchable:
    """An honest server until ``bare_416`` is set; then every range request gets a 416 without
    Content-Range (and with the file's ETag, as the honest answers carry it)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.bare_416 = False
        self.cut: int | None = None

    def __call__(self, conn: RawConnection, request: RawRequest) -> None:
        if self.bare_416 and request.range:
            conn.send(response_head(416, {"ETag": '"raw-1"', "Content-Length": "0"}))
            return
        answer = serve_range(self.data, request)
        conn.send(answer if self.cut is None else answer[: self.cut])


def test_a_bare_416_with_every_byte_recorded_completes(
    opener: Opener, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(300_000)
    handler = _Switchable(data)
    dest = tmp_path / "out.bin"
    with raw_server(handler) as server:
        # A crash after the last checkpoint, before the rename: the record says total == cursor.
        monkeypatch.setattr(PartFiles, "commit", lambda self: (_ for _ in ()).throw(OSError("x")))
        with pytest.raises(OSError):
            opener.haul(server.url(), dest)
        monkeypatch.undo()
        record = control.decode(ctrl_of(dest).read_bytes())
        assert control.is_complete(record)
        handler.bare_416 = True
        result = opener.haul(server.url(), dest, sha256=hashlib.sha256(data).hexdigest())
        assert server.requests[-1].range == f"bytes={len(data)}-"
    assert result.bytes_transferred == 0 and dest.read_bytes() == data


def test_a_bare_416_with_bytes_missing_restarts_and_says_why(
    opener: Opener, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = os.urandom(300_000)
    handler = _Switchable(data)
    dest = tmp_path / "out.bin"
    with raw_server(handler) as server:
        handler.cut = 200_000  # head + part of the body, then the connection closes
        with pytest.raises(rangeio.PartialDownloadError) as info:
            opener.haul(server.url(), dest)
        assert info.value.bytes_done > 0
        handler.cut, handler.bare_416 = None, True
        logged = caplog.at_level(logging.WARNING, logger="rangeio.download")
        with logged, pytest.raises(rangeio.PartialDownloadError) as again:
            opener.haul(server.url(), dest)
        assert again.value.bytes_done == 0
        assert any(
            "416 without Content-Range" in r.message and str(len(data)) in r.message
            for r in caplog.records
        )
        handler.bare_416 = False
        result = opener.download(server.url(), dest, retries=FAST)
        assert server.requests[-1].range is None  # a fresh start, not a resume
    assert dest.read_bytes() == data and result.bytes_reused == 0


# -- the CLI says "progress saved" only when it is true ------------------------------------------

SRC = str(Path(__file__).resolve().parents[1] / "src")


def rangeio_get(url: str, cwd: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen(
        [sys.executable, "-m", "rangeio", "get", url, "-q", "-o", "out.bin", *extra],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        # SIGINT as a terminal delivers it, even if this process inherited it ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def poll(condition: Any, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def test_cli_ctrl_c_in_a_parallel_get_saves_and_says_so(tmp_path: Path) -> None:
    data = make_bytes(2 * 1024 * 1024, seed=21)
    with FaultServer({"/big.bin": data}) as server:
        server.faults = Faults(throttle=400_000)
        child = rangeio_get(server.url("/big.bin"), tmp_path, "--connections", "4")
        part = tmp_path / "out.bin.part"

        def written() -> bool:
            # The .part is preallocated: look for the bytes themselves, in two segments.
            try:
                with open(part, "rb") as f:
                    head = f.read(64 * 1024)
                    f.seek(len(data) // 2)
                    middle = f.read(64 * 1024)
            except FileNotFoundError:
                return False
            half = len(data) // 2
            return head == data[: 64 * 1024] and middle == data[half : half + 64 * 1024]

        poll(written, "the download never got going")
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=10)
    assert child.returncode == 130, stderr
    record = control.decode(ctrl_of(tmp_path / "out.bin").read_bytes())
    # Both pieces looked for were on disk before the signal: the record covers them.
    for offset in (0, len(data) // 2):
        assert any(s.start <= offset and offset + 64 * 1024 <= s.cursor for s in record.segments)
    assert b"progress saved" in stderr


def test_cli_ctrl_c_before_any_byte_does_not_claim_progress(tmp_path: Path) -> None:
    def silent(conn: RawConnection, request: RawRequest) -> None:
        conn.server.stopping.wait(30)  # never answers

    with raw_server(silent) as server:
        child = rangeio_get(server.url("/f.bin"), tmp_path, "--connections", "4")
        server.wait_for_requests(1)
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=10)
    assert child.returncode == 130, stderr
    assert b"progress saved" not in stderr and b"no progress was saved" in stderr
