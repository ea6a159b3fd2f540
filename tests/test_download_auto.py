"""connections="auto" against real servers: a per-connection rate limit is scaled out, a link
capped in all stays on few connections, an explicit count is kept, and `rangeio get` defaults to auto."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

import rangeio
from rangeio.testing import FaultServer
from rangeio.testing.server import Faults
from tests.adapters import Opener
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


def test_auto_stays_on_few_connections_on_a_link_capped_in_all(
    server: FaultServer, opener: Opener, tmp_path: Path
) -> None:
    # One link of 12 MiB/s, whatever the number of connections (a fast uncapped link, as far
    # as one client can tell): the probe adds nothing and is taken back; noise may buy one
    # more, never the 8 a link capped per connection gets.
    server.faults = Faults(link_rate=12 * MiB)
    dest = tmp_path / "out.bin"
    result = opener.download(server.url("/capped.bin"), dest, connections="auto", policy=AUTO)
    assert dest.read_bytes() == CAPPED
    assert result.sha256 == hashlib.sha256(CAPPED).hexdigest()
    assert 1 <= result.connections <= 3


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
