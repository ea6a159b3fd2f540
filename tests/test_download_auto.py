"""connections="auto" against real servers: a per-connection rate limit is scaled out, a link
capped in all stays on few connections, an explicit count is kept, and `rangeio get` defaults to auto."""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

import rangeio
from rangeio.testing import FaultServer
from rangeio.testing.server import Faults
from tests.adapters import Opener, opener_for
from tests.conftest import make_bytes
from tests.test_cli import rangeio_cli

MiB = 1024 * 1024
CAPPED = make_bytes(6 * MiB, seed=21)
# Every connection of the throttled server sends 2 MiB/s: one connection takes 3 s for CAPPED.
PER_CONNECTION = 2 * MiB
# Small pieces and short windows, so that the test's few MiB are enough to measure on.
AUTO = rangeio.DownloadPolicy(
    min_segment_bytes=256 * 1024,
    checkpoint_bytes=1 * MiB,
    scaling=rangeio.ScalingPolicy(window_bytes=64 * 1024),
)


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer({"/capped.bin": CAPPED}) as srv:
        yield srv


def gets(server: FaultServer) -> list[str | None]:
    return [r.range for r in server.requests if r.method == "GET"]


def test_auto_scales_out_on_a_link_capped_per_connection(
    server: FaultServer, opener: Opener, tmp_path: Path
) -> None:
    server.faults = Faults(throttle=PER_CONNECTION)
    dest = tmp_path / "out.bin"
    result = opener.download(server.url("/capped.bin"), dest, connections="auto", policy=AUTO)
    assert dest.read_bytes() == CAPPED
    assert result.sha256 == hashlib.sha256(CAPPED).hexdigest()
    assert server.connections > 1 and result.connections > 1
    ranges = gets(server)
    assert ranges[0] is None  # the first request asks for the whole file, as haul does
    assert len(ranges) > 1 and all(r is not None for r in ranges[1:])


def test_auto_is_the_default(server: FaultServer, tmp_path: Path) -> None:
    server.faults = Faults(throttle=PER_CONNECTION)
    dest = tmp_path / "out.bin"
    rangeio.download(server.url("/capped.bin"), dest, policy=AUTO)
    assert dest.read_bytes() == CAPPED
    assert server.connections > 1


def test_an_explicit_single_connection_stays_one(
    server: FaultServer, opener: Opener, tmp_path: Path
) -> None:
    # The same capped link, where auto scales out: connections=1 is one request on one
    # connection, as before auto existed.
    server.faults = Faults(throttle=8 * PER_CONNECTION)
    dest = tmp_path / "out.bin"
    result = opener.download(server.url("/capped.bin"), dest, connections=1, policy=AUTO)
    assert dest.read_bytes() == CAPPED
    assert server.connections == 1 and gets(server) == [None] and result.requests == 1
    assert result.connections == 1


# rangeio's own pool and requests over it. On the other adapters, run in this process after
# other tests, one connection's first window now and then measured a third of the link's rate
# (1.0-1.4 MB/s of 4 MiB/s, even over 0.3 s windows; alone, every adapter measured the full
# rate on one connection), and the probe then did double it: auto scaled out, as those
# numbers say it should. The test is of the Scaler's verdict on a link one connection fills.
@pytest.fixture(params=["urllib3", "requests"])
def steady_opener(request: pytest.FixtureRequest) -> Iterator[Opener]:
    yield from opener_for(request.param)


def test_auto_stays_on_few_connections_on_a_link_capped_in_all(
    server: FaultServer, steady_opener: Opener, tmp_path: Path
) -> None:
    # One link of 4 MiB/s, whatever the number of connections (an uncapped link, as far as
    # one client can tell): the probe adds nothing and is taken back; noise may buy one more,
    # never the 8 a link capped per connection gets. The windows are longer than AUTO's: the
    # server's one sending thread shares this process's GIL with the client, and now and then
    # stalls for a good part of a 0.07 s window, so that a second connection seemed to help.
    server.faults = Faults(link_rate=4 * MiB)
    dest = tmp_path / "out.bin"
    steady = replace(
        AUTO, scaling=rangeio.ScalingPolicy(window_seconds=0.3, window_bytes=64 * 1024)
    )
    result = steady_opener.download(
        server.url("/capped.bin"), dest, connections="auto", policy=steady
    )
    assert dest.read_bytes() == CAPPED
    assert result.sha256 == hashlib.sha256(CAPPED).hexdigest()
    assert 2 <= result.connections <= 3  # the probe was opened; adding nothing, no more


def test_a_small_file_is_fetched_as_haul_fetches_it(
    server: FaultServer, opener: Opener, tmp_path: Path
) -> None:
    # Too small for two segments of the default 4 MiB: one request for the whole file.
    server.faults = Faults(throttle=8 * PER_CONNECTION)
    dest = tmp_path / "out.bin"
    result = opener.download(server.url("/capped.bin"), dest)
    assert dest.read_bytes() == CAPPED
    assert gets(server) == [None] and result.requests == 1 and server.connections == 1
    assert result.connections == 1


def test_auto_and_counts_are_checked(server: FaultServer, tmp_path: Path) -> None:
    for wrong in ("eight", "8", 1.5, True):
        with pytest.raises(TypeError):
            rangeio.download(server.url("/capped.bin"), tmp_path / "x", connections=wrong)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        rangeio.download(server.url("/capped.bin"), tmp_path / "x", connections=0)
    assert server.requests == []


def test_cli_get_defaults_to_auto(tmp_path: Path) -> None:
    # The CLI takes no policy: the defaults (4 MiB segments, 1 MiB windows) need a file of a
    # few segments, on a link slow enough per connection for the windows to measure it.
    data = make_bytes(12 * MiB, seed=23)
    with FaultServer({"/big.bin": data}) as srv:
        srv.faults = Faults(throttle=4 * MiB)
        done = rangeio_cli("get", srv.url("/big.bin"), "-o", "out.bin", "-q", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert (tmp_path / "out.bin").read_bytes() == data
        assert srv.connections > 1


def test_cli_connections_option_takes_auto_or_a_count(tmp_path: Path) -> None:
    with FaultServer({"/f.bin": CAPPED}) as srv:
        for value, ok in (("auto", True), ("AUTO", True), ("1", True), ("0", False), ("x", False)):
            out = f"out-{value}.bin"
            done = rangeio_cli("get", srv.url("/f.bin"), "-q", "-o", out, "-c", value, cwd=tmp_path)
            assert (done.returncode == 0) is ok, (value, done.stderr)
            if ok:
                assert (tmp_path / out).read_bytes() == CAPPED


@pytest.mark.parametrize("header", ["Repr-Digest", "Content-MD5"])
def test_a_split_download_checks_the_first_answers_digests(
    server: FaultServer, tmp_path: Path, header: str
) -> None:
    # The whole-file 200 that auto splits carries the digests of the whole file: they are
    # checked once every segment is in, as for one connection.
    def value(digest: bytes) -> str:
        encoded = base64.b64encode(digest).decode()
        return f"sha-256=:{encoded}:" if header == "Repr-Digest" else encoded

    algorithm = hashlib.sha256 if header == "Repr-Digest" else hashlib.md5
    good, bad = value(algorithm(CAPPED).digest()), value(algorithm(b"other").digest())
    server.faults = Faults(throttle=PER_CONNECTION, extra_headers=((header, good),))
    result = rangeio.download(server.url("/capped.bin"), tmp_path / "good.bin", policy=AUTO)
    assert result.connections > 1 and (tmp_path / "good.bin").read_bytes() == CAPPED
    server.faults = Faults(throttle=PER_CONNECTION, extra_headers=((header, bad),))
    with pytest.raises(rangeio.ChecksumMismatchError):
        rangeio.download(server.url("/capped.bin"), tmp_path / "bad.bin", policy=AUTO, retries=0)
    assert not (tmp_path / "bad.bin").exists()


def test_an_interrupted_auto_download_saves_its_segments_and_resumes(
    server: FaultServer, tmp_path: Path
) -> None:
    # Ctrl-C (here from the progress callback, on a worker) once auto has scaled out: every
    # segment's durable cursor is recorded, and the next call resumes from them.
    server.faults = Faults(throttle=PER_CONNECTION)
    dest = tmp_path / "out.bin"

    def interrupt(done: int, total: int | None) -> None:
        if done >= len(CAPPED) // 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rangeio.download(server.url("/capped.bin"), dest, policy=AUTO, on_progress=interrupt)
    assert (tmp_path / "out.bin.part.ctrl").exists() and not dest.exists()
    server.clear_faults()
    result = rangeio.download(server.url("/capped.bin"), dest, policy=AUTO)
    assert dest.read_bytes() == CAPPED
    assert result.bytes_reused >= len(CAPPED) // 2
    # Each segment went on from its own cursor: little is fetched twice.
    assert result.bytes_transferred <= len(CAPPED) - result.bytes_reused + 8 * 256 * 1024


# What parallel.py's _take_over logs: a 200 to a segment's request became the download.
TAKEN_OVER = "restarts from byte 0 with a 200"


def test_a_cut_first_answer_of_a_split_goes_on_as_its_segment(
    server: FaultServer, opener: Opener, tmp_path: Path
) -> None:
    # auto splits the first request's whole-file 200; that connection is cut at 1 MiB. Its
    # exchange resumes its own segment (a 206 with If-Range), never the whole file again: the
    # one 200 accepted was the first, and the bytes before the cut are not fetched again.
    cut = 1 * MiB
    server.faults = Faults(truncate_after=cut, times=1)
    dest = tmp_path / "out.bin"
    result = opener.download(server.url("/capped.bin"), dest, policy=AUTO, retries=2)
    assert dest.read_bytes() == CAPPED
    ranges = gets(server)
    assert ranges[0] is None and ranges.count(None) == 1
    resumes = [r for r in server.requests if (r.range or "").startswith(f"bytes={cut}-")]
    assert len(resumes) == 1 and "if-range" in resumes[0].headers
    # Not exactly the file's size: a chunk being written as another connection steals the
    # rest of its segment may be written by both (`SegmentTable.advance`); never the cut MiB.
    assert result.bytes_transferred < len(CAPPED) + cut and result.bytes_reused == 0


def test_a_200_to_the_resume_of_a_split_first_answer_is_taken_over(
    server: FaultServer, opener: Opener, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The first 200 is cut at 1 MiB and the file changes meanwhile: the resume of that first
    # segment is answered with the new version's 200. It must not be accepted as the first
    # answer was: it becomes the download (a take-over), never spliced onto the old bytes.
    server.faults = Faults(change_after=1, truncate_after=1 * MiB, times=1)
    dest = tmp_path / "out.bin"
    with caplog.at_level(logging.INFO, logger="rangeio.download"):
        opener.download(server.url("/capped.bin"), dest, policy=AUTO, retries=2)
    final = server.get_file("/capped.bin")
    assert final != CAPPED and dest.read_bytes() == final
    assert TAKEN_OVER in caplog.text
    assert any(r.range is not None and "if-range" in r.headers for r in server.requests)


def test_a_200_to_a_later_segment_of_an_auto_split_is_taken_over(
    server: FaultServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The file changes once the first (whole-file) GET is served: the segments auto opens
    # later ask If-Range of the old version and get the new one whole. One of them takes the
    # download over; the old version's bytes are never kept beside the new one's.
    server.faults = Faults(throttle=PER_CONNECTION, change_after=1)
    dest = tmp_path / "out.bin"
    with caplog.at_level(logging.INFO, logger="rangeio.download"):
        result = rangeio.download(server.url("/capped.bin"), dest, policy=AUTO, retries=2)
    final = server.get_file("/capped.bin")
    assert final != CAPPED and dest.read_bytes() == final
    assert result.sha256 == hashlib.sha256(final).hexdigest()
    assert TAKEN_OVER in caplog.text
    assert server.connections > 1  # a segment was asked for, and answered 200
