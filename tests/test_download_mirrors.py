"""download([url1, url2, ...]): mirrors of one file on real servers; a disagreeing one is dropped, never spliced."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

import rangeio
from rangeio._core import control
from rangeio._core.mirrors import DropReason
from rangeio.testing import Faults, FaultServer
from tests.adapters import Opener
from tests.conftest import make_bytes
from tests.poll import wait_until
from tests.servers.nginx import Nginx

PATH = "/data.bin"
DATA = make_bytes(3 * 1024 * 1024 + 123)
SEGMENTS = rangeio.DownloadPolicy(min_segment_bytes=256 * 1024, checkpoint_bytes=128 * 1024)
FAST = rangeio.RetryPolicy(attempts=4, backoff=0.01, max_backoff=0.05)
# Slow enough that every connection gets a segment before the first one finishes.
THROTTLE = 4 * 1024 * 1024


@pytest.fixture
def mirrors() -> Iterator[tuple[FaultServer, FaultServer]]:
    with FaultServer({PATH: DATA}) as a, FaultServer({PATH: DATA}) as b:
        yield a, b


def ranged_gets(server: FaultServer) -> list[str]:
    return [r.range for r in server.requests if r.method == "GET" and r.range is not None]


def reasons(result: rangeio.DownloadResult) -> list[tuple[str, DropReason]]:
    return [(d.url, d.reason) for d in result.dropped_mirrors]


def test_two_mirrors_share_the_segments(
    mirrors: tuple[FaultServer, FaultServer], opener: Opener, tmp_path: Path
) -> None:
    a, b = mirrors
    a.faults = b.faults = Faults(throttle=THROTTLE)
    dest = tmp_path / "out.bin"
    result = opener.download([a.url(PATH), b.url(PATH)], dest, connections=2, policy=SEGMENTS)
    assert dest.read_bytes() == DATA and result.sha256 == hashlib.sha256(DATA).hexdigest()
    assert ranged_gets(a)[0] == "bytes=0-"  # the reference is the first URL
    assert ranged_gets(b), "the second mirror served segments"
    # Before the second mirror's first answer its validators are unknown: at most one request
    # per connection goes without If-Range; every one with it carries that mirror's own ETag.
    b_gets = [r for r in b.requests if r.method == "GET"]
    assert "if-range" not in b_gets[0].headers
    assert sum("if-range" not in r.headers for r in b_gets) <= 2
    assert all(r.headers.get("if-range", b.etag(PATH)) == b.etag(PATH) for r in b_gets)
    assert result.dropped_mirrors == ()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_one_url_in_a_list_is_a_single_url_download(
    mirrors: tuple[FaultServer, FaultServer], tmp_path: Path
) -> None:
    a, _ = mirrors
    result = rangeio.download([a.url(PATH)], tmp_path / "o.bin")
    assert (tmp_path / "o.bin").read_bytes() == DATA
    assert result.requests == 1 and [r.range for r in a.requests] == [None]


def test_a_mirror_with_other_bytes_and_another_strong_etag_is_dropped_never_spliced(
    tmp_path: Path, opener: Opener
) -> None:
    other = bytes(reversed(DATA))  # the same size, other bytes: another strong ETag
    with FaultServer({PATH: DATA}) as good, FaultServer({PATH: other}) as bad:
        good.faults = bad.faults = Faults(throttle=THROTTLE)
        dest = tmp_path / "out.bin"
        result = opener.download(
            [good.url(PATH), bad.url(PATH)], dest, connections=2, policy=SEGMENTS
        )
        assert dest.read_bytes() == DATA
        assert reasons(result) == [(bad.url(PATH), DropReason.ETAG)]
        assert bad.etag(PATH) in result.dropped_mirrors[0].detail
        # Each of its connections asked once, was refused at the head, and asked no more.
        assert 1 <= len(ranged_gets(bad)) <= 2


def test_a_mirror_of_another_size_is_dropped(tmp_path: Path) -> None:
    with FaultServer({PATH: DATA}) as good, FaultServer({PATH: DATA + b"x"}) as bad:
        good.faults = Faults(throttle=THROTTLE)
        result = rangeio.download(
            [good.url(PATH), bad.url(PATH)], tmp_path / "o.bin", connections=2, policy=SEGMENTS
        )
        assert (tmp_path / "o.bin").read_bytes() == DATA
        assert reasons(result) == [(bad.url(PATH), DropReason.SIZE)]


def _repr_digest(data: bytes) -> tuple[tuple[str, str], ...]:
    value = base64.b64encode(hashlib.sha256(data).digest()).decode()
    return (("Repr-Digest", f"sha-256=:{value}:"),)


def test_digests_decide_between_mirrors_without_etags(tmp_path: Path) -> None:
    other = bytes(reversed(DATA))
    with FaultServer() as good, FaultServer() as bad, FaultServer() as same:
        good.add_file(PATH, DATA, etag="none", last_modified=False)
        bad.add_file(PATH, other, etag="none", last_modified=False)
        same.add_file(PATH, DATA, etag="none", last_modified=False)
        good.faults = Faults(throttle=THROTTLE, extra_headers=_repr_digest(DATA))
        bad.faults = Faults(throttle=THROTTLE, extra_headers=_repr_digest(other))
        same.faults = Faults(throttle=THROTTLE, extra_headers=_repr_digest(DATA))
        urls = [good.url(PATH), bad.url(PATH), same.url(PATH)]
        result = rangeio.download(urls, tmp_path / "o.bin", connections=2, policy=SEGMENTS)
        assert (tmp_path / "o.bin").read_bytes() == DATA
        assert reasons(result) == [(bad.url(PATH), DropReason.DIGEST)]
        assert ranged_gets(same)


def test_a_mirror_that_fails_mid_way_loses_its_share(
    mirrors: tuple[FaultServer, FaultServer], opener: Opener, tmp_path: Path
) -> None:
    a, b = mirrors
    a.faults = Faults(throttle=THROTTLE)
    b.faults = Faults(throttle=THROTTLE, reset_after=100_000)  # every answer cut
    dest = tmp_path / "out.bin"
    result = opener.download(
        [a.url(PATH), b.url(PATH)], dest, connections=2, policy=SEGMENTS, retries=FAST
    )
    assert dest.read_bytes() == DATA
    assert reasons(result) == [(b.url(PATH), DropReason.FAILED)]


def test_a_mirror_whose_every_body_is_cut_is_dropped_even_on_one_connection(
    mirrors: tuple[FaultServer, FaultServer], tmp_path: Path
) -> None:
    a, b = mirrors
    a.faults = Faults(throttle=THROTTLE)
    b.faults = Faults(throttle=THROTTLE, reset_after=100_000)  # good heads, cut bodies
    result = rangeio.download(
        [a.url(PATH), b.url(PATH)], tmp_path / "o.bin", connections=1, policy=SEGMENTS,
        retries=FAST,
    )  # fmt: skip
    assert (tmp_path / "o.bin").read_bytes() == DATA
    assert reasons(result) == [(b.url(PATH), DropReason.FAILED)]
    assert len(ranged_gets(b)) == 2  # two failures in a row, then no more requests


@pytest.mark.parametrize(
    ("culprit", "faults", "reason"),
    [
        # The reference too loses its share: it only pins the version.
        (0, Faults(throttle=THROTTLE, reset_after=300_000), DropReason.FAILED),
        (1, Faults(ignore_range=True), DropReason.NO_RANGES),
    ],
    ids=["the reference failing mid-way", "a mirror ignoring Range"],
)
def test_a_misbehaving_mirror_is_dropped_and_the_other_completes(
    mirrors: tuple[FaultServer, FaultServer], tmp_path: Path, culprit: int, faults: Faults,
    reason: DropReason,
) -> None:  # fmt: skip
    mirrors[culprit].faults = faults
    mirrors[1 - culprit].faults = Faults(throttle=THROTTLE)
    urls = [m.url(PATH) for m in mirrors]
    result = rangeio.download(urls, tmp_path / "o.bin", connections=2, policy=SEGMENTS)
    assert (tmp_path / "o.bin").read_bytes() == DATA
    assert reasons(result) == [(urls[culprit], reason)]


def test_a_dead_reference_hands_the_start_to_the_next_mirror(
    mirrors: tuple[FaultServer, FaultServer], tmp_path: Path
) -> None:
    a, b = mirrors
    a.faults = Faults(status=404)
    result = rangeio.download(
        [a.url(PATH), b.url(PATH)], tmp_path / "o.bin", connections=2, retries=FAST
    )
    assert (tmp_path / "o.bin").read_bytes() == DATA
    record_url = result.etag  # the file's version is the new reference's
    assert record_url == b.etag(PATH)


def _interrupted(a: FaultServer, b: FaultServer, dest: Path) -> int:
    a.faults = b.faults = Faults(throttle=THROTTLE, reset_after=400_000, times=4)
    with pytest.raises(rangeio.PartialDownloadError) as info:
        rangeio.download(
            [a.url(PATH), b.url(PATH)], dest, connections=2, policy=SEGMENTS, retries=0
        )
    a.clear_faults()
    b.clear_faults()
    return info.value.bytes_done


def test_a_resume_with_the_mirrors_in_another_order_goes_on(
    mirrors: tuple[FaultServer, FaultServer], tmp_path: Path
) -> None:
    a, b = mirrors
    dest = tmp_path / "o.bin"
    done = _interrupted(a, b, dest)
    assert done > 0
    record = control.decode((tmp_path / "o.bin.part.ctrl").read_bytes())
    assert record.url == a.url(PATH)  # the record names the reference
    result = rangeio.download([b.url(PATH), a.url(PATH)], dest, connections=2, policy=SEGMENTS)
    assert dest.read_bytes() == DATA and result.bytes_reused == done


def test_a_resume_without_the_reference_starts_afresh(
    mirrors: tuple[FaultServer, FaultServer], tmp_path: Path
) -> None:
    a, b = mirrors
    dest = tmp_path / "o.bin"
    assert _interrupted(a, b, dest) > 0
    result = rangeio.download([b.url(PATH)], dest, connections=2, policy=SEGMENTS)
    assert dest.read_bytes() == DATA and result.bytes_reused == 0


def test_nginx_beside_a_fault_server_serving_the_same_bytes(nginx: Nginx, tmp_path: Path) -> None:
    """Two different servers. Beside a mirror that sends no ETag, nginx agrees on the size;
    beside one with another strong ETag (nginx's is mtime-size) it is dropped: a differing
    pair of strong ETags cannot prove the same bytes."""
    with FaultServer() as plain, FaultServer() as tagged:
        plain.add_file(PATH, DATA, etag="none", last_modified=False)
        tagged.add_file(PATH, DATA)
        plain.faults = tagged.faults = Faults(throttle=THROTTLE)
        mark = len(nginx.log_lines())
        first = rangeio.download(
            [plain.url(PATH), nginx.url("data.bin")],
            tmp_path / "a.bin",
            connections=2,
            policy=SEGMENTS,
        )
        assert (tmp_path / "a.bin").read_bytes() == DATA and first.dropped_mirrors == ()

        def nginx_served_a_segment() -> bool:
            return any(" 206 " in line and "data.bin" in line for line in nginx.log_lines()[mark:])

        wait_until(nginx_served_a_segment, "nginx's log of a 206")
        second = rangeio.download(
            [tagged.url(PATH), nginx.url("data.bin")],
            tmp_path / "b.bin",
            connections=2,
            policy=SEGMENTS,
        )
        assert (tmp_path / "b.bin").read_bytes() == DATA
        assert reasons(second) == [(nginx.url("data.bin"), DropReason.ETAG)]


def test_haul_takes_one_url(mirrors: tuple[FaultServer, FaultServer], tmp_path: Path) -> None:
    a, b = mirrors
    with pytest.raises(TypeError, match="mirrors"):
        rangeio.haul([a.url(PATH), b.url(PATH)], tmp_path / "o.bin")  # type: ignore[arg-type]
    assert a.requests == [] and not (tmp_path / "o.bin.part").exists()


def test_a_mirror_found_to_disagree_after_serving_bytes_discards_the_attempt(
    tmp_path: Path,
) -> None:
    """A resume's record pins no digest, so another mirror's first answers agree on the size
    alone and its bytes are written; the reference's first answer, late, announces a digest
    the mirror contradicts. Its bytes cannot be told apart any more: the progress is
    discarded (never spliced) and the download starts afresh without it."""
    other = bytes(reversed(DATA))
    with FaultServer() as good, FaultServer() as bad:
        good.add_file(PATH, DATA, etag="none", last_modified=False)
        bad.add_file(PATH, other, etag="none", last_modified=False)
        dest = tmp_path / "o.bin"
        good.faults = Faults(throttle=THROTTLE, reset_after=600_000, times=2)
        with pytest.raises(rangeio.PartialDownloadError):
            rangeio.download(good.url(PATH), dest, connections=2, policy=SEGMENTS, retries=0)
        assert (tmp_path / "o.bin.part.ctrl").exists()
        good.faults = Faults(throttle=THROTTLE, delay=0.3, extra_headers=_repr_digest(DATA))
        bad.faults = Faults(throttle=THROTTLE, extra_headers=_repr_digest(other))
        result = rangeio.download(
            [good.url(PATH), bad.url(PATH)], dest, connections=2, policy=SEGMENTS, retries=FAST
        )
        assert dest.read_bytes() == DATA
        assert reasons(result) == [(bad.url(PATH), DropReason.DIGEST)]
        assert result.dropped_mirrors[0].tainted
        assert result.bytes_reused == 0  # what was on disk was discarded with the mirror's bytes


def test_a_reference_that_ignores_range_streams_the_file_alone(
    mirrors: tuple[FaultServer, FaultServer], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = mirrors
    a.faults = Faults(ignore_range=True)
    result = rangeio.download([a.url(PATH), b.url(PATH)], tmp_path / "o.bin", connections=2)
    assert (tmp_path / "o.bin").read_bytes() == DATA and result.requests == 1
    assert b.requests == [] and "mirrors go unused" in caplog.text
