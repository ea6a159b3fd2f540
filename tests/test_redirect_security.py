"""Redirects end to end, through every adapter and the file, stream and download faces: credentials
stay with their origin, https->http is refused unless allowed, and expiring presigned targets are
refreshed from the URL the user gave."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

import rangeio
import rangeio.aio
from rangeio.testing import Faults, FaultServer
from tests.adapters import Opener
from tests.conftest import make_bytes
from tests.tls import TLS_KINDS, Tls, TlsOpener, make_tls, tls_opener_for

DATA = "/data.bin"
PAYLOAD = make_bytes(3_000_000, seed=11)
CREDENTIALS = {
    "Authorization": "Bearer s3cret",
    "Cookie": "session=abc",
    "Proxy-Authorization": "Basic cHJveHk6cHc=",
}
CREDENTIAL_NAMES = [name.lower() for name in CREDENTIALS]
# A header that is not a credential: it follows every redirect.
TRACE = {"X-Trace": "t-1"}
# Kinds whose client keeps a cookie jar of its own.
JAR_KINDS = ["requests", "httpx", "niquests", "aiohttp-session", "httpx-async", "niquests-async"]


@pytest.fixture(autouse=True)
def _no_env_ca_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    # requests and niquests let these override a session's own `verify` (psf/requests#3829).
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


@pytest.fixture
def first() -> Iterator[FaultServer]:
    with FaultServer({DATA: PAYLOAD}) as s:
        yield s


@pytest.fixture
def second() -> Iterator[FaultServer]:
    """Another origin: same host, another port (RFC 6454 §4: the port is part of the origin)."""
    with FaultServer({DATA: PAYLOAD}) as s:
        yield s


def _read_around(f: Any) -> None:
    """Reads that cost several requests after the open: two seeks and a vectored read."""
    f.seek(2_000_000)
    assert f.read(1000) == PAYLOAD[2_000_000:2_001_000]
    assert f.read_ranges([(10, 20), (2_900_000, 2_900_010)]) == [
        PAYLOAD[10:20],
        PAYLOAD[2_900_000:2_900_010],
    ]


def _assert_no_credentials(server: FaultServer) -> None:
    assert server.requests, "the redirect target was never asked"
    for seen in server.requests:
        leaked = [name for name in CREDENTIAL_NAMES if name in seen.headers]
        assert not leaked, f"{leaked} reached {server.origin} in {seen}"
        assert seen.headers["x-trace"] == "t-1"


# -- credentials ---------------------------------------------------------------------------------


def test_cross_origin_redirect_strips_credentials(
    first: FaultServer, second: FaultServer, opener: Opener
) -> None:
    first.set_faults("/moved", Faults(redirect_to=second.url(DATA)))
    with opener(first.url("/moved"), headers={**CREDENTIALS, **TRACE}, prefetch_bytes=1000) as f:
        _read_around(f)
    [asked] = first.requests  # later requests go straight to the remembered target
    assert all(
        asked.headers[name] == value for name, value in zip(CREDENTIAL_NAMES, CREDENTIALS.values())
    )
    assert len(second.requests) >= 3
    _assert_no_credentials(second)


def test_same_origin_redirect_keeps_credentials(first: FaultServer, opener: Opener) -> None:
    first.set_faults("/alias", Faults(redirect_to=DATA))  # relative: same origin
    with opener(first.url("/alias"), headers={**CREDENTIALS, **TRACE}, prefetch_bytes=1000) as f:
        _read_around(f)
    assert [r.path for r in first.requests][:2] == ["/alias", DATA]
    for seen in first.requests:
        for name, value in zip(CREDENTIAL_NAMES, CREDENTIALS.values()):
            assert seen.headers[name] == value


def test_credentials_stripped_on_stream_and_download_faces(
    first: FaultServer, second: FaultServer, tmp_path: Path
) -> None:
    first.set_faults("/moved", Faults(redirect_to=second.url(DATA)))
    headers = {**CREDENTIALS, **TRACE}
    url = first.url("/moved")
    with rangeio.RangeStream(url, None, (100, 200_000), headers=headers) as rs:
        assert rs.read() == PAYLOAD[100:200_000]

    async def aio_stream() -> bytes:
        async with rangeio.aio.RangeStream(url, None, (5, 50), headers=headers) as rs:
            return await rs.read()

    assert asyncio.run(aio_stream()) == PAYLOAD[5:50]
    rangeio.download(url, tmp_path / "a", headers=headers, connections=3)
    asyncio.run(rangeio.aio.download(url, tmp_path / "b", headers=headers))
    rangeio.haul(url, dest=tmp_path / "c", headers=headers)
    for name in "abc":
        assert (tmp_path / name).read_bytes() == PAYLOAD
    assert {r.path for r in first.requests} == {"/moved"}
    assert all(r.headers["authorization"] == "Bearer s3cret" for r in first.requests)
    _assert_no_credentials(second)


def _put_jar_cookie(opener: TlsOpener, server: FaultServer) -> None:
    """A cookie for the first server's host in the borrowed client's own jar."""
    client = opener.client
    if opener.kind == "aiohttp-session":
        from yarl import URL

        client.cookie_jar.update_cookies({"jar": "first-host"}, URL(server.origin + "/"))
    else:
        client.cookies.set("jar", "first-host", domain="127.0.0.1", path="/")


@pytest.mark.parametrize(
    "target_host", ["localhost", "127.0.0.1"], ids=["other-host", "other-port"]
)
@pytest.mark.parametrize("kind", JAR_KINDS)
def test_jar_cookies_of_a_borrowed_client_stay_with_their_origin(
    kind: str, target_host: str, first: FaultServer, second: FaultServer
) -> None:
    # The target is another origin: another host (a CDN, a bucket), or the same host on another
    # port, where a cookie jar alone would send the cookie (RFC 6265 §8.5: cookies do not
    # isolate by port). The jar's cookie for the first origin must not follow, and neither the
    # explicit credentials: rangeio sends a cross-origin hop without the client's jar.
    target = f"http://{target_host}:{second.port}{DATA}"
    first.set_faults("/moved", Faults(redirect_to=target))
    for opener in tls_opener_for(kind, None):
        _put_jar_cookie(opener, first)
        headers = {"Authorization": "Bearer s3cret", **TRACE}
        with opener(first.url("/moved"), headers=headers, prefetch_bytes=1000) as f:
            _read_around(f)
    # The jar is live (the first host got its cookie), and rangeio asked the first URL once.
    [asked] = first.requests
    assert "jar=first-host" in asked.headers.get("cookie", "")
    assert len(second.requests) >= 3
    for seen in second.requests:
        assert "cookie" not in seen.headers, seen
        assert "authorization" not in seen.headers


# -- https -> http -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    return make_tls(tmp_path_factory.mktemp("tls"), "127.0.0.1")


@pytest.fixture
def secure(tls: Tls, second: FaultServer) -> Iterator[FaultServer]:
    """An https server whose /down redirects to the plain http ``second``."""
    with FaultServer({DATA: PAYLOAD}, ssl_context=tls.server_context) as s:
        s.set_faults("/down", Faults(redirect_to=second.url(DATA)))
        yield s


@pytest.mark.parametrize("kind", TLS_KINDS)
def test_https_to_http_redirect_is_refused_unless_allowed(
    kind: str, tls: Tls, secure: FaultServer, second: FaultServer
) -> None:
    # A borrowed client following redirects itself would follow this one: the TLSError proves
    # rangeio judged the hop.
    for opener in tls_opener_for(kind, tls.ca_pem):
        with pytest.raises(rangeio.TLSError, match="https to http"):
            opener(secure.url("/down"), retries=5)
        assert second.requests == []
        with opener(secure.url("/down"), allow_https_downgrade=True) as f:
            f.seek(2_500_000)
            assert f.read(100) == PAYLOAD[2_500_000:2_500_100]
    assert [r.path for r in secure.requests] == ["/down", "/down"]
    assert second.requests


@pytest.mark.parametrize("kind", ["urllib3", "httpx", "aiohttp-session", "niquests-async"])
def test_downgrade_on_stream_and_download_faces(
    kind: str, tls: Tls, secure: FaultServer, second: FaultServer, tmp_path: Path
) -> None:
    url = secure.url("/down")
    for opener in tls_opener_for(kind, tls.ca_pem):
        with pytest.raises(rangeio.TLSError, match="https to http"):
            opener.stream_read(url, 0, 100)
        with pytest.raises(rangeio.TLSError, match="https to http"):
            opener.download(url, tmp_path / "refused", retries=5)
        with pytest.raises(rangeio.TLSError, match="https to http"):
            opener.haul(url, tmp_path / "refused")
        assert second.requests == []
        assert opener.stream_read(url, 7, 70_000, allow_https_downgrade=True) == PAYLOAD[7:70_000]
        opener.download(url, tmp_path / "one", allow_https_downgrade=True)
        opener.download(url, tmp_path / "three", connections=3, allow_https_downgrade=True)
        opener.haul(url, tmp_path / "haul", allow_https_downgrade=True)
    for name in ("one", "three", "haul"):
        assert (tmp_path / name).read_bytes() == PAYLOAD
    assert not (tmp_path / "refused").exists()


@pytest.mark.parametrize("kind", TLS_KINDS)
def test_a_cross_origin_https_hop_keeps_the_clients_tls_settings(
    kind: str, tls: Tls, secure: FaultServer, tmp_path: Path
) -> None:
    # A hop sent without the client's credentials still goes through the client's own TLS
    # settings (here: a private CA it trusts), or it would fail where the first origin worked.
    with FaultServer({DATA: PAYLOAD}, ssl_context=tls.server_context) as other:
        secure.set_faults("/moved", Faults(redirect_to=other.url(DATA)))
        for opener in tls_opener_for(kind, tls.ca_pem):
            with opener(secure.url("/moved"), headers=CREDENTIALS, prefetch_bytes=1000) as f:
                f.seek(2_000_000)
                assert f.read(100) == PAYLOAD[2_000_000:2_000_100]
            opener.haul(secure.url("/moved"), tmp_path / kind)
        assert (tmp_path / kind).read_bytes() == PAYLOAD
        assert len(other.requests) >= 3
        for seen in other.requests:
            assert not [name for name in CREDENTIAL_NAMES if name in seen.headers]


# -- presigned targets ---------------------------------------------------------------------------


def _amz(lifetime: int, signed_at: float) -> str:
    stamp = datetime.fromtimestamp(signed_at, tz=timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"X-Amz-Date={stamp}&X-Amz-Expires={lifetime}&X-Amz-Signature=abc"


class _Clock:
    """A runner's clock (`_engine/runner.py` Clock), moved forward at will."""

    def __init__(self) -> None:
        self.offset = 0.0

    def time(self) -> float:
        return time.time() + self.offset

    def monotonic(self) -> float:
        return time.monotonic()

    def on(self, face: Any) -> Any:
        """Hand this clock to ``face``'s runner (the seam: no ``time`` is patched)."""
        inner = getattr(face, "file", face)  # an AsyncFacade wraps the async file
        assert inner._runner is not None, "the face has no runner yet"
        inner._runner.clock = self
        return face


@pytest.fixture
def clock() -> _Clock:
    return _Clock()


@pytest.fixture
def signer(first: FaultServer) -> FaultServer:
    """``/signed`` redirects to ``/v1.bin?Expires=...`` (in 10 minutes); ``/v2.bin`` is the
    fresh target it redirects to once v1 has expired. Same object, so the same validators."""
    first.add_file("/v1.bin", PAYLOAD)
    first.add_file("/v2.bin", PAYLOAD)
    v1 = f"/v1.bin?Expires={int(time.time()) + 600}&Signature=one"
    first.set_faults("/signed", Faults(redirect_to=v1))
    return first


def _expire_v1(server: FaultServer) -> None:
    server.set_faults("/v1.bin", Faults(status=403))
    server.set_faults("/signed", Faults(redirect_to=f"/v2.bin?{_amz(3600, time.time())}"))
    server.clear_log()


def _paths(server: FaultServer) -> list[str]:
    return [r.path for r in server.requests]


@pytest.mark.parametrize("early", [False, True], ids=["expired-by-time", "403-before-expiry"])
def test_expiring_presigned_target_is_refreshed(
    early: bool, signer: FaultServer, opener: Opener, clock: _Clock
) -> None:
    with opener(signer.url("/signed"), prefetch_bytes=1000, headers=TRACE) as f:
        assert _paths(signer) == ["/signed", "/v1.bin"]
        f.seek(1_000_000)
        assert f.read(100) == PAYLOAD[1_000_000:1_000_100]
        assert _paths(signer)[2:] == ["/v1.bin"]  # live: asked directly
        clock.on(f)
        _expire_v1(signer)
        if not early:
            clock.offset = 700.0  # past v1's Expires: it is not even tried
        f.seek(2_000_000)
        assert f.read(100) == PAYLOAD[2_000_000:2_000_100]
        paths = _paths(signer)
        expected = ["/signed", "/v2.bin"] if not early else ["/v1.bin", "/signed", "/v2.bin"]
        assert paths[: len(expected)] == expected
        assert "/v1.bin" not in paths[len(expected) :]
        # The fresh target is remembered: the next read does not go round by /signed again.
        signer.clear_log()
        f.seek(2_800_000)
        assert f.read(100) == PAYLOAD[2_800_000:2_800_100]
        assert set(_paths(signer)) == {"/v2.bin"}


def test_presigned_refresh_on_the_stream_face(signer: FaultServer, clock: _Clock) -> None:
    with clock.on(rangeio.RangeStream(signer.url("/signed"))) as rs:
        rs.add((0, 100))
        assert rs.read() == PAYLOAD[:100]
        _expire_v1(signer)
        rs.add((1_000, 5_000))
        assert rs.read() == PAYLOAD[1_000:5_000]  # 403 from v1, then /signed -> v2
        clock.offset = 700.0
        rs.add((9_000, 9_100))
        assert rs.read() == PAYLOAD[9_000:9_100]
    assert _paths(signer) == ["/v1.bin", "/signed", "/v2.bin", "/v2.bin"]

    async def aio() -> None:
        signer.set_faults(
            "/signed", Faults(redirect_to=f"/v1.bin?Expires={int(time.time()) + 600}")
        )
        signer.set_faults("/v1.bin", None)
        async with rangeio.aio.RangeStream(signer.url("/signed")) as rs:
            _expire_v1(signer)
            await rs.add((50, 60))
            assert await rs.read() == PAYLOAD[50:60]

    asyncio.run(aio())
    assert _paths(signer) == ["/v1.bin", "/signed", "/v2.bin"]


@contextlib.contextmanager
def _expire_v1_once_asked(server: FaultServer) -> Iterator[None]:
    """Expire v1 (see _expire_v1) as soon as a request for it arrives, while its (slow, cut)
    body is still on its way: the resume then meets a 403."""
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            if "/v1.bin" in _paths(server):
                server.set_faults("/v1.bin", Faults(status=403))
                server.set_faults("/signed", Faults(redirect_to="/v2.bin"))
                return
            stop.wait(0.001)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()


# 300 kB at 1 MB/s: the body is cut 0.3 s after the request, long after v1 has expired.
_SLOW_CUT = Faults(throttle=1_000_000, truncate_after=300_000)


def test_target_expiring_mid_body_is_refreshed(signer: FaultServer, opener: Opener) -> None:
    # The opening exchange itself is long: the first URL, then v1, cut; v1 has expired by the
    # resume, so the first URL is asked again and v2 serves the rest.
    signer.set_faults("/v1.bin", _SLOW_CUT)
    with (
        _expire_v1_once_asked(signer),
        opener(signer.url("/signed"), prefetch_bytes=2_000_000) as f,
    ):
        f.seek(1_000_000)
        assert f.read(2_000_000) == PAYLOAD[1_000_000:]
    assert _paths(signer)[:5] == ["/signed", "/v1.bin", "/v1.bin", "/signed", "/v2.bin"]
    resume = signer.requests[4]
    assert resume.range == "bytes=1300000-2999999" and "if-match" in resume.headers


def test_target_expiring_mid_body_on_the_stream_face(signer: FaultServer, clock: _Clock) -> None:
    with clock.on(rangeio.RangeStream(signer.url("/signed"))) as rs:
        signer.set_faults("/v1.bin", _SLOW_CUT)
        signer.clear_log()
        clock.offset = 700.0  # v1 expired by the clock: the range starts at the first URL
        with _expire_v1_once_asked(signer):
            rs.add((0, 1_000_000))
            assert rs.read() == PAYLOAD[:1_000_000]
    assert _paths(signer) == ["/signed", "/v1.bin", "/v1.bin", "/signed", "/v2.bin"]


@pytest.mark.parametrize("kind", ["urllib3", "requests", "aiohttp", "httpx-async"])
def test_presigned_refresh_on_the_download_face(
    kind: str, signer: FaultServer, tmp_path: Path
) -> None:
    dest = tmp_path / "out.bin"
    # The first transfer is cut; by the time it resumes, v1 has expired (403).
    signer.set_faults("/v1.bin", Faults(truncate_after=1_000_000))
    for opener in tls_opener_for(kind, None):
        with pytest.raises(rangeio.PartialDownloadError) as cut:
            opener.haul(signer.url("/signed"), dest)
        assert cut.value.bytes_done > 0
        _expire_v1(signer)
        opener.download(signer.url("/signed"), dest)
    assert dest.read_bytes() == PAYLOAD
    # The resume started again at the URL the user gave, and got the fresh target.
    assert _paths(signer)[:2] == ["/signed", "/v2.bin"]
    assert signer.requests[1].range is not None


@pytest.mark.parametrize("connections", [1, 2])
@pytest.mark.parametrize("kind", ["urllib3", "requests", "aiohttp", "httpx-async"])
def test_target_expiring_mid_download_is_refreshed(
    kind: str, connections: int, signer: FaultServer, tmp_path: Path
) -> None:
    """One download() call: its presigned target (X-Amz-Expires) is cut mid-body and answers
    403 by the resume; the download falls back to the URL the user gave, gets a fresh target
    and completes there, with If-Range, without starting over (what reads did before)."""
    v1 = f"/v1.bin?{_amz(3600, time.time())}"
    signer.set_faults("/signed", Faults(redirect_to=v1))
    signer.set_faults("/v1.bin", _SLOW_CUT)
    signer.clear_log()
    dest = tmp_path / f"{kind}-{connections}.bin"
    for opener in tls_opener_for(kind, None):
        with _expire_v1_once_asked(signer):
            result = opener.download(signer.url("/signed"), dest, connections=connections)
    assert dest.read_bytes() == PAYLOAD
    # The cut body is resumed at the target that served it (v1), whose 403 sends the same
    # exchange back to the URL the user gave once, which points to v2: the rest comes from
    # there, resumed where the cut left it (300 kB), not from byte 0.
    assert _paths(signer) == ["/signed", "/v1.bin", "/v1.bin", "/signed", "/v2.bin"]
    resumes = signer.requests[2:]
    assert all(r.range is not None and r.range.startswith("bytes=300000-") for r in resumes)
    assert "if-range" in resumes[0].headers and "if-range" in resumes[2].headers
    assert result.bytes_transferred == len(PAYLOAD)  # nothing fetched twice, nothing dropped
