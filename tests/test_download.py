"""haul() and download(): crash-safe, resumable, verified; for every sync and async adapter."""

from __future__ import annotations

import base64
import hashlib
import logging
from pathlib import Path
from typing import Any

import pytest

import rangeio
from rangeio._async import download as async_download
from rangeio._core import control
from rangeio._disk import PartFiles
from rangeio._sync import download as sync_download
from rangeio.testing import Faults, FaultServer
from tests.adapters import Opener

DATA = "/data.bin"
FAST = rangeio.RetryPolicy(attempts=4, backoff=0.01, max_backoff=0.05)
SMALL_CHECKPOINTS = rangeio.DownloadPolicy(checkpoint_bytes=256 * 1024)


def sidecars(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.parent.iterdir() if p.name != dest.name)


def ranges_seen(server: FaultServer) -> list[str | None]:
    return [r.range for r in server.requests if r.method == "GET"]


def partial_haul(opener: Opener, server: FaultServer, dest: Path, cut: int) -> int:
    """A haul cut after ``cut`` body bytes; returns the durable progress it reports."""
    server.faults = Faults(truncate_after=cut, times=1)
    with pytest.raises(rangeio.PartialDownloadError) as info:
        opener.haul(server.url(DATA), dest, policy=SMALL_CHECKPOINTS)
    assert info.value.retryable
    return info.value.bytes_done


def test_fresh_download(fault_server: FaultServer, opener: Opener, tmp_path: Path) -> None:
    data = fault_server.get_file(DATA)
    dest = tmp_path / "out.bin"
    result = opener.download(fault_server.url(DATA), dest)
    assert dest.read_bytes() == data
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert (result.size, result.requests, result.bytes_transferred, result.bytes_reused) == (
        len(data),
        1,
        len(data),
        0,
    )
    assert result.etag == fault_server.etag(DATA)
    assert sidecars(dest) == []
    assert fault_server.requests[0].headers["accept-encoding"] == "identity"


def test_truncated_haul_then_resume(
    fault_server: FaultServer, opener: Opener, tmp_path: Path
) -> None:
    data = fault_server.get_file(DATA)
    dest = tmp_path / "out.bin"
    done = partial_haul(opener, fault_server, dest, 1_000_000)
    # Everything received was made durable before raising (aiohttp drops what it had buffered
    # when the connection breaks, so it may have received less than the server sent).
    assert 0 < done <= 1_000_000
    assert not dest.exists() and "out.bin.part" in sidecars(dest)
    fault_server.clear_log()
    result = opener.haul(fault_server.url(DATA), dest)
    # It really resumed: the one request asked for the bytes after the durable progress.
    assert ranges_seen(fault_server) == [f"bytes={done}-"]
    assert fault_server.requests[0].headers["if-range"] == fault_server.etag(DATA)
    assert result.bytes_reused == done and result.bytes_transferred == len(data) - done
    assert dest.read_bytes() == data and sidecars(dest) == []


def test_download_retries_until_complete(
    fault_server: FaultServer, opener: Opener, tmp_path: Path
) -> None:
    data = fault_server.get_file(DATA)
    dest = tmp_path / "out.bin"
    fault_server.faults = Faults(reset_after=700_000, times=2)
    result = opener.download(fault_server.url(DATA), dest, retries=FAST)
    assert dest.read_bytes() == data
    starts = [int(r.split("=")[1].rstrip("-")) for r in ranges_seen(fault_server)[1:] if r]
    # Each retry resumed after the previous attempt's durable progress.
    assert len(ranges_seen(fault_server)) == 3 and 0 < starts[0] < starts[1]
    assert result.requests == 3


def test_server_ignoring_range_restarts_safely(
    fault_server: FaultServer, opener: Opener, tmp_path: Path
) -> None:
    data = fault_server.get_file(DATA)
    dest = tmp_path / "out.bin"
    partial_haul(opener, fault_server, dest, 500_000)
    fault_server.faults = Faults(ignore_range=True)
    result = opener.haul(fault_server.url(DATA), dest)
    assert dest.read_bytes() == data
    assert result.bytes_transferred == len(data)


@pytest.mark.parametrize("etag", ["strong", "weak", "none"])
def test_changed_file_is_never_spliced(
    fault_server: FaultServer, opener: Opener, tmp_path: Path, etag: str
) -> None:
    data = fault_server.get_file(DATA)
    fault_server.add_file(DATA, data, etag=etag)  # type: ignore[arg-type]
    dest = tmp_path / "out.bin"
    partial_haul(opener, fault_server, dest, 600_000)
    new = bytes(reversed(data))
    fault_server.replace(DATA, new)
    fault_server.clear_log()
    opener.download(fault_server.url(DATA), dest, retries=FAST)
    assert dest.read_bytes() == new
    if_range = fault_server.requests[0].headers.get("if-range")
    # §13.1.5: a strong ETag if there is one; a date only when there is no ETag at all; with a
    # weak ETag, nothing (the changed validators are caught in the answer instead).
    if etag == "strong":
        assert if_range is not None and if_range.startswith('"')
    elif etag == "weak":
        assert if_range is None
    else:
        assert if_range is not None and if_range.endswith("GMT")


def test_changed_file_without_validators(
    fault_server: FaultServer, opener: Opener, tmp_path: Path
) -> None:
    data = fault_server.get_file(DATA)
    fault_server.add_file(DATA, data, etag="none", last_modified=False)
    dest = tmp_path / "out.bin"
    partial_haul(opener, fault_server, dest, 600_000)
    grown = data + b"more bytes"
    fault_server.add_file(DATA, grown, etag="none", last_modified=False)
    with pytest.raises(rangeio.PartialDownloadError) as info:
        opener.haul(fault_server.url(DATA), dest)
    assert info.value.bytes_done == 0  # the size changed: progress discarded, not spliced
    opener.download(fault_server.url(DATA), dest, retries=FAST)
    assert dest.read_bytes() == grown


def test_gzip_on_resume_is_refused(
    fault_server: FaultServer, opener: Opener, tmp_path: Path
) -> None:
    dest = tmp_path / "out.bin"
    partial_haul(opener, fault_server, dest, 400_000)
    fault_server.faults = Faults(gzip=True)
    with pytest.raises(rangeio.RangeNotSupportedError, match="gzip"):
        opener.haul(fault_server.url(DATA), dest)
    assert not dest.exists() and "out.bin.part" in sidecars(dest)


@pytest.mark.parametrize("delta", [-100, 100])
def test_wrong_content_length(
    fault_server: FaultServer, opener: Opener, tmp_path: Path, delta: int
) -> None:
    dest = tmp_path / "out.bin"
    partial_haul(opener, fault_server, dest, 400_000)
    fault_server.faults = Faults(content_length_delta=delta)
    with pytest.raises(rangeio.ProtocolError):
        opener.haul(fault_server.url(DATA), dest)
    assert not dest.exists()


def test_416_when_everything_is_already_here(
    fault_server: FaultServer, opener: Opener, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash after the last checkpoint but before the rename: the resume asks `bytes=L-`,
    the server says 416 */L, and the download completes without transferring a byte."""
    data = fault_server.get_file(DATA)
    dest = tmp_path / "out.bin"

    def crash() -> None:
        raise KeyboardInterrupt("crash before the rename")

    monkeypatch.setattr(PartFiles, "commit", lambda self: crash())
    with pytest.raises(KeyboardInterrupt):
        opener.haul(fault_server.url(DATA), dest)
    monkeypatch.undo()
    fault_server.clear_log()
    result = opener.haul(fault_server.url(DATA), dest)
    assert ranges_seen(fault_server) == [f"bytes={len(data)}-"]
    assert result.bytes_transferred == 0 and dest.read_bytes() == data


def test_other_416_resets(fault_server: FaultServer, opener: Opener, tmp_path: Path) -> None:
    data = fault_server.get_file(DATA)
    dest = tmp_path / "out.bin"
    partial_haul(opener, fault_server, dest, 300_000)
    fault_server.faults = Faults(always_416=True, times=1)
    with pytest.raises(rangeio.PartialDownloadError) as info:
        opener.haul(fault_server.url(DATA), dest)
    assert info.value.bytes_done == 0
    opener.download(fault_server.url(DATA), dest, retries=FAST)
    assert dest.read_bytes() == data


def test_empty_file(fault_server: FaultServer, opener: Opener, tmp_path: Path) -> None:
    dest = tmp_path / "empty.bin"
    result = opener.download(fault_server.url("/empty.bin"), dest)
    assert dest.read_bytes() == b"" and result.size == 0
    assert result.sha256 == hashlib.sha256(b"").hexdigest()


def test_unknown_length_chunked(fault_server: FaultServer, opener: Opener, tmp_path: Path) -> None:
    data = fault_server.get_file(DATA)
    fault_server.faults = Faults(chunked=True)
    dest = tmp_path / "out.bin"
    assert opener.download(fault_server.url(DATA), dest).size == len(data)
    assert dest.read_bytes() == data


def test_deleted_part_restarts(fault_server: FaultServer, opener: Opener, tmp_path: Path) -> None:
    data = fault_server.get_file(DATA)
    dest = tmp_path / "out.bin"
    partial_haul(opener, fault_server, dest, 800_000)
    (tmp_path / "out.bin.part").unlink()
    fault_server.clear_log()
    opener.haul(fault_server.url(DATA), dest)
    assert ranges_seen(fault_server) == [None]  # a fresh GET, not a resume over nothing
    assert dest.read_bytes() == data


def test_corrupt_control_record_restarts_and_logs(
    fault_server: FaultServer, opener: Opener, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = fault_server.get_file(DATA)
    dest = tmp_path / "out.bin"
    partial_haul(opener, fault_server, dest, 800_000)
    ctrl = tmp_path / "out.bin.part.ctrl"
    raw = bytearray(ctrl.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    ctrl.write_bytes(bytes(raw))
    with caplog.at_level(logging.WARNING, logger="rangeio.download"):
        opener.haul(fault_server.url(DATA), dest)
    assert dest.read_bytes() == data
    assert any("control record unusable" in r.message for r in caplog.records)


def test_crash_after_rename_counts_as_done(
    fault_server: FaultServer, opener: Opener, tmp_path: Path
) -> None:
    data = fault_server.get_file(DATA)
    dest = tmp_path / "out.bin"
    stale = control.encode(control.ControlRecord(url=fault_server.url(DATA), total=len(data)))
    dest.write_bytes(data)
    (tmp_path / "out.bin.part.ctrl").write_bytes(stale)
    result = opener.haul(fault_server.url(DATA), dest)
    assert result.requests == 0 and result.sha256 == hashlib.sha256(data).hexdigest()
    assert sidecars(dest) == [] and fault_server.requests == []


def test_second_downloader_gets_a_clear_error(
    fault_server: FaultServer, opener: Opener, tmp_path: Path
) -> None:
    dest = tmp_path / "out.bin"
    holder = PartFiles(dest).lock
    holder.acquire()  # another process's lock, as far as flock is concerned
    try:
        with pytest.raises(rangeio.DownloadLockedError):
            opener.download(fault_server.url(DATA), dest)
    finally:
        holder.release()
    assert fault_server.requests == []


class CountedTransport:
    """Wraps the transport a download makes, recording when it is closed (sync or async)."""

    def __init__(self, inner: Any, closed: list[Any]) -> None:
        self._inner = inner
        self._closed = closed

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def close(self) -> None:
        self._closed.append(self)
        self._inner.close()

    async def aclose(self) -> None:
        self._closed.append(self)
        await self._inner.aclose()


def test_locked_out_downloader_closes_its_transport(
    fault_server: FaultServer, opener: Opener, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DownloadLockedError leaves no connection pool (nor the runner's threads) behind: every
    transport a download makes is closed, refused or not."""
    made: list[Any] = []
    closed: list[Any] = []

    def counting(make: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> CountedTransport:
            made.append(CountedTransport(make(*args, **kwargs), closed))
            return made[-1]

        return wrapper

    for module, name in [
        (sync_download, "make_transport"),
        (async_download, "make_async_transport"),
    ]:
        monkeypatch.setattr(module, name, counting(getattr(module, name)))
    dest = tmp_path / "out.bin"
    holder = PartFiles(dest).lock
    holder.acquire()
    try:
        with pytest.raises(rangeio.DownloadLockedError):
            opener.download(fault_server.url(DATA), dest)
    finally:
        holder.release()
    assert len(made) == 1 and closed == made
    # The counting sees what it should: a download that runs closes its transport too.
    opener.download(fault_server.url(DATA), dest)
    assert len(made) == 2 and closed == made
    assert dest.read_bytes() == fault_server.get_file(DATA)


def test_sha256_mismatch_keeps_data_out_of_dest(
    fault_server: FaultServer, opener: Opener, tmp_path: Path
) -> None:
    dest = tmp_path / "out.bin"
    with pytest.raises(rangeio.ChecksumMismatchError) as info:
        opener.download(fault_server.url(DATA), dest, sha256="00" * 32)
    assert info.value.algorithm == "sha256"
    assert not dest.exists() and "out.bin.part" in sidecars(dest)


@pytest.mark.parametrize("header", ["Repr-Digest", "Digest", "Content-MD5"])
def test_header_digests_are_checked(
    fault_server: FaultServer, opener: Opener, tmp_path: Path, header: str
) -> None:
    data = fault_server.get_file(DATA)
    good_sha = base64.b64encode(hashlib.sha256(data).digest()).decode()
    bad_sha = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    value: dict[str, tuple[str, str]] = {
        "Repr-Digest": (f"sha-256=:{good_sha}:", f"sha-256=:{bad_sha}:"),
        "Digest": (f"SHA-256={good_sha}", f"SHA-256={bad_sha}"),
        "Content-MD5": (
            base64.b64encode(hashlib.md5(data).digest()).decode(),
            base64.b64encode(hashlib.md5(b"x").digest()).decode(),
        ),
    }
    good, bad = value[header]
    fault_server.faults = Faults(extra_headers=((header, good),))
    opener.download(fault_server.url(DATA), tmp_path / "good.bin")
    fault_server.faults = Faults(extra_headers=((header, bad),))
    with pytest.raises(rangeio.ChecksumMismatchError):
        opener.download(fault_server.url(DATA), tmp_path / "bad.bin")
    assert not (tmp_path / "bad.bin").exists()


def test_progress_callback(fault_server: FaultServer, tmp_path: Path) -> None:
    data = fault_server.get_file(DATA)
    seen: list[tuple[int, Any]] = []
    rangeio.download(
        fault_server.url(DATA), tmp_path / "o.bin", on_progress=lambda d, t: seen.append((d, t))
    )
    assert seen and seen[-1] == (len(data), len(data))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


# -- parallel segments -----------------------------------------------------------------------

SEGMENTS = rangeio.DownloadPolicy(min_segment_bytes=256 * 1024, checkpoint_bytes=128 * 1024)


def test_parallel_download(fault_server: FaultServer, opener: Opener, tmp_path: Path) -> None:
    data = fault_server.get_file(DATA)
    dest = tmp_path / "out.bin"
    fault_server.faults = Faults(throttle=8 * 1024 * 1024)  # slow enough for steals to happen
    result = opener.download(fault_server.url(DATA), dest, connections=4, policy=SEGMENTS)
    assert dest.read_bytes() == data and result.sha256 == hashlib.sha256(data).hexdigest()
    seen = ranges_seen(fault_server)
    assert seen[0] == "bytes=0-" and len(seen) >= 4
    assert all(r is not None and r.startswith("bytes=") for r in seen)
    assert result.bytes_transferred <= len(data) + 4 * 1024 * 1024  # cut-off bodies waste little
    assert sidecars(dest) == []


def test_parallel_resume_after_interruption(fault_server: FaultServer, tmp_path: Path) -> None:
    data = fault_server.get_file(DATA)
    dest = tmp_path / "out.bin"
    fault_server.faults = Faults(throttle=8 * 1024 * 1024, reset_after=200_000, times=3)
    with pytest.raises(rangeio.PartialDownloadError) as info:
        rangeio.download(fault_server.url(DATA), dest, connections=4, policy=SEGMENTS, retries=0)
    assert info.value.bytes_done > 0
    record = control.decode((tmp_path / "out.bin.part.ctrl").read_bytes())
    assert len(record.segments) > 1  # every segment's cursor is in the record
    fault_server.clear_faults()
    fault_server.clear_log()
    result = rangeio.download(fault_server.url(DATA), dest, connections=4, policy=SEGMENTS)
    assert dest.read_bytes() == data
    assert result.bytes_reused == info.value.bytes_done
    starts = {int((r or "bytes=0-").split("=")[1].split("-")[0]) for r in ranges_seen(fault_server)}
    resumed = {s.cursor for s in record.segments if s.cursor < (s.stop or 0)}
    assert resumed & starts  # it asked for the bytes after each segment's durable cursor


def test_parallel_falls_back_when_range_is_ignored(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    data = fault_server.get_file(DATA)
    fault_server.faults = Faults(ignore_range=True)
    result = rangeio.download(fault_server.url(DATA), tmp_path / "o.bin", connections=4)
    assert (tmp_path / "o.bin").read_bytes() == data and result.requests == 1


def test_parallel_change_restarts_cleanly(fault_server: FaultServer, tmp_path: Path) -> None:
    data = fault_server.get_file(DATA)
    fault_server.faults = Faults(throttle=8 * 1024 * 1024, change_after=2)
    dest = tmp_path / "o.bin"
    rangeio.download(fault_server.url(DATA), dest, connections=4, policy=SEGMENTS, retries=FAST)
    final = fault_server.get_file(DATA)
    assert dest.read_bytes() == final and final != data


# -- against nginx -----------------------------------------------------------------------------


class _Stop(Exception):
    pass


def test_nginx_download_resume_and_parallel(
    nginx: Any, opener: Opener, sample_files: dict[str, bytes], tmp_path: Path
) -> None:
    data = sample_files["data.bin"]
    url = nginx.url("data.bin")
    dest = tmp_path / "out.bin"
    seen: list[int] = []

    def stop_midway(done: int, total: int | None) -> None:
        seen.append(done)
        if done > 1_000_000:
            raise _Stop  # an interruption after some checkpoints, as a crash would be

    with pytest.raises(_Stop):
        opener.download(url, dest, on_progress=stop_midway, policy=SMALL_CHECKPOINTS)
    record = control.decode((tmp_path / "out.bin.part.ctrl").read_bytes())
    durable = control.durable_bytes(record)
    assert 0 < durable <= seen[-1]
    assert record.etag is not None and not record.etag.startswith("W/")  # nginx: strong ETag
    result = opener.download(url, dest)
    assert dest.read_bytes() == data
    assert result.bytes_reused == durable and result.bytes_transferred == len(data) - durable
    parallel_dest = tmp_path / "parallel.bin"
    result = opener.download(url, parallel_dest, connections=4, policy=SEGMENTS)
    assert parallel_dest.read_bytes() == data and result.requests >= 2


@pytest.mark.parametrize("connections", [1, 4])
def test_a_change_no_if_range_can_catch_discards_and_starts_again(
    fault_server: FaultServer, tmp_path: Path, connections: int
) -> None:
    """A weak ETag rules If-Range out, so a change mid-download comes back as a 206 of the new
    version: a Reset (never spliced), the progress discarded, and download() starts again from
    byte 0 in the same call."""
    data = fault_server.get_file(DATA)
    fault_server.add_file(DATA, data, etag="weak")
    if connections == 1:
        # The first GET is cut at 300 kB and changes the file once served: the resume meets
        # the new version.
        fault_server.faults = Faults(change_after=1, truncate_after=300_000, times=1)
    else:
        fault_server.faults = Faults(change_after=2, throttle=8 * 1024 * 1024)
    dest = tmp_path / "o.bin"
    rangeio.download(
        fault_server.url(DATA), dest, connections=connections, policy=SEGMENTS, retries=FAST
    )
    final = fault_server.get_file(DATA)
    assert final != data and dest.read_bytes() == final
    assert not any("if-range" in r.headers for r in fault_server.requests)
    assert [r.range for r in fault_server.requests].count(None) >= (2 if connections == 1 else 0)
