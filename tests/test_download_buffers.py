"""The download's receive side: bodies received into the .part's buffers, hashed on a thread
behind the writes, write-back started early (sync_file_range), for every adapter."""

from __future__ import annotations

import hashlib
import os
import random
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import rangeio
from rangeio import _disk
from rangeio._core import control
from rangeio._disk import RECEIVE_BUFFER_BYTES, RECEIVE_BUFFERS, PartFile
from rangeio.testing import Faults, FaultServer
from tests.adapters import Opener
from tests.poll import wait_until

BIG = "/big.bin"
SMALL_CHECKPOINTS = rangeio.DownloadPolicy(checkpoint_bytes=256 * 1024)


def part_file(tmp_path: Path) -> PartFile:
    return PartFile(os.open(tmp_path / "x.part", os.O_RDWR | os.O_CREAT, 0o644))


class GatedHasher:
    """A real SHA-256 whose updates wait for ``gate``: the hash thread held at will."""

    def __init__(self, gate: threading.Event) -> None:
        self._hasher = hashlib.sha256()
        self._gate = gate

    def update(self, data: Any) -> None:
        assert self._gate.wait(10), "the test never opened the gate"
        self._hasher.update(data)

    def hexdigest(self) -> str:
        return self._hasher.hexdigest()


def fill(view: memoryview, length: int, seed: int) -> memoryview:
    view[:length] = random.Random(seed).randbytes(length)
    return view[:length]


def test_a_buffer_is_not_received_into_while_its_hash_is_pending(tmp_path: Path) -> None:
    part = part_file(tmp_path)
    try:
        part.start_hashing(("sha256",), 0)
        gate = threading.Event()
        gated = {"sha256": GatedHasher(gate)}
        part._hashers = part._behind_thread().hashers = gated  # type: ignore[union-attr]
        written: list[int] = []

        def writer() -> None:
            # One whole buffer per write: after RECEIVE_BUFFERS of them the next space is
            # the first buffer again, whose bytes the held hash thread has not read yet.
            for n in range(RECEIVE_BUFFERS + 2):
                chunk = fill(part.space(), RECEIVE_BUFFER_BYTES, n)
                part.write(chunk, n * RECEIVE_BUFFER_BYTES)
                written.append(n)

        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        wait_until(lambda: len(written) == RECEIVE_BUFFERS - 1, "the first buffers written")
        # The last write of the first round hands its buffer to the thread and must then wait
        # for the first buffer's hash: it cannot finish while the gate is shut.
        thread.join(0.5)
        assert thread.is_alive() and len(written) == RECEIVE_BUFFERS - 1
        gate.set()
        thread.join(10)
        assert not thread.is_alive() and len(written) == RECEIVE_BUFFERS + 2
        total = (RECEIVE_BUFFERS + 2) * RECEIVE_BUFFER_BYTES
        expected = b"".join(
            random.Random(n).randbytes(RECEIVE_BUFFER_BYTES) for n in range(RECEIVE_BUFFERS + 2)
        )
        part.settle()
        assert os.pread(part.fd, total + 1, 0) == expected
        assert part.hashes(total) == {"sha256": hashlib.sha256(expected).hexdigest()}
    finally:
        part.close()


def hold_writes(monkeypatch: Any) -> threading.Event:
    """Every pwrite of `_disk` waits until the returned event is set (a disk that is slow)."""
    gate = threading.Event()
    pwrite_all = _disk.pwrite_all

    def gated(fd: int, data: Any, offset: int) -> None:
        assert gate.wait(10), "the test never opened the gate"
        pwrite_all(fd, data, offset)

    monkeypatch.setattr(_disk, "pwrite_all", gated)
    return gate


def test_a_buffer_is_not_received_into_while_its_write_is_pending(
    tmp_path: Path, monkeypatch: Any
) -> None:
    gate = hold_writes(monkeypatch)
    part = part_file(tmp_path)
    try:
        written: list[int] = []

        def writer() -> None:
            for n in range(RECEIVE_BUFFERS + 2):
                part.write(fill(part.space(), RECEIVE_BUFFER_BYTES, n), n * RECEIVE_BUFFER_BYTES)
                written.append(n)

        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        wait_until(lambda: len(written) == RECEIVE_BUFFERS - 1, "the first buffers handed over")
        thread.join(0.5)  # the next write waits for the first buffer's pwrite: held shut
        assert thread.is_alive() and len(written) == RECEIVE_BUFFERS - 1
        gate.set()
        thread.join(10)
        assert not thread.is_alive()
        part.settle()
        total = (RECEIVE_BUFFERS + 2) * RECEIVE_BUFFER_BYTES
        expected = b"".join(
            random.Random(n).randbytes(RECEIVE_BUFFER_BYTES) for n in range(RECEIVE_BUFFERS + 2)
        )
        assert os.pread(part.fd, total + 1, 0) == expected
    finally:
        part.close()


def test_bytes_handed_over_wait_for_a_slow_disk(tmp_path: Path, monkeypatch: Any) -> None:
    """A client's own bytes (not our buffers) queue for the write thread only so far: memory
    stays bounded however far the disk falls behind."""
    gate = hold_writes(monkeypatch)
    part = part_file(tmp_path)
    chunks = [random.Random(n).randbytes(100_000) for n in range(3 * RECEIVE_BUFFERS)]
    try:
        part.start_hashing(("sha256",), 0)
        written: list[int] = []

        def writer() -> None:
            for n, chunk in enumerate(chunks):
                part.write(chunk, n * 100_000)
                written.append(n)

        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        wait_until(lambda: len(written) >= RECEIVE_BUFFERS - 1, "the first chunks queued")
        thread.join(0.5)
        assert thread.is_alive() and len(written) <= RECEIVE_BUFFERS
        gate.set()
        thread.join(10)
        assert not thread.is_alive()
        expected = b"".join(chunks)
        assert part.hashes(len(expected)) == {"sha256": hashlib.sha256(expected).hexdigest()}
        assert os.pread(part.fd, len(expected) + 1, 0) == expected
    finally:
        part.close()


def test_a_failed_write_is_raised_and_never_checkpointed(tmp_path: Path) -> None:
    files = _disk.PartFiles(tmp_path / "out.bin")
    path = files.part
    path.write_bytes(b"")
    part = PartFile(os.open(path, os.O_RDONLY))  # every pwrite fails (EBADF)
    try:
        part.write(b"a" * 1000, 0)  # queued: its failure comes later
        with pytest.raises(OSError):
            part.settle()
        with pytest.raises(OSError):
            part.write(b"b" * 1000, 1000)
        record = control.ControlRecord(
            url="http://example/f", etag=None, last_modified=None, total=2000, segments=()
        )
        with pytest.raises(OSError):
            files.checkpoint(part, record)
        assert not files.ctrl.exists()  # no record claims the bytes that were never written
    finally:
        part.close()


def test_the_hash_thread_gives_what_hashlib_gives_over_the_file(tmp_path: Path) -> None:
    rng = random.Random(7)
    part = part_file(tmp_path)
    try:
        part.start_hashing(("md5", "sha256"), 0)
        offset = 0
        for n in range(300):
            kind = n % 3
            length = rng.randrange(1, 300_000)
            if kind == 0:  # received into the buffers, as the urllib3 adapter does
                space = part.space()
                chunk: Any = fill(space, min(length, len(space)), n)
            elif kind == 1:  # bytes, as the other clients hand over
                chunk = rng.randbytes(length)
            else:  # a mutable buffer of someone else's, changed once written
                chunk = bytearray(rng.randbytes(length))
            part.write(chunk, offset)
            offset += len(chunk)
            if kind == 2:
                chunk[:] = bytes(len(chunk))
        part.settle()  # the writes are done on the write thread
        on_disk = os.pread(part.fd, offset + 1, 0)
        assert len(on_disk) == offset
        assert part.hashes(offset) == {
            "md5": hashlib.md5(on_disk).hexdigest(),
            "sha256": hashlib.sha256(on_disk).hexdigest(),
        }
    finally:
        part.close()


def test_bytes_out_of_order_leave_the_hash_to_the_disk_pass(tmp_path: Path) -> None:
    part = part_file(tmp_path)
    try:
        part.start_hashing(("sha256",), 0)
        part.write(b"a" * 1000, 0)
        part.write(b"c" * 1000, 2000)  # a gap: the in-order hash cannot go on
        part.write(b"b" * 1000, 1000)
        assert part.hashes(3000) is None
    finally:
        part.close()


def test_a_resumed_hash_starts_from_the_bytes_on_disk(tmp_path: Path) -> None:
    part = part_file(tmp_path)
    try:
        part.write(b"x" * 5000, 0)
        part.start_hashing(("sha256",), 5000)
        chunk = fill(part.space(), 7000, 1)
        part.write(chunk, 5000)
        expected = b"x" * 5000 + random.Random(1).randbytes(7000)
        assert part.hashes(12_000) == {"sha256": hashlib.sha256(expected).hexdigest()}
    finally:
        part.close()


@pytest.fixture
def big(fault_server: FaultServer) -> bytes:
    """Several receive buffers' worth, not a multiple of one."""
    data = random.Random(3).randbytes(3 * RECEIVE_BUFFER_BYTES + 77_777)
    fault_server.add_file(BIG, data)
    return data


def test_a_download_hashes_without_a_pass_over_the_disk(
    fault_server: FaultServer, big: bytes, opener: Opener, tmp_path: Path, monkeypatch: Any
) -> None:
    passes: list[int] = []
    hash_file = _disk.hash_file
    monkeypatch.setattr(
        _disk, "hash_file", lambda fd, n, a: passes.append(n) or hash_file(fd, n, a)
    )
    dest = tmp_path / "out.bin"
    result = opener.download(fault_server.url(BIG), dest)
    assert dest.read_bytes() == big
    assert result.sha256 == hashlib.sha256(big).hexdigest()
    assert passes == []


@pytest.mark.parametrize("sync_file_range", ["missing", "refused"])
def test_downloads_do_without_sync_file_range(
    fault_server: FaultServer,
    big: bytes,
    opener: Opener,
    tmp_path: Path,
    monkeypatch: Any,
    sync_file_range: str,
) -> None:
    calls: list[tuple[int, int]] = []

    def refusing(fd: int, offset: int, length: int, flags: int) -> int:
        calls.append((offset, length))
        return -1  # as libc does with EINVAL or ENOSYS

    function = None if sync_file_range == "missing" else refusing
    monkeypatch.setattr(_disk, "_sync_file_range", function)
    monkeypatch.setattr(_disk, "_sync_file_range_loaded", True)
    monkeypatch.setattr(_disk, "WRITEBACK_BYTES", 256 * 1024)
    dest = tmp_path / "out.bin"
    result = opener.download(fault_server.url(BIG), dest, policy=SMALL_CHECKPOINTS)
    assert dest.read_bytes() == big
    assert result.sha256 == hashlib.sha256(big).hexdigest()
    # Refused once, never asked again for this file.
    assert len(calls) == (0 if function is None else 1)


def test_write_back_is_asked_for_bytes_already_written(
    fault_server: FaultServer, big: bytes, opener: Opener, tmp_path: Path, monkeypatch: Any
) -> None:
    """The write thread writes what write() queued; write-back of a range before its write
    would find nothing dirty to start on."""
    seen: list[bool] = []

    def checking(fd: int, offset: int, length: int, flags: int) -> int:
        seen.append(os.pread(fd, length, offset) == big[offset : offset + length])
        return 0

    monkeypatch.setattr(_disk, "_sync_file_range", checking)
    monkeypatch.setattr(_disk, "_sync_file_range_loaded", True)
    monkeypatch.setattr(_disk, "WRITEBACK_BYTES", 256 * 1024)
    dest = tmp_path / "out.bin"
    opener.download(fault_server.url(BIG), dest)
    assert dest.read_bytes() == big
    assert seen and all(seen)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sync_file_range is Linux's")
def test_write_back_starts_on_linux(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, b"z" * 100_000, 0)
        assert _disk.start_writeback(fd, 0, 100_000) is True
        assert _disk.start_writeback(fd, 0, 0) is False  # nothing to write back
    finally:
        os.close(fd)


def test_a_cut_mid_buffer_resumes_exactly(
    fault_server: FaultServer, big: bytes, opener: Opener, tmp_path: Path
) -> None:
    dest = tmp_path / "out.bin"
    cut = RECEIVE_BUFFER_BYTES + 300_001  # inside the second buffer
    fault_server.faults = Faults(truncate_after=cut, times=1)
    with pytest.raises(rangeio.PartialDownloadError) as info:
        opener.haul(fault_server.url(BIG), dest, policy=SMALL_CHECKPOINTS)
    done = info.value.bytes_done
    assert 0 < done <= cut
    part = dest.with_name(dest.name + ".part").read_bytes()
    assert part[:done] == big[:done]  # what the record claims is on disk, byte for byte
    fault_server.clear_log()
    result = opener.haul(fault_server.url(BIG), dest)
    assert [r.range for r in fault_server.requests if r.method == "GET"] == [f"bytes={done}-"]
    assert result.bytes_reused == done and result.bytes_transferred == len(big) - done
    assert dest.read_bytes() == big
    assert result.sha256 == hashlib.sha256(big).hexdigest()


def test_a_chunked_body_is_received_as_well(
    fault_server: FaultServer, big: bytes, opener: Opener, tmp_path: Path
) -> None:
    """No length: the urllib3 adapter reads and copies instead of reading into the buffer."""
    fault_server.faults = Faults(chunked=True)
    dest = tmp_path / "out.bin"
    result = opener.download(fault_server.url(BIG), dest)
    assert dest.read_bytes() == big
    assert result.sha256 == hashlib.sha256(big).hexdigest()
