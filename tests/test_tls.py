"""TLS is verified by default: a self-signed (trustme) server is refused with TLSError through every
adapter and face, and accepted once its CA is trusted (``verify=`` or the borrowed client's own)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import rangeio
import rangeio.aio
from rangeio.testing import Faults, FaultServer
from tests.conftest import make_bytes
from tests.tls import OWNED_KINDS, TLS_KINDS, Tls, make_tls, tls_opener_for

DATA = "/data.bin"
# Bigger than the 1 MiB prefetch, so a read after the open is a second request.
PAYLOAD = make_bytes(1_500_000, seed=7)


@pytest.fixture(autouse=True)
def _no_env_ca_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    # requests and niquests let these variables override a session's own `verify`
    # (psf/requests#3829): a session configured with our CA would then not trust it.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    return make_tls(tmp_path_factory.mktemp("tls"), "127.0.0.1")


@pytest.fixture
def server(tls: Tls) -> Iterator[FaultServer]:
    with FaultServer({DATA: PAYLOAD}, ssl_context=tls.server_context) as s:
        yield s


def test_server_speaks_https(server: FaultServer, tls: Tls) -> None:
    import urllib3

    assert server.url(DATA).startswith("https://127.0.0.1:")
    with urllib3.PoolManager(ca_certs=tls.ca_pem) as pool:
        answer = pool.request("GET", server.url(DATA), headers={"Range": "bytes=0-9"})
    assert answer.status == 206 and answer.data == PAYLOAD[:10]


# -- the file face, every adapter --------------------------------------------------------------


@pytest.mark.parametrize("kind", TLS_KINDS)
def test_untrusted_certificate_is_refused_by_default(
    kind: str, server: FaultServer, tls: Tls
) -> None:
    for opener in tls_opener_for(kind, None):
        with pytest.raises(rangeio.TLSError, match="(?i)certificate"):
            opener(server.url(DATA), retries=5)
    # Never retried: one refused handshake, and no request ever reached the server.
    assert server.connections == 1
    assert server.requests == []


@pytest.mark.parametrize("kind", TLS_KINDS)
def test_trusted_ca_is_accepted(kind: str, server: FaultServer, tls: Tls) -> None:
    for opener in tls_opener_for(kind, tls.ca_pem):
        with opener(server.url(DATA)) as f:
            assert f.size == len(PAYLOAD)
            f.seek(1_200_000)
            assert f.read(1000) == PAYLOAD[1_200_000:1_201_000]
            assert f.read_ranges([(5, 10), (1_400_000, 1_400_010)]) == [
                PAYLOAD[5:10],
                PAYLOAD[1_400_000:1_400_010],
            ]
    assert len(server.requests) >= 2


@pytest.mark.parametrize("kind", TLS_KINDS)
@pytest.mark.parametrize("cut", ["truncate_after", "reset_after"])
def test_cut_tls_body_is_resumed_not_refused(
    kind: str, cut: str, server: FaultServer, tls: Tls
) -> None:
    """A TLS stream that ends early (no close_notify) is a cut connection, resumed like any
    other; only certificate and handshake failures are TLSError."""
    for opener in tls_opener_for(kind, tls.ca_pem):
        with opener(server.url(DATA), prefetch_bytes=0) as f:
            switch: dict[str, Any] = {cut: 300_000}
            server.set_faults(DATA, Faults(times=1, **switch))
            f.seek(100)
            assert f.read(1_000_000) == PAYLOAD[100:1_000_100]
    assert len(server.requests) >= 3  # the open, the cut read, its resume


def test_certificate_for_another_host_is_refused(tmp_path: Path) -> None:
    other = make_tls(tmp_path, "example.org")
    with (
        FaultServer({DATA: PAYLOAD}, ssl_context=other.server_context) as s,
        pytest.raises(rangeio.TLSError),
    ):
        rangeio.open(s.url(DATA), verify=other.ca_pem)


def test_verify_accepts_a_context_a_path_object_and_false(server: FaultServer, tls: Tls) -> None:
    for verify in (tls.client_context(), Path(tls.ca_pem)):
        with rangeio.open(server.url(DATA), verify=verify) as f:
            assert f.read(10) == PAYLOAD[:10]
    # urllib3 warns about an unverified request, as it should.
    with (
        pytest.warns(Warning, match="(?i)unverified"),
        rangeio.open(server.url(DATA), verify=False) as f,
    ):
        assert f.read(10) == PAYLOAD[:10]

    async def unverified() -> bytes:
        async with rangeio.aio.open(server.url(DATA), verify=False) as f:
            return await f.read(10)

    assert asyncio.run(unverified()) == PAYLOAD[:10]


def test_bad_verify_values_are_typed_errors(server: FaultServer, tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="verify"):
        rangeio.open(server.url(DATA), verify=3)
    with pytest.raises(rangeio.TLSError, match="CA bundle"):
        rangeio.open(server.url(DATA), verify=str(tmp_path / "missing.pem"))
    with pytest.raises(TypeError, match="verify"):
        rangeio.download(server.url(DATA), tmp_path / "out", verify=1.5)


@pytest.mark.parametrize("kind", [k for k in TLS_KINDS if k not in OWNED_KINDS])
def test_borrowed_client_with_verify_is_a_type_error(
    kind: str, server: FaultServer, tls: Tls, tmp_path: Path
) -> None:
    for opener in tls_opener_for(kind, tls.ca_pem):
        with pytest.raises(TypeError, match="configure TLS on your client"):
            opener(server.url(DATA), verify=tls.ca_pem)
        with pytest.raises(TypeError, match="configure TLS on your client"):
            opener.download(server.url(DATA), tmp_path / "out", verify=False)
    assert server.requests == []


# -- the stream and download faces --------------------------------------------------------------


@pytest.mark.parametrize("kind", ["urllib3", "requests", "aiohttp", "httpx-async"])
def test_stream_face(kind: str, server: FaultServer, tls: Tls) -> None:
    for opener in tls_opener_for(kind, None):
        with pytest.raises(rangeio.TLSError):
            opener.stream_read(server.url(DATA), 100, 200)
    for opener in tls_opener_for(kind, tls.ca_pem):
        assert opener.stream_read(server.url(DATA), 100, 200_000) == PAYLOAD[100:200_000]


@pytest.mark.parametrize("kind", ["urllib3", "niquests", "aiohttp", "niquests-async"])
@pytest.mark.parametrize("connections", [1, 3])
def test_download_face(
    kind: str, connections: int, server: FaultServer, tls: Tls, tmp_path: Path
) -> None:
    dest = tmp_path / "out.bin"
    for opener in tls_opener_for(kind, None):
        # Not a PartialDownloadError to retry: the certificate will not become trusted.
        with pytest.raises(rangeio.TLSError):
            opener.download(server.url(DATA), dest, connections=connections, retries=5)
    assert server.connections == 1
    assert not dest.exists()
    for opener in tls_opener_for(kind, tls.ca_pem):
        result = opener.download(server.url(DATA), dest, connections=connections)
    assert dest.read_bytes() == PAYLOAD and result.size == len(PAYLOAD)


@pytest.mark.parametrize("kind", ["urllib3", "aiohttp"])
def test_haul_face(kind: str, server: FaultServer, tls: Tls, tmp_path: Path) -> None:
    dest = tmp_path / "out.bin"
    for opener in tls_opener_for(kind, None):
        with pytest.raises(rangeio.TLSError):
            opener.haul(server.url(DATA), dest)
    for opener in tls_opener_for(kind, tls.ca_pem):
        opener.haul(server.url(DATA), dest)
    assert dest.read_bytes() == PAYLOAD


def test_fetch_many(server: FaultServer, tls: Tls) -> None:
    async def run(**options: Any) -> list[Any]:
        async def plan(f: rangeio.aio.AsyncHttpFile) -> bytes:
            return await f.read(10)

        return [r async for r in rangeio.aio.fetch_many([server.url(DATA)], plan, **options)]

    [refused] = asyncio.run(run())
    assert isinstance(refused.error, rangeio.TLSError)
    [accepted] = asyncio.run(run(verify=tls.ca_pem))
    assert accepted.error is None and accepted.value == PAYLOAD[:10]


def test_fsspec(server: FaultServer, tls: Tls) -> None:
    fsspec = pytest.importorskip("fsspec")
    refusing = fsspec.filesystem("rangeio", skip_instance_cache=True)
    with pytest.raises(rangeio.TLSError):
        refusing.open(server.url(DATA))
    trusting = fsspec.filesystem("rangeio", verify=tls.ca_pem, skip_instance_cache=True)
    with trusting.open(server.url(DATA)) as f:
        assert f.read(10) == PAYLOAD[:10]


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "rangeio", *args],
        capture_output=True,
        timeout=60,
        check=False,
        cwd=cwd,
    )


def test_cli(server: FaultServer, tls: Tls) -> None:
    url = server.url(DATA)
    refused = _cli("cat", "-r", "0-9", url)
    assert refused.returncode == 60, refused.stderr
    assert b"certificate" in refused.stderr.lower()
    trusted = _cli("cat", "-r", "0-9", "--cacert", tls.ca_pem, url)
    assert trusted.returncode == 0, trusted.stderr
    assert trusted.stdout == PAYLOAD[:10]
    insecure = _cli("cat", "-r", "10-19", "-k", url)
    assert insecure.returncode == 0, insecure.stderr
    assert insecure.stdout == PAYLOAD[10:20]
    assert b"Warning" not in insecure.stderr


def test_cli_get_and_info(server: FaultServer, tls: Tls, tmp_path: Path) -> None:
    # Without -o, get first probes the name (rangeio.probe, over TLS), then downloads.
    url = server.url(DATA)
    got = _cli("get", url, "-q", "--cacert", tls.ca_pem, cwd=tmp_path)
    assert got.returncode == 0, got.stderr
    assert (tmp_path / "data.bin").read_bytes() == PAYLOAD
    info = _cli("info", url, "--json", "--cacert", tls.ca_pem)
    assert info.returncode == 0, info.stderr
    assert b'"size": 1500000' in info.stdout


def test_tls_error_is_a_network_error() -> None:
    assert issubclass(rangeio.TLSError, rangeio.NetworkError)
    assert rangeio.TLSError.__name__ in rangeio.__all__
