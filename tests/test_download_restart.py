"""A 200 to a resume restarts the file from byte 0 in the same call (one request, never spliced);
haul's progress and state; allow_redirects=False. For every sync and async adapter."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path
from typing import Any

import pytest

import rangeio
from rangeio._core import control
from rangeio.testing import Faults, FaultServer
from tests.adapters import Opener
from tests.raw_server import RawConnection, RawRequest, RawServer, response_head

DATA = "/data.bin"
SMALL_CHECKPOINTS = rangeio.DownloadPolicy(checkpoint_bytes=256 * 1024)
# Parallel segments small enough that a 3 MiB file gets four connections.
SEGMENTS = rangeio.DownloadPolicy(checkpoint_bytes=128 * 1024, min_segment_bytes=256 * 1024)


def sidecars(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.parent.iterdir() if p.name != dest.name)


def gets(server: FaultServer) -> list[Any]:
    return [r for r in server.requests if r.method == "GET"]


def record_on_disk(dest: Path) -> control.ControlRecord:
    return control.decode(dest.with_name(dest.name + ".part.ctrl").read_bytes())


def cut_parallel(opener: Opener, server: FaultServer, tmp_path: Path) -> Path:
    """A parallel download cut at 400,000 bytes of every body, leaving a record of several
    segments to resume. On a loaded machine the first connection can be cut before the others
    start (a record of one segment): that setup is tried again, a bounded number of times."""
    for attempt in range(10):
        dest = tmp_path / f"try{attempt}" / "out.bin"
        dest.parent.mkdir()
        server.faults = Faults(truncate_after=400_000)
        with pytest.raises(rangeio.PartialDownloadError):
            opener.download(server.url(DATA), dest, connections=4, retries=0, policy=SEGMENTS)
        server.clear_faults()
        if len(record_on_disk(dest).segments) > 1:
            return dest
    pytest.fail("10 cut parallel downloads all left a record of one segment")


def cut_haul(
    opener: Opener, server: FaultServer, dest: Path, cut: int
) -> rangeio.PartialDownloadError:
    """A haul cut after ``cut`` body bytes: the error it raised."""
    server.faults = Faults(truncate_after=cut, times=1)
    with pytest.raises(rangeio.PartialDownloadError) as info:
        opener.haul(server.url(DATA), dest, policy=SMALL_CHECKPOINTS)
    server.clear_faults()
    return info.value


# -- the 200 to a resume -----------------------------------------------------------------------


def test_a_changed_file_is_restarted_in_the_same_call(
    fault_server: FaultServer, opener: Opener, tmp_path: Path
) -> None:
    """If-Range with the old ETag gets a 200 of the new version: that one answer is written
    from byte 0 (pyhaul's graceful 200 recovery), not refused and fetched a second time."""
    old = fault_server.get_file(DATA)
    dest = tmp_path / "out.bin"
    old_etag = fault_server.etag(DATA)
    assert cut_haul(opener, fault_server, dest, 900_000).bytes_done > 0
    new = bytes(reversed(old)) + b"grown"
    fault_server.replace(DATA, new)
    fault_server.clear_log()
    result = opener.haul(fault_server.url(DATA), dest)
    [request] = gets(fault_server)  # one request: the resume, answered 200
    assert request.range is not None and request.headers["if-range"] == old_etag
    assert dest.read_bytes() == new and sidecars(dest) == []
    assert result.sha256 == hashlib.sha256(new).hexdigest()
    assert (result.size, result.requests, result.bytes_reused) == (len(new), 1, 0)
    assert result.bytes_transferred == len(new)
    assert result.etag == fault_server.etag(DATA) != old_etag


def test_download_restarts_on_a_200_without_a_second_request(
    fault_server: FaultServer, opener: Opener, tmp_path: Path
) -> None:
    old = fault_server.get_file(DATA)
    dest = tmp_path / "out.bin"
    cut_haul(opener, fault_server, dest, 700_000)
    new = bytes(reversed(old))
    fault_server.replace(DATA, new)
    fault_server.clear_log()
    result = opener.download(fault_server.url(DATA), dest, retries=0)
    assert len(gets(fault_server)) == 1 and result.requests == 1
    assert dest.read_bytes() == new and result.bytes_reused == 0


def test_a_cut_restart_leaves_a_record_of_the_new_version_only(
    fault_server: FaultServer, opener: Opener, tmp_path: Path
) -> None:
    """The 200 of the new version is cut mid-way: what is on disk is the new version's
    progress (record and bytes), and the next call resumes it; old and new never mix."""
    old = fault_server.get_file(DATA)
    dest = tmp_path / "out.bin"
    cut_haul(opener, fault_server, dest, 2_000_000)  # more old bytes than the new cut leaves
    new = bytes(reversed(old))
    fault_server.replace(DATA, new)
    error = cut_haul(opener, fault_server, dest, 600_000)
    new_etag = fault_server.etag(DATA)
    record = record_on_disk(dest)
    done = control.durable_bytes(record)
    assert record.etag == new_etag and record.total == len(new)
    assert error.bytes_done == done and error.state is not None
    assert (error.state.bytes_done, error.state.etag) == (done, new_etag)
    assert 0 < done <= 600_000
    assert dest.with_name("out.bin.part").read_bytes()[:done] == new[:done]
    fault_server.clear_log()
    result = opener.haul(fault_server.url(DATA), dest)
    [request] = gets(fault_server)
    assert request.range == f"bytes={done}-" and request.headers["if-range"] == new_etag
    assert dest.read_bytes() == new and result.bytes_reused == done


def test_a_200_to_a_parallel_segment_restarts_in_the_same_call(
    fault_server: FaultServer, opener: Opener, tmp_path: Path
) -> None:
    """Several connections resume their segments with If-Range; the file has changed, so they
    get 200s. One of them becomes the download (written from byte 0), the others are closed:
    no PartialDownloadError, no retry, and no byte of the old segments survives."""
    old = fault_server.get_file(DATA)
    dest = cut_parallel(opener, fault_server, tmp_path)
    new = bytes(reversed(old))
    fault_server.replace(DATA, new)
    fault_server.clear_log()
    result = opener.download(
        fault_server.url(DATA), dest, connections=4, retries=0, policy=SEGMENTS
    )
    assert dest.read_bytes() == new and sidecars(dest) == []
    assert result.sha256 == hashlib.sha256(new).hexdigest() and result.bytes_reused == 0
    # Only the segments' resumes: no second round of requests after the restart.
    assert all(r.range is not None for r in gets(fault_server))
    assert len(gets(fault_server)) <= 4


class TwoVersions:
    """A raw server that serves ``old`` honestly but cuts its first body after ``cut`` bytes,
    then answers every later request 200 with ``new`` whatever Range and If-Range say:
    under ``new_etag`` (the file changed) or the old one (Range ignored)."""

    def __init__(self, old: bytes, new: bytes, cut: int, new_etag: str) -> None:
        self.old, self.new, self.cut, self.new_etag = old, new, cut, new_etag
        self.answered = 0

    def __call__(self, conn: RawConnection, request: RawRequest) -> None:
        self.answered += 1
        if self.answered == 1:
            head = {"ETag": '"raw-1"', "Content-Length": str(len(self.old))}
            conn.send(response_head(200, head) + self.old[: self.cut])
            conn.sock.shutdown(socket.SHUT_RDWR)
            return
        head = {"ETag": self.new_etag, "Content-Length": str(len(self.new))}
        conn.send(response_head(200, head) + self.new)


@pytest.mark.parametrize("new_etag", ['"raw-2"', '"raw-1"'], ids=["new-etag", "range-ignored"])
def test_a_raw_200_to_a_resume_is_written_from_byte_0(
    opener: Opener, tmp_path: Path, new_etag: str
) -> None:
    old = bytes(range(256)) * 2000
    new = old[::-1] if new_etag == '"raw-2"' else old
    handler = TwoVersions(old, new, 300_000, new_etag)
    dest = tmp_path / "out.bin"
    with RawServer(handler) as server:
        with pytest.raises(rangeio.PartialDownloadError) as info:
            opener.haul(server.url(), dest, policy=SMALL_CHECKPOINTS, timeout=(2.0, 2.0))
        assert info.value.bytes_done > 0
        result = opener.haul(server.url(), dest, timeout=(2.0, 2.0))
        resume = server.requests[1]
    assert len(server.requests) == 2
    assert resume.range == f"bytes={info.value.bytes_done}-"
    assert resume.header("if-range") == '"raw-1"'
    assert dest.read_bytes() == new and sidecars(dest) == []
    assert result.sha256 == hashlib.sha256(new).hexdigest()
    assert (result.etag, result.bytes_reused, result.bytes_transferred) == (new_etag, 0, len(new))


# -- progress and state --------------------------------------------------------------------------


def test_haul_reports_progress_and_state(
    fault_server: FaultServer, opener: Opener, tmp_path: Path
) -> None:
    data = fault_server.get_file(DATA)
    dest = tmp_path / "out.bin"
    seen: list[tuple[int, int | None]] = []
    fault_server.faults = Faults(truncate_after=1_000_000, times=1)
    with pytest.raises(rangeio.PartialDownloadError) as info:
        opener.haul(
            fault_server.url(DATA),
            dest,
            policy=SMALL_CHECKPOINTS,
            on_progress=lambda done, total: seen.append((done, total)),
        )
    state = info.value.state
    assert isinstance(state, rangeio.DownloadState)
    assert (state.bytes_done, state.total) == (info.value.bytes_done, len(data))
    assert state.etag == fault_server.etag(DATA) and state.last_modified is not None
    assert not state.complete
    assert seen and all(total == len(data) for _, total in seen)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    cut_at = seen[-1][0]
    seen.clear()
    result = opener.haul(
        fault_server.url(DATA), dest, on_progress=lambda done, total: seen.append((done, total))
    )
    assert seen[0][0] > state.bytes_done and seen[-1] == (len(data), len(data))
    assert cut_at >= state.bytes_done  # what was durable, never more than what was written
    assert result.state == rangeio.DownloadState(
        len(data), len(data), result.etag, result.last_modified, complete=True
    )


def test_a_failure_before_any_byte_says_nothing_is_saved(
    fault_server: FaultServer, opener: Opener, tmp_path: Path
) -> None:
    fault_server.faults = Faults(status=404)
    with pytest.raises(rangeio.HTTPStatusError) as info:
        opener.haul(fault_server.url(DATA), tmp_path / "out.bin")
    assert info.value.state == rangeio.DownloadState(0, None, None, None)


# -- allow_redirects=False ------------------------------------------------------------------------


@pytest.mark.parametrize("front", ["haul", "download"])
def test_allow_redirects_false_raises_the_3xx_with_its_location(
    fault_server: FaultServer, opener: Opener, tmp_path: Path, front: str
) -> None:
    redirect = Faults(redirect_to="/small.bin", redirect_status=301, times=1)
    fault_server.faults = redirect
    dest = tmp_path / "out.bin"
    fetch = opener.haul if front == "haul" else opener.download
    with pytest.raises(rangeio.RedirectError) as info:
        fetch(fault_server.url(DATA), dest, allow_redirects=False)
    assert (info.value.status, info.value.location) == (301, "/small.bin")
    assert isinstance(info.value, rangeio.HTTPStatusError) and not info.value.is_transient
    assert len(gets(fault_server)) == 1 and not dest.exists() and sidecars(dest) == []
    # Followed by default.
    fault_server.faults = redirect
    fetch(fault_server.url(DATA), dest)
    assert dest.read_bytes() == fault_server.get_file("/small.bin")


def test_a_parallel_resume_redirected_raises_redirect_error_unretried(
    fault_server: FaultServer, opener: Opener, tmp_path: Path
) -> None:
    dest = tmp_path / "out.bin"
    fault_server.faults = Faults(truncate_after=400_000)
    with pytest.raises(rangeio.PartialDownloadError):
        opener.download(fault_server.url(DATA), dest, connections=4, retries=0, policy=SEGMENTS)
    fault_server.faults = Faults(redirect_to="/small.bin", redirect_status=308)
    fault_server.clear_log()
    with pytest.raises(rangeio.RedirectError) as info:
        opener.download(
            fault_server.url(DATA),
            dest,
            connections=4,
            retries=3,
            policy=SEGMENTS,
            allow_redirects=False,
        )
    assert (info.value.status, info.value.location) == (308, "/small.bin")
    # Each connection asked once: a redirect not to follow is not retried.
    assert len(gets(fault_server)) <= 4
    assert info.value.state is not None and info.value.state.bytes_done > 0


def test_a_cut_parallel_restart_resumes_the_new_version(
    fault_server: FaultServer, opener: Opener, tmp_path: Path
) -> None:
    """Every body is cut, the restarting 200 too: the retries resume the new version only (its
    ETag in every If-Range after the restart), and the file is the new one."""
    old = fault_server.get_file(DATA)
    dest = tmp_path / "out.bin"
    fault_server.faults = Faults(truncate_after=400_000)
    with pytest.raises(rangeio.PartialDownloadError):
        opener.download(fault_server.url(DATA), dest, connections=4, retries=0, policy=SEGMENTS)
    old_etag = fault_server.etag(DATA)
    new = bytes(reversed(old))
    fault_server.replace(DATA, new)
    fault_server.clear_log()
    retries = rangeio.RetryPolicy(attempts=20, backoff=0.01, max_backoff=0.02)
    opener.download(fault_server.url(DATA), dest, connections=4, retries=retries, policy=SEGMENTS)
    assert dest.read_bytes() == new
    if_ranges = [r.headers.get("if-range") for r in gets(fault_server)]
    restarted = if_ranges.index(fault_server.etag(DATA))
    assert set(if_ranges[:restarted]) == {old_etag}  # the first round's resumes, answered 200
    assert set(if_ranges[restarted:]) == {fault_server.etag(DATA)}
