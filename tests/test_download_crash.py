"""Downloads survive SIGKILL at random moments and a full disk, with bounded re-fetching."""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import rangeio
from rangeio._core import control
from rangeio.testing import Faults, FaultServer

CHECKPOINT = 256 * 1024

# Seconds each: a `make test` runs them, `pytest -m "not slow"` skips them.
pytestmark = pytest.mark.slow


def child(url: str, dest: Path, *, fsize_limit: int = 0) -> subprocess.Popen[str]:
    script = Path(__file__).with_name("crash_child.py")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    return subprocess.Popen(
        [sys.executable, str(script), url, str(dest), str(fsize_limit), str(CHECKPOINT)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )


def _first_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The child's first output line (its first progress report), or "" at the deadline."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline() if ready else ""


def resume_starts(server: FaultServer) -> list[int]:
    starts = []
    for request in server.requests:
        value = request.range
        starts.append(int(value.split("=")[1].split("-")[0]) if value else 0)
    return starts


def test_sigkill_at_random_moments(tmp_path: Path) -> None:
    rng = random.Random(1234)
    data = random.Random(99).randbytes(12 * 1024 * 1024)
    dest = tmp_path / "out.bin"
    kills = 0
    refetched: list[int] = []
    with FaultServer({"/big.bin": data}) as server:
        # 1 MiB/s: twelve seconds of body in all, far more than 30 short-lived attempts use,
        # so every kill lands while bytes are flowing (or before the request).
        server.faults = Faults(throttle=1024 * 1024)
        deadline = time.monotonic() + 60
        while kills < 30 and time.monotonic() < deadline:
            before = len(server.requests)
            proc = child(server.url("/big.bin"), dest)
            # Kill at a random moment after the body starts flowing: the interpreter's start-up
            # time varies too much (a cold CI machine) to aim from the spawn.
            first = _first_line(proc, timeout=20)
            time.sleep(rng.uniform(0.0, 0.5))
            proc.send_signal(signal.SIGKILL)
            rest, _ = proc.communicate(timeout=10)
            out = first + rest
            if "done" in out:
                break  # finished before the kill: nothing left to resume
            kills += 1
            printed = [int(line) for line in out.split() if line.isdigit()]
            if printed and len(server.requests) > before:
                refetched.append(printed[-1])
            assert not dest.exists()  # never a partial file at the destination
        server.clear_faults()
        server.clear_log()
        result = rangeio.download(server.url("/big.bin"), dest)
        assert dest.read_bytes() == data
        assert result.sha256 == rangeio.download(server.url("/big.bin"), dest).sha256
        # The last kill's progress was resumed, not thrown away: at most one flush interval
        # (plus the chunk in flight) was fetched again.
        start = resume_starts(server)[0]
        if refetched:
            assert refetched[-1] - start <= CHECKPOINT + 256 * 1024
            assert start > 0
    assert kills >= 30


def test_disk_full_then_resume(tmp_path: Path) -> None:
    data = random.Random(7).randbytes(3 * 1024 * 1024)
    dest = tmp_path / "out.bin"
    with FaultServer({"/f.bin": data}) as server:
        proc = child(server.url("/f.bin"), dest, fsize_limit=1024 * 1024)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 3, out
        assert "error" in out and str(27) in out  # EFBIG: the file size limit, as a full disk
        assert not dest.exists()
        rangeio.download(server.url("/f.bin"), dest)
        assert dest.read_bytes() == data


@pytest.mark.skipif(not hasattr(os, "posix_fallocate"), reason="needs posix_fallocate")
def test_preallocated_part_is_trimmed(tmp_path: Path) -> None:
    data = random.Random(8).randbytes(500_000)
    with FaultServer({"/f.bin": data}) as server:
        dest = tmp_path / "out.bin"
        rangeio.download(server.url("/f.bin"), dest)
        assert dest.stat().st_size == len(data)


@pytest.mark.parametrize("delay", [0.0, 0.15, 0.4])
def test_sigkill_while_a_200_restarts_the_file_never_splices(tmp_path: Path, delay: float) -> None:
    """A resume's If-Range fails (the file changed) and the 200 restarts the file from byte 0;
    the downloader is killed while that body flows. What the disk holds is then the new
    version's progress only: its record names the new ETag, and the bytes it covers are the
    new file's (files.begin wrote the cursor-0 record before truncating). The next call resumes
    that, never splicing the old bytes beyond it."""
    old = random.Random(5).randbytes(4 * 1024 * 1024)
    new = old[::-1]
    dest = tmp_path / "out.bin"
    ctrl = dest.with_name("out.bin.part.ctrl")
    with FaultServer({"/f.bin": old}) as server:
        url = server.url("/f.bin")
        server.faults = Faults(truncate_after=3_000_000, times=1)
        policy = rangeio.DownloadPolicy(checkpoint_bytes=CHECKPOINT)
        with pytest.raises(rangeio.PartialDownloadError):
            rangeio.haul(url, dest=dest, policy=policy)
        old_etag = server.etag("/f.bin")
        assert control.decode(ctrl.read_bytes()).etag == old_etag
        server.replace("/f.bin", new)
        server.faults = Faults(throttle=1024 * 1024)  # four seconds of body: the kill lands in it
        proc = child(url, dest)
        first = _first_line(proc, timeout=20)
        assert first.strip().isdigit()  # a byte of the 200 was written
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
        record = control.decode(ctrl.read_bytes())
        done = control.durable_bytes(record)
        assert record.etag == server.etag("/f.bin") != old_etag
        assert dest.with_name("out.bin.part").read_bytes()[:done] == new[:done]
        server.clear_faults()
        server.clear_log()
        result = rangeio.haul(url, dest=dest)
        [request] = server.requests
        assert request.headers.get("if-range") == (record.etag if done else None)
        assert dest.read_bytes() == new and result.bytes_reused == done
