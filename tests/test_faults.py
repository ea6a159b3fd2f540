"""Every fault of the fault server: correct bytes or the right typed error, for every adapter."""

from __future__ import annotations

from typing import Any

import pytest

import rangeio
from rangeio.testing import Faults, FaultServer
from tests.adapters import Opener

DATA = "/data.bin"
FAST_RETRY = rangeio.RetryPolicy(attempts=3, backoff=0.01, max_backoff=0.05)


def open_data(server: FaultServer, opener: Opener, **options: Any) -> Any:
    options.setdefault("retries", FAST_RETRY)
    return opener(server.url(DATA), **options)


def test_ignore_range_fits_cache(fault_server: FaultServer, opener: Opener) -> None:
    data = fault_server.get_file(DATA)
    fault_server.faults = Faults(ignore_range=True)
    with open_data(fault_server, opener) as f:
        f.seek(12345)
        assert f.read(1000) == data[12345:13345]
        f.seek(0)
        assert f.read() == data
        assert f.stats.requests == 1


def test_ignore_range_too_big_for_cache(fault_server: FaultServer, opener: Opener) -> None:
    fault_server.faults = Faults(ignore_range=True)
    with pytest.raises(rangeio.RangeNotSupportedError) as info:
        open_data(fault_server, opener, cache_bytes=1024 * 1024)
    assert "cache budget" in info.value.reason


def test_ignore_range_after_open(fault_server: FaultServer, opener: Opener) -> None:
    """A server that starts ignoring Range mid-session still yields the right bytes."""
    data = fault_server.get_file(DATA)
    with open_data(fault_server, opener) as f:
        fault_server.faults = Faults(ignore_range=True)
        f.seek(100)
        assert f.read(10) == data[100:110]


@pytest.mark.parametrize("shift", [1, -1])
def test_wrong_content_range_offset(fault_server: FaultServer, opener: Opener, shift: int) -> None:
    """A 206 for another range than asked, honest about its bytes, is used; the bytes it lacks
    are asked for again. A server that shifts every answer never sends some byte: the answer to
    the request for it holds none of it, a ProtocolError."""
    data = fault_server.get_file(DATA)
    with open_data(fault_server, opener) as f:
        fault_server.faults = Faults(content_range_shift=shift, times=1)
        f.seek(5000)
        assert f.read(100) == data[5000:5100]
        fault_server.faults = Faults(content_range_shift=shift)
        f.seek(2_000_000)
        with pytest.raises(rangeio.ProtocolError, match="holds none"):
            f.read(100)
    fault_server.faults = Faults(content_range_shift=shift)
    with pytest.raises(rangeio.ProtocolError, match="holds none"):
        open_data(fault_server, opener)


@pytest.mark.parametrize("delta", [-10, 10])
def test_content_length_not_the_span(fault_server: FaultServer, opener: Opener, delta: int) -> None:
    """A Content-Length that disagrees with Content-Range is caught from the headers alone."""
    with open_data(fault_server, opener) as f:
        fault_server.faults = Faults(content_length_delta=delta)
        f.seek(0)
        with pytest.raises(rangeio.ProtocolError, match="Content-Length"):
            f.read(100)


def test_truncated_body_resumes_from_received_bytes(
    fault_server: FaultServer, opener: Opener
) -> None:
    data = fault_server.get_file(DATA)
    with open_data(fault_server, opener, prefetch_bytes=0) as f:
        fault_server.faults = Faults(truncate_after=3000, times=1)
        fault_server.clear_log()
        f.seek(100_000)
        assert f.read(4096) == data[100_000:104_096]
        ranges = [r.range for r in fault_server.requests]
        assert ranges == ["bytes=100000-108191", "bytes=103000-108191"]
        assert f.stats.retries == 1


def test_truncated_open_resumes(fault_server: FaultServer, opener: Opener) -> None:
    data = fault_server.get_file(DATA)
    fault_server.faults = Faults(truncate_after=1000, times=1)
    with open_data(fault_server, opener) as f:
        f.seek(-2000, 2)
        assert f.read() == data[-2000:]
    start = len(data) - 1024 * 1024 + 1000
    assert fault_server.requests[1].range == f"bytes={start}-{len(data) - 1}"


def test_connection_reset_is_retried(fault_server: FaultServer, opener: Opener) -> None:
    data = fault_server.get_file(DATA)
    with open_data(fault_server, opener) as f:
        fault_server.faults = Faults(reset_after=0, times=1)
        f.seek(10)
        assert f.read(10) == data[10:20]
        fault_server.faults = Faults(reset_after=500, times=1)
        f.seek(500_000)
        assert f.read(5000) == data[500_000:505_000]


def test_connection_reset_forever_is_typed(fault_server: FaultServer, opener: Opener) -> None:
    with open_data(fault_server, opener) as f:
        fault_server.faults = Faults(reset_after=0)
        f.seek(10)
        with pytest.raises(rangeio.NetworkError) as info:
            f.read(10)
        assert info.value.__cause__ is not None


def test_gzip_is_refused(fault_server: FaultServer, opener: Opener) -> None:
    fault_server.faults = Faults(gzip=True)
    with pytest.raises(rangeio.RangeNotSupportedError, match="gzip"):
        open_data(fault_server, opener)


@pytest.mark.parametrize("etag", ["strong", "weak", "none"])
def test_change_between_requests(fault_server: FaultServer, opener: Opener, etag: str) -> None:
    data = fault_server.get_file(DATA)
    fault_server.add_file(DATA, data, etag=etag)  # type: ignore[arg-type]
    with open_data(fault_server, opener) as f:
        fault_server.replace(DATA, data[::-1])
        f.seek(0)
        with pytest.raises(rangeio.RemoteChangedError):
            f.read(10)
    if etag == "strong":
        assert fault_server.requests[-1].headers.get("if-match")
    else:
        assert "if-match" not in fault_server.requests[-1].headers


def test_size_change_detected_without_validators(fault_server: FaultServer, opener: Opener) -> None:
    data = fault_server.get_file(DATA)
    fault_server.add_file(DATA, data, etag="none", last_modified=False)
    with open_data(fault_server, opener) as f:
        fault_server.add_file(DATA, data + b"more", etag="none", last_modified=False)
        f.seek(0)
        with pytest.raises(rangeio.RemoteChangedError):
            f.read(10)


def test_503_with_retry_after_then_success(fault_server: FaultServer, opener: Opener) -> None:
    data = fault_server.get_file(DATA)
    fault_server.faults = Faults(status=503, retry_after="0", times=2)
    with open_data(fault_server, opener) as f:
        assert f.stats.retries == 2
        f.seek(0)
        assert f.read(10) == data[:10]


def test_503_forever_is_typed(fault_server: FaultServer, opener: Opener) -> None:
    fault_server.faults = Faults(status=503, retry_after="0")
    with pytest.raises(rangeio.HTTPStatusError) as info:
        open_data(fault_server, opener)
    assert info.value.status == 503
    assert info.value.is_transient
    assert info.value.retry_after == 0
    assert len(fault_server.requests) == FAST_RETRY.attempts


def test_404_is_not_retried(fault_server: FaultServer, opener: Opener) -> None:
    with pytest.raises(rangeio.HTTPStatusError) as info:
        opener(fault_server.url("/missing"))
    assert info.value.status == 404 and not info.value.is_transient
    assert len(fault_server.requests) == 1


def test_same_origin_redirect_is_remembered(fault_server: FaultServer, opener: Opener) -> None:
    data = fault_server.get_file(DATA)
    fault_server.set_faults("/alias.bin", Faults(redirect_to=DATA, redirect_status=307))
    with opener(fault_server.url("/alias.bin"), prefetch_bytes=0) as f:
        f.seek(1000)
        assert f.read(10) == data[1000:1010]
    paths = [r.path for r in fault_server.requests]
    assert paths == ["/alias.bin", DATA, DATA]


def test_cross_origin_redirect_drops_credentials(fault_server: FaultServer, opener: Opener) -> None:
    data = fault_server.get_file(DATA)
    with FaultServer({DATA: data}) as other:
        fault_server.set_faults("/elsewhere", Faults(redirect_to=other.url(DATA)))
        headers = {"Authorization": "Bearer secret", "Cookie": "a=b", "X-Trace": "1"}
        with opener(fault_server.url("/elsewhere"), headers=headers) as f:
            f.seek(0)
            assert f.read(10) == data[:10]
        assert fault_server.requests[0].headers["authorization"] == "Bearer secret"
        for seen in other.requests:
            assert "authorization" not in seen.headers
            assert "cookie" not in seen.headers
            assert seen.headers["x-trace"] == "1"


def test_redirect_loop_is_bounded(fault_server: FaultServer, opener: Opener) -> None:
    fault_server.set_faults("/loop", Faults(redirect_to="/loop"))
    with pytest.raises(rangeio.NetworkError, match="redirects"):
        opener(fault_server.url("/loop"))


def test_suffix_501_falls_back_to_prefix(fault_server: FaultServer, opener: Opener) -> None:
    data = fault_server.get_file(DATA)
    fault_server.faults = Faults(suffix_501=True)
    with open_data(fault_server, opener) as f:
        assert f.size == len(data)
        f.seek(0)
        assert f.read(100) == data[:100]
    assert [r.range for r in fault_server.requests] == ["bytes=-1048576", "bytes=0-1048575"]


def test_416_inside_the_file_is_a_protocol_error(fault_server: FaultServer, opener: Opener) -> None:
    with open_data(fault_server, opener, prefetch_direction="START") as f:
        fault_server.faults = Faults(always_416=True)
        f.seek(2_000_000)
        with pytest.raises(rangeio.ProtocolError):
            f.read(10)


def test_star_totals_learn_size_from_head(fault_server: FaultServer, opener: Opener) -> None:
    data = fault_server.get_file(DATA)
    fault_server.faults = Faults(star_total=True)
    with open_data(fault_server, opener) as f:
        assert f.size == len(data)
        f.seek(2_000_000)
        assert f.read(100) == data[2_000_000:2_000_100]


def test_head_is_never_needed(fault_server: FaultServer, opener: Opener) -> None:
    fault_server.faults = Faults(refuse_head=True)
    with open_data(fault_server, opener) as f:
        f.seek(5)
        f.read(5)
    assert all(r.method == "GET" for r in fault_server.requests)


def test_empty_file_over_fault_server(fault_server: FaultServer, opener: Opener) -> None:
    with opener(fault_server.url("/empty.bin")) as f:
        assert f.size == 0 and f.read() == b""


def test_chunked_bodies(fault_server: FaultServer, opener: Opener) -> None:
    data = fault_server.get_file(DATA)
    fault_server.faults = Faults(chunked=True)
    with open_data(fault_server, opener) as f:
        f.seek(100)
        assert f.read(50_000) == data[100:50_100]


def test_read_timeout_is_typed(fault_server: FaultServer, opener: Opener) -> None:
    with open_data(fault_server, opener, timeout=0.3, retries=0) as f:
        fault_server.faults = Faults(delay=1.0)
        f.seek(0)
        with pytest.raises(rangeio.NetworkTimeoutError):
            f.read(10)
