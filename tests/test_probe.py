"""rangeio.probe / rangeio.aio.probe: what a server does with ranges, over every adapter, against
FaultServer switches (suffix refused, ranges ignored, a multipart cap, redirects) and nginx."""

from __future__ import annotations

from typing import Any

import pytest

import rangeio
from rangeio.testing import FaultServer
from rangeio.testing.server import Faults
from tests.adapters import Opener
from tests.conftest import make_bytes
from tests.raw_server import RawConnection, RawRequest, raw_server, serve_range
from tests.servers.nginx import Nginx

DATA = make_bytes(400_000, seed=21)  # more than a probe reads of a 200
SMALL = b"0123456789abcdefghij"


def probe(opener: Opener, url: str, **options: Any) -> rangeio.ProbeResult:
    """The sync probe for a sync adapter, the async one (on the opener's loop) for an async."""
    if opener.is_async:
        assert opener._loop is not None
        result = opener._loop.run_until_complete(
            rangeio.aio.probe(url, client=opener.client, **options)
        )
        assert isinstance(result, rangeio.ProbeResult)
        return result
    return rangeio.probe(url, client=opener.client, **options)


@pytest.fixture
def server() -> Any:
    with FaultServer({"/data.bin": DATA, "/small.txt": SMALL, "/empty": b""}) as srv:
        yield srv


def test_probe_of_an_honest_server(server: FaultServer, opener: Opener) -> None:
    facts = probe(opener, server.url("/data.bin"))
    assert facts.size == len(DATA)
    assert facts.etag == server.etag("/data.bin") and facts.etag_weak is False
    assert facts.last_modified
    assert (facts.ranges, facts.suffix_ranges, facts.multipart) == (True, True, True)
    assert facts.max_ranges == 2 and facts.refused_ranges is None
    assert facts.redirects == () and facts.final_url == server.url("/data.bin")
    assert facts.requests == 2
    assert facts.first_byte is not None and 0 <= facts.first_byte <= facts.elapsed
    assert facts.header("Accept-Ranges") == "bytes"
    asked = [r.headers.get("range") for r in server.requests if r.path == "/data.bin"]
    assert asked == ["bytes=-1", f"bytes=0-0,{len(DATA) - 1}-{len(DATA) - 1}"]


def test_probe_when_suffix_ranges_are_refused(server: FaultServer, opener: Opener) -> None:
    server.set_faults("/small.txt", Faults(suffix_501=True))
    facts = probe(opener, server.url("/small.txt"))
    assert facts.size == len(SMALL)
    assert (facts.ranges, facts.suffix_ranges, facts.multipart) == (True, False, True)
    assert facts.requests == 3  # the suffix, the prefix fallback, the multipart test


def test_probe_without_multipart(server: FaultServer, opener: Opener) -> None:
    server.set_faults("/data.bin", Faults(max_ranges=1))  # S3: never multipart
    facts = probe(opener, server.url("/data.bin"))
    assert (facts.ranges, facts.suffix_ranges, facts.multipart) == (True, True, False)
    assert facts.max_ranges is None and facts.refused_ranges == 2
    assert facts.size == len(DATA)


def test_probe_finds_a_range_cap(server: FaultServer, opener: Opener) -> None:
    server.set_faults("/data.bin", Faults(max_ranges=10))
    facts = probe(opener, server.url("/data.bin"), max_ranges=64)
    assert facts.multipart is True
    # Halving from 64: 64 and 32 and 16 refused, 8 answered: the cap is in [8, 16).
    assert facts.max_ranges == 8 and facts.refused_ranges == 16


def test_probe_when_ranges_are_ignored(server: FaultServer, opener: Opener) -> None:
    server.set_faults("/small.txt", Faults(ignore_range=True))
    server.set_faults("/data.bin", Faults(ignore_range=True))
    small = probe(opener, server.url("/small.txt"))
    assert (small.ranges, small.suffix_ranges, small.multipart) == (False, False, False)
    assert small.size == len(SMALL) and small.requests == 1
    # Too big to read in a probe: dropped unread, the size asked for with a HEAD.
    big = probe(opener, server.url("/data.bin"))
    assert (big.ranges, big.multipart) == (False, False)
    assert big.size == len(DATA)
    assert [r.method for r in server.requests if r.path == "/data.bin"][-1] == "HEAD"


def test_probe_follows_and_reports_redirects(server: FaultServer, opener: Opener) -> None:
    server.add_file("/moved", b"")
    server.set_faults("/moved", Faults(redirect_to="/data.bin", redirect_status=301))
    facts = probe(opener, server.url("/moved"))
    assert [(h.status, h.url, h.location) for h in facts.redirects] == [
        (301, server.url("/moved"), "/data.bin")
    ]
    assert facts.final_url == server.url("/data.bin")
    assert facts.size == len(DATA)


def test_probe_of_an_empty_file(server: FaultServer, opener: Opener) -> None:
    facts = probe(opener, server.url("/empty"))
    assert facts.size == 0 and facts.multipart is None


def test_probe_raises_what_open_raises(server: FaultServer, opener: Opener) -> None:
    with pytest.raises(rangeio.HTTPStatusError) as caught:
        probe(opener, server.url("/nope"), retries=0)
    assert caught.value.status == 404


def test_probe_against_nginx(nginx: Nginx) -> None:
    facts = rangeio.probe(nginx.url("data.bin"), max_ranges=100)
    assert (facts.ranges, facts.suffix_ranges, facts.multipart) == (True, True, True)
    assert facts.max_ranges == 100 and facts.size == len(make_bytes(3 * 1024 * 1024 + 123))
    capped = rangeio.probe(f"{nginx.origin}/capped/data.bin", max_ranges=100)
    # nginx's max_ranges 64: 100 refused, 50 answered.
    assert capped.multipart is True
    assert capped.max_ranges == 50 and capped.refused_ranges == 100


def test_probe_rejects_one_range() -> None:
    with pytest.raises(ValueError):
        rangeio.probe("http://127.0.0.1:9/x", max_ranges=1)


def test_probe_of_a_raw_server_without_multipart(opener: Opener) -> None:
    """A server of our own bytes (not FaultServer): single ranges honoured, a multi-range
    request answered with 200 and the whole file, a weak ETag, a Content-Disposition."""
    data = make_bytes(5000, seed=22)
    extra = {"ETag": 'W/"raw-weak"', "Content-Disposition": 'attachment; filename="r.bin"'}

    def handler(conn: RawConnection, request: RawRequest) -> None:
        conn.send(serve_range(data, request, extra))  # extra's ETag replaces the default

    with raw_server(handler) as server:
        facts = probe(opener, server.url("/f"))
        asked = [r.range for r in server.requests]
    assert (facts.ranges, facts.suffix_ranges, facts.multipart) == (True, True, False)
    assert facts.size == len(data)
    assert facts.etag == 'W/"raw-weak"' and facts.etag_weak is True
    assert facts.header("content-disposition") == 'attachment; filename="r.bin"'
    assert asked == ["bytes=-1", f"bytes=0-0,{len(data) - 1}-{len(data) - 1}"]
