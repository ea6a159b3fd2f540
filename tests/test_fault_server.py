"""Tests of rangeio.testing.FaultServer itself, driven by http.client, raw sockets and urllib3."""

from __future__ import annotations

import email.utils
import gzip
import http.client
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import urllib3

from rangeio.testing import Faults, FaultServer, RecordedRequest

DATA = b"abcdefghijklmnopqrstuvwxyz"
PATH = "/data.bin"

Response = tuple[int, dict[str, str], bytes]


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer({PATH: DATA}) as srv:
        yield srv


def fetch(
    server: FaultServer,
    path: str = PATH,
    headers: dict[str, str] | None = None,
    method: str = "GET",
) -> Response:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def raw_exchange(server: FaultServer, request: bytes) -> tuple[bytes, OSError | None]:
    """Send bytes, read until the server closes; returns what came and the error that ended it."""
    received = b""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(request)
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except OSError as exc:
            return received, exc
    return received, None


def get_request(path: str = PATH, *extra: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: test", *extra, "", ""]
    return "\r\n".join(lines).encode()


def split_response(raw: bytes) -> Response:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


def parse_multipart(body: bytes, content_type: str) -> list[tuple[dict[str, str], bytes]]:
    boundary = content_type.split("boundary=", 1)[1]
    delimiter = b"--" + boundary.encode()
    assert body.startswith(delimiter + b"\r\n")
    assert body.endswith(b"\r\n" + delimiter + b"--\r\n")
    parts = []
    for chunk in body.split(delimiter)[1:-1]:
        assert chunk.startswith(b"\r\n") and chunk.endswith(b"\r\n")
        head, _, data = chunk[2:-2].partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode().split("\r\n"):
            name, _, value = line.partition(": ")
            headers[name.lower()] = value
        parts.append((headers, data))
    return parts


# -- normal behaviour ----------------------------------------------------------------------


def test_full_get_has_validators_and_length(server: FaultServer) -> None:
    status, headers, body = fetch(server)
    assert (status, body) == (200, DATA)
    assert headers["accept-ranges"] == "bytes"
    assert headers["content-length"] == str(len(DATA))
    assert headers["etag"].startswith('"') and headers["etag"].endswith('"')
    assert email.utils.parsedate_to_datetime(headers["last-modified"]) is not None
    assert "content-encoding" not in headers


@pytest.mark.parametrize(
    ("range_value", "first", "last"),
    [
        ("bytes=0-9", 0, 9),
        ("bytes=10-", 10, 25),
        ("bytes=-5", 21, 25),
        ("bytes=20-1000", 20, 25),
        ("bytes=-1000", 0, 25),
        ("bytes=25-25", 25, 25),
        ("BYTES = 3-4", 3, 4),
        ("bytes=30-40, 2-3", 2, 3),
    ],
)
def test_single_ranges(server: FaultServer, range_value: str, first: int, last: int) -> None:
    status, headers, body = fetch(server, headers={"Range": range_value})
    assert status == 206
    assert headers["content-range"] == f"bytes {first}-{last}/{len(DATA)}"
    assert body == DATA[first : last + 1]
    assert headers["content-length"] == str(len(body))


def test_multiple_ranges_give_multipart(server: FaultServer) -> None:
    status, headers, body = fetch(server, headers={"Range": "bytes=0-1, 5-6,-2"})
    assert status == 206
    assert headers["content-type"].startswith("multipart/byteranges; boundary=")
    assert headers["content-length"] == str(len(body))
    parts = parse_multipart(body, headers["content-type"])
    assert [data for _, data in parts] == [b"ab", b"fg", b"yz"]
    assert [h["content-range"] for h, _ in parts] == [
        "bytes 0-1/26",
        "bytes 5-6/26",
        "bytes 24-25/26",
    ]
    assert all(h["content-type"] == "application/octet-stream" for h, _ in parts)


@pytest.mark.parametrize("range_value", ["bytes=26-", "bytes=100-200", "bytes=-0", "bytes=30-,-0"])
def test_unsatisfiable_is_416(server: FaultServer, range_value: str) -> None:
    status, headers, body = fetch(server, headers={"Range": range_value})
    assert status == 416
    assert headers["content-range"] == "bytes */26"
    assert headers["content-length"] == str(len(body))


@pytest.mark.parametrize("range_value", ["bytes=0-", "bytes=-5", "bytes=0-0"])
def test_empty_file_any_range_is_416(range_value: str) -> None:
    with FaultServer({"/empty": b""}) as srv:
        status, headers, _ = fetch(srv, "/empty", headers={"Range": range_value})
        assert (status, headers["content-range"]) == (416, "bytes */0")
        assert fetch(srv, "/empty")[:1] == (200,)


@pytest.mark.parametrize(
    "range_value",
    ["bytes=5-1", "items=0-1", "bytes=x-y", "bytes=", "bytes=-", "0-5", "bytes=1-2-3"],
)
def test_malformed_range_is_ignored(server: FaultServer, range_value: str) -> None:
    status, _, body = fetch(server, headers={"Range": range_value})
    assert (status, body) == (200, DATA)


def test_if_match(server: FaultServer) -> None:
    etag = server.etag(PATH)
    assert etag is not None
    assert fetch(server, headers={"If-Match": etag, "Range": "bytes=0-1"})[0] == 206
    assert fetch(server, headers={"If-Match": f'"nope", {etag}'})[0] == 200
    assert fetch(server, headers={"If-Match": "*"})[0] == 200
    status, _, body = fetch(server, headers={"If-Match": '"nope"', "Range": "bytes=0-1"})
    assert (status, body) == (412, b"")
    assert fetch(server, headers={"If-Match": '"nope"'}, method="HEAD")[0] == 412


def test_if_range_by_etag_and_date(server: FaultServer) -> None:
    _, headers, _ = fetch(server, method="HEAD")
    ranged = {"Range": "bytes=0-1"}
    assert fetch(server, headers={**ranged, "If-Range": headers["etag"]})[0] == 206
    assert fetch(server, headers={**ranged, "If-Range": headers["last-modified"]})[0] == 206
    status, _, body = fetch(server, headers={**ranged, "If-Range": '"stale"'})
    assert (status, body) == (200, DATA)
    old_date = email.utils.formatdate(0, usegmt=True)
    assert fetch(server, headers={**ranged, "If-Range": old_date})[0] == 200
    assert fetch(server, headers={**ranged, "If-Range": "W/" + headers["etag"]})[0] == 200


def test_weak_etag_never_matches_strongly() -> None:
    with FaultServer() as srv:
        srv.add_file("/w", DATA, etag="weak")
        _, headers, _ = fetch(srv, "/w")
        assert headers["etag"].startswith('W/"')
        ranged_if = {"Range": "bytes=0-1", "If-Range": headers["etag"]}
        assert fetch(srv, "/w", headers=ranged_if)[0] == 200
        assert fetch(srv, "/w", headers={"If-Match": headers["etag"]})[0] == 412


def test_no_validators() -> None:
    with FaultServer() as srv:
        srv.add_file("/n", DATA, etag="none", last_modified=False)
        _, headers, _ = fetch(srv, "/n")
        assert "etag" not in headers and "last-modified" not in headers
        ranged_if = {"Range": "bytes=0-1", "If-Range": '"x"'}
        assert fetch(srv, "/n", headers=ranged_if)[0] == 200
        assert fetch(srv, "/n", headers={"If-Match": '"x"'})[0] == 412
        assert fetch(srv, "/n", headers={"If-Match": "*"})[0] == 200


def test_head_ignores_range(server: FaultServer) -> None:
    status, headers, body = fetch(server, method="HEAD", headers={"Range": "bytes=0-1"})
    assert (status, body) == (200, b"")
    assert headers["content-length"] == "26"
    assert "content-range" not in headers


def test_unknown_path_and_method(server: FaultServer) -> None:
    assert fetch(server, "/missing")[0] == 404
    status, headers, _ = fetch(server, method="DELETE")
    assert (status, headers["allow"]) == (405, "GET, HEAD")


def test_replace_changes_validators(server: FaultServer) -> None:
    _, before, _ = fetch(server)
    server.replace(PATH, b"new content")
    _, after, body = fetch(server)
    assert body == b"new content"
    assert after["etag"] != before["etag"]
    old = email.utils.parsedate_to_datetime(before["last-modified"])
    new = email.utils.parsedate_to_datetime(after["last-modified"])
    assert (new - old).total_seconds() == 1
    server.replace(PATH, b"new content")
    assert fetch(server)[1]["etag"] != after["etag"]


def test_keep_alive_and_request_log(server: FaultServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    for range_value in ("bytes=0-1", "bytes=2-3"):
        conn.request("GET", PATH + "?sig=1", headers={"Range": range_value})
        assert conn.getresponse().read() in (b"ab", b"cd")
    conn.close()
    assert server.connections == 1
    log = server.requests
    assert [r.range for r in log] == ["bytes=0-1", "bytes=2-3"]
    assert isinstance(log[0], RecordedRequest)
    assert (log[0].method, log[0].path, log[0].query) == ("GET", PATH, "sig=1")
    assert log[0].headers["host"] == f"127.0.0.1:{server.port}"
    server.clear_log()
    assert server.requests == [] and server.connections == 0


def test_pipelined_requests_on_one_connection(server: FaultServer) -> None:
    first = get_request(PATH, "Range: bytes=0-2")
    second = get_request(PATH, "Range: bytes=3-5", "Connection: close")
    raw, error = raw_exchange(server, first + second)
    assert error is None
    assert raw.count(b"HTTP/1.1 206") == 2
    assert raw.endswith(b"\r\n\r\ndef")
    assert b"\r\n\r\nabcHTTP/1.1 206" in raw
    assert server.connections == 1


def test_bad_request_gets_400(server: FaultServer) -> None:
    raw, _ = raw_exchange(server, b"this is not http\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 400")
    assert server.requests == []


def test_post_body_is_consumed_and_connection_kept(server: FaultServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("POST", PATH, body=b"x" * 1000)
    resp = conn.getresponse()
    assert (resp.status, resp.getheader("allow")) == (405, "GET, HEAD")
    resp.read()
    conn.request("GET", PATH)
    assert conn.getresponse().read() == DATA
    conn.close()
    assert server.connections == 1


# -- faults --------------------------------------------------------------------------------


def test_ignore_range(server: FaultServer) -> None:
    server.faults = Faults(ignore_range=True)
    status, headers, body = fetch(server, headers={"Range": "bytes=0-1"})
    assert (status, body) == (200, DATA)
    assert "content-range" not in headers


def test_content_range_shift_and_star_total(server: FaultServer) -> None:
    server.faults = Faults(content_range_shift=3, star_total=True)
    status, headers, body = fetch(server, headers={"Range": "bytes=0-9"})
    # Honest: the body holds the bytes its Content-Range names.
    assert (status, headers["content-range"], body) == (206, "bytes 3-12/*", DATA[3:13])
    _, headers, body = fetch(server, headers={"Range": "bytes=0-0,2-2"})
    parts = parse_multipart(body, headers["content-type"])
    assert [h["content-range"] for h, _ in parts] == ["bytes 3-3/*", "bytes 5-5/*"]
    assert [b for _, b in parts] == [DATA[3:4], DATA[5:6]]
    assert fetch(server, headers={"Range": "bytes=99-"})[1]["content-range"] == "bytes */26"


def test_align_ranges_answers_whole_blocks(server: FaultServer) -> None:
    server.faults = Faults(align_ranges=8)
    status, headers, body = fetch(server, headers={"Range": "bytes=9-10"})
    assert (status, headers["content-range"], body) == (206, "bytes 8-15/26", DATA[8:16])
    # The last block is clipped to the file.
    _, headers, body = fetch(server, headers={"Range": "bytes=25-25"})
    assert (headers["content-range"], body) == ("bytes 24-25/26", DATA[24:26])


def test_overlapping_parts(server: FaultServer) -> None:
    server.faults = Faults(overlapping_parts=True)
    _, headers, body = fetch(server, headers={"Range": "bytes=0-1,10-11"})
    parts = parse_multipart(body, headers["content-type"])
    assert [h["content-range"] for h, _ in parts] == ["bytes 0-1/26", "bytes 0-1/26"]
    assert parts[0][1] == DATA[0:2] and parts[1][1] != DATA[0:2]


def test_content_length_too_large_then_fin(server: FaultServer) -> None:
    server.faults = Faults(content_length_delta=4)
    raw, error = raw_exchange(server, get_request(PATH, "Range: bytes=0-9"))
    status, headers, body = split_response(raw)
    assert error is None
    assert (status, headers["content-length"], headers["content-range"]) == (
        206,
        "14",
        "bytes 0-9/26",
    )
    assert body == DATA[:10]


def test_content_length_too_small_keeps_connection(server: FaultServer) -> None:
    server.faults = Faults(content_length_delta=-4, times=1)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("GET", PATH, headers={"Range": "bytes=0-9"})
    resp = conn.getresponse()
    assert resp.getheader("content-range") == "bytes 0-9/26"
    assert (resp.getheader("content-length"), resp.read()) == ("6", DATA[:6])
    conn.request("GET", PATH, headers={"Range": "bytes=0-9"})
    assert conn.getresponse().read() == DATA[:10]
    conn.close()
    assert server.connections == 1


def test_truncate_after_sends_fin(server: FaultServer) -> None:
    server.faults = Faults(truncate_after=5)
    raw, error = raw_exchange(server, get_request(PATH, "Range: bytes=0-19"))
    status, headers, body = split_response(raw)
    assert error is None
    assert (status, headers["content-length"], body) == (206, "20", DATA[:5])


def test_reset_after_bytes(server: FaultServer) -> None:
    server.faults = Faults(reset_after=5)
    raw, error = raw_exchange(server, get_request())
    status, headers, body = split_response(raw)
    assert isinstance(error, ConnectionResetError)
    assert (status, headers["content-length"], body) == (200, "26", DATA[:5])


def test_reset_before_response(server: FaultServer) -> None:
    server.faults = Faults(reset_after=0, times=1)
    raw, error = raw_exchange(server, get_request())
    assert raw == b""
    assert isinstance(error, ConnectionResetError)
    assert len(server.requests) == 1
    assert fetch(server)[0] == 200


def test_gzip(server: FaultServer) -> None:
    server.faults = Faults(gzip=True)
    status, headers, body = fetch(server, headers={"Range": "bytes=0-9"})
    assert (status, headers["content-encoding"]) == (206, "gzip")
    assert headers["content-range"] == "bytes 0-9/26"
    assert headers["content-length"] == str(len(body))
    assert gzip.decompress(body) == DATA[:10]
    _, headers, body = fetch(server)
    assert gzip.decompress(body) == DATA
    assert "content-encoding" not in fetch(server, method="HEAD")[1]


def test_status_with_retry_after_then_normal(server: FaultServer) -> None:
    server.faults = Faults(status=503, retry_after="7", times=2)
    assert fetch(server, method="HEAD")[0] == 200  # HEAD neither gets nor spends the fault
    for _ in range(2):
        status, headers, _ = fetch(server, headers={"Range": "bytes=0-1"})
        assert (status, headers["retry-after"]) == (503, "7")
    assert fetch(server, headers={"Range": "bytes=0-1"})[0] == 206


def test_on_head_makes_head_faulty(server: FaultServer) -> None:
    server.faults = Faults(status=500, on_head=True, times=1)
    assert fetch(server, method="HEAD")[0] == 500
    assert fetch(server)[0] == 200


def test_redirects(server: FaultServer) -> None:
    server.add_file("/b", b"bee")
    server.set_faults(PATH, Faults(redirect_to="/b", redirect_status=301))
    status, headers, _ = fetch(server)
    assert (status, headers["location"]) == (301, "/b")
    server.set_faults(PATH, Faults(redirect_to=server.url("/b")))
    with urllib3.PoolManager() as pool:
        resp = pool.request("GET", server.url(PATH), headers={"Range": "bytes=1-"})
    assert (resp.status, resp.data) == (206, b"ee")
    assert [(r.method, r.path) for r in server.requests][-2:] == [("GET", PATH), ("GET", "/b")]


def test_urllib3_retries_through_503(server: FaultServer) -> None:
    server.set_faults(PATH, Faults(status=503, retry_after="0", times=2))
    retries = urllib3.Retry(total=3, status_forcelist=[503], backoff_factor=0)
    with urllib3.PoolManager(retries=retries) as pool:
        resp = pool.request("GET", server.url(PATH), headers={"Range": "bytes=0-3"})
    assert (resp.status, resp.data) == (206, b"abcd")
    assert len(server.requests) == 3


def test_suffix_501(server: FaultServer) -> None:
    server.faults = Faults(suffix_501=True)
    assert fetch(server, headers={"Range": "bytes=-5"})[0] == 501
    assert fetch(server, headers={"Range": "bytes=0-4"})[0] == 206


def test_always_416(server: FaultServer) -> None:
    server.faults = Faults(always_416=True)
    status, headers, _ = fetch(server, headers={"Range": "bytes=0-4"})
    assert (status, headers["content-range"]) == (416, "bytes */26")
    assert fetch(server)[0] == 200


def test_refuse_head_spends_budget_on_head(server: FaultServer) -> None:
    server.faults = Faults(refuse_head=True, times=1)
    assert fetch(server, method="HEAD")[0] == 405
    assert fetch(server, method="HEAD")[0] == 200


def test_refuse_head_leaves_get_alone(server: FaultServer) -> None:
    server.faults = Faults(refuse_head=True)
    assert fetch(server, method="HEAD")[0] == 405
    assert fetch(server, headers={"Range": "bytes=0-0"})[0] == 206


def test_delay(server: FaultServer) -> None:
    server.faults = Faults(delay=0.2)
    started = time.monotonic()
    assert fetch(server)[0] == 200
    assert time.monotonic() - started >= 0.2
    assert len(server.requests) == 1  # logged before the delay ran out


def test_chunked(server: FaultServer) -> None:
    server.faults = Faults(chunked=True)
    status, headers, body = fetch(server, headers={"Range": "bytes=0-9"})
    assert (status, body) == (206, DATA[:10])
    assert headers["transfer-encoding"] == "chunked"
    assert "content-length" not in headers
    raw, _ = raw_exchange(server, get_request(PATH, "Connection: close"))
    assert raw.endswith(b"\r\n0\r\n\r\n")
    assert raw.count(b"\r\n9\r\n") == 2  # 26 bytes in three chunks: 9, 9, 8


def test_change_after(server: FaultServer) -> None:
    server.set_faults(PATH, Faults(change_after=1))
    _, first, body = fetch(server)
    assert body == DATA
    ranged = {"Range": "bytes=0-1", "If-Range": first["etag"]}
    status, second, body = fetch(server, headers=ranged)
    assert (status, body) == (200, DATA[::-1])
    assert second["etag"] != first["etag"]
    assert fetch(server)[2] == DATA[::-1]  # it changes once only


def test_path_faults_override_global_and_clear(server: FaultServer) -> None:
    server.add_file("/other", b"other")
    server.faults = Faults(status=500)
    server.set_faults("/other", Faults(ignore_range=True))
    assert fetch(server)[0] == 500
    assert fetch(server, "/other", headers={"Range": "bytes=0-0"})[0] == 200
    server.set_faults("/other", None)
    assert fetch(server, "/other")[0] == 500
    server.clear_faults()
    assert server.faults is None
    assert fetch(server, "/other", headers={"Range": "bytes=0-0"})[0] == 206


def test_faults_redirect_for_missing_path(server: FaultServer) -> None:
    server.set_faults("/old", Faults(redirect_to=PATH))
    assert fetch(server, "/old")[1]["location"] == PATH


@pytest.mark.parametrize("status", [204, 304, 429])
def test_status_without_or_with_body(server: FaultServer, status: int) -> None:
    server.faults = Faults(status=status, times=1)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("GET", PATH)
    resp = conn.getresponse()
    body = resp.read()
    assert resp.status == status
    assert (body == b"") == (status in (204, 304))
    conn.request("GET", PATH)  # the connection survived the injected answer
    assert conn.getresponse().read() == DATA
    conn.close()


def test_faults_validation() -> None:
    with pytest.raises(ValueError):
        Faults(redirect_status=304)
    with pytest.raises(ValueError):
        Faults(status=100)
    with pytest.raises(ValueError):
        Faults(change_after=0)


def test_times_counts_across_paths_for_global(server: FaultServer) -> None:
    server.add_file("/other", b"other")
    server.faults = Faults(status=503, times=1)
    assert fetch(server, "/other")[0] == 503
    assert fetch(server)[0] == 200


# -- lifecycle -----------------------------------------------------------------------------


def test_url_and_origin(server: FaultServer) -> None:
    assert server.origin == f"http://127.0.0.1:{server.port}"
    assert server.url(PATH) == f"http://127.0.0.1:{server.port}{PATH}"


def test_stop_is_quick_with_open_and_stuck_connections() -> None:
    before = threading.active_count()
    srv = FaultServer({PATH: DATA}).start()
    idle = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    idle.request("GET", PATH)
    idle.getresponse().read()
    srv.faults = Faults(delay=30)
    stuck = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    stuck.sendall(get_request())
    while len(srv.requests) < 2:
        time.sleep(0.005)
    started = time.monotonic()
    srv.stop()
    assert time.monotonic() - started < 1.0
    assert stuck.recv(100) == b""
    stuck.close()
    idle.close()
    assert threading.active_count() == before
    srv.stop()  # stopping twice is harmless


def test_unstarted_server_has_no_port() -> None:
    with pytest.raises(RuntimeError):
        _ = FaultServer().port
