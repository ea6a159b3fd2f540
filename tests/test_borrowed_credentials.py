"""A borrowed client's own credentials (its default headers, auth, cookie jar) never follow a
redirect to another origin, on every face (file, read_ranges, RangeStream, download, haul,
fsspec) and every client kind; on the client's own origin they still go with every request.

The client here adds them itself: none of them is in rangeio's ``headers=``, so what reaches the
target is only what the adapter let the client add.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

import rangeio
import rangeio.aio
from rangeio.testing import Faults, FaultServer
from tests.conftest import make_bytes
from tests.raw_server import RawConnection, RawRequest, RawServer, response_head, serve_range

DATA = "/data.bin"
PAYLOAD = make_bytes(300_000, seed=29)
API_KEY = "X-Api-Key"  # a credential no rule knows by name: only an origin check keeps it home
CLIENT_HEADERS = {API_KEY: "client-key", "Proxy-Authorization": "Basic cHJveHk6cHc="}
USER, PASSWORD = "user", "pw"
BASIC = "Basic dXNlcjpwdw=="  # USER:PASSWORD
JAR = "jar=client-cookie"
# What the client adds, by lower-cased header name, and how the first origin must see it.
EXPECTED = {
    API_KEY.lower(): "client-key",
    "proxy-authorization": "Basic cHJveHk6cHc=",
    "authorization": BASIC,
    "cookie": JAR,
}
SYNC_KINDS = ["requests", "httpx", "niquests"]
ASYNC_KINDS = ["aiohttp", "httpx-async", "niquests-async"]


@pytest.fixture(autouse=True)
def _no_env_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # No ~/.netrc or proxy of the machine may add (or hide) anything; a test may write NETRC.
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def first() -> Iterator[FaultServer]:
    with FaultServer({DATA: PAYLOAD}) as s:
        yield s


@pytest.fixture
def second() -> Iterator[FaultServer]:
    """Another origin: the same host on another port (RFC 6454 §4: the port is part of it),
    the case a host-scoped cookie jar alone would not keep apart."""
    with FaultServer({DATA: PAYLOAD}) as s:
        yield s


def _sync_client(kind: str, origin: str, proxy: str | None = None) -> Any:
    """A client of ``kind`` configured with every credential, its cookie for ``origin``'s host,
    and ``proxy`` as its own proxy if given."""
    host = urlsplit(origin).hostname
    if kind == "httpx":
        import httpx

        # follow_redirects=True: if rangeio ever let the client follow, the test would see it.
        client = httpx.Client(
            headers=CLIENT_HEADERS, auth=(USER, PASSWORD), follow_redirects=True, proxy=proxy
        )
        client.cookies.set("jar", "client-cookie", domain=host, path="/")
        return client
    if kind == "requests":
        import requests

        session: Any = requests.Session()
    else:
        import niquests

        session = niquests.Session()
    if proxy is not None:
        session.proxies = {"http": proxy}
    session.headers.update(CLIENT_HEADERS)
    session.auth = (USER, PASSWORD)
    session.cookies.set("jar", "client-cookie", domain=host, path="/")
    return session


async def _async_client(kind: str, origin: str, proxy: str | None = None) -> Any:
    host = urlsplit(origin).hostname
    if kind == "aiohttp":
        import warnings

        import aiohttp
        from yarl import URL

        # unsafe=True: a jar that keeps cookies for IP hosts, so the test can put one there.
        jar = aiohttp.CookieJar(unsafe=True)
        jar.update_cookies({"jar": "client-cookie"}, URL(origin + "/"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # auth= is deprecated in 3.14
            return aiohttp.ClientSession(
                headers=CLIENT_HEADERS,
                auth=aiohttp.BasicAuth(USER, PASSWORD),
                cookie_jar=jar,
                proxy=proxy,
                trust_env=True,  # like the other clients: proxies (and netrc) from the environment
            )
    if kind == "httpx-async":
        import httpx

        client = httpx.AsyncClient(
            headers=CLIENT_HEADERS, auth=(USER, PASSWORD), follow_redirects=True, proxy=proxy
        )
        client.cookies.set("jar", "client-cookie", domain=host, path="/")
        return client
    import niquests

    session = niquests.AsyncSession(headers=CLIENT_HEADERS, auth=(USER, PASSWORD))
    if proxy is not None:
        session.proxies = {"http": proxy}
    session.cookies.set("jar", "client-cookie", domain=host, path="/")
    return session


def _close(client: Any) -> None:
    client.close()


async def _aclose(client: Any) -> None:
    if hasattr(client, "aclose"):
        await client.aclose()
    else:
        await client.close()


# -- the faces: each reads the whole payload through ``client`` and returns it -----------------


def _file(client: Any, url: str, tmp: Path) -> bytes:
    with rangeio.open(url, client=client, prefetch_bytes=1000) as f:
        f.seek(200_000)
        tail = f.read()
        head = f.read_ranges([(0, 100_000), (100_000, 200_000)])
    return b"".join(head) + tail


def _stream(client: Any, url: str, tmp: Path) -> bytes:
    with rangeio.RangeStream(url, client, (0, 150_000)) as rs:
        head = rs.read()
        rs.add((150_000, len(PAYLOAD)))
        return head + rs.read()


def _download(client: Any, url: str, tmp: Path) -> bytes:
    rangeio.download(url, tmp / "d", client=client, connections=3)
    return (tmp / "d").read_bytes()


def _haul(client: Any, url: str, tmp: Path) -> bytes:
    rangeio.haul(url, tmp / "h", client=client)
    return (tmp / "h").read_bytes()


def _fsspec(client: Any, url: str, tmp: Path) -> bytes:
    from rangeio.fsspec import RangeioFileSystem

    fs = RangeioFileSystem(client=client, prefetch_bytes=1000)
    head, tail = fs.cat_ranges([url, url], [0, 1000], [1000, len(PAYLOAD)])
    return bytes(head) + bytes(tail)


async def _afile(client: Any, url: str, tmp: Path) -> bytes:
    async with rangeio.aio.open(url, client=client, prefetch_bytes=1000) as f:
        f.seek(200_000)
        tail = await f.read()
        head = await f.read_ranges([(0, 100_000), (100_000, 200_000)])
    return b"".join(head) + tail


async def _astream(client: Any, url: str, tmp: Path) -> bytes:
    async with rangeio.aio.RangeStream(url, client, (0, 150_000)) as rs:
        head = await rs.read()
        await rs.add((150_000, len(PAYLOAD)))
        return head + await rs.read()


async def _adownload(client: Any, url: str, tmp: Path) -> bytes:
    await rangeio.aio.download(url, tmp / "d", client=client, connections=3)
    return (tmp / "d").read_bytes()


async def _ahaul(client: Any, url: str, tmp: Path) -> bytes:
    await rangeio.aio.haul(url, tmp / "h", client=client)
    return (tmp / "h").read_bytes()


SyncFace = Callable[[Any, str, Path], bytes]
AsyncFace = Callable[[Any, str, Path], Awaitable[bytes]]
SYNC_FACES: dict[str, SyncFace] = {
    "open": _file,
    "stream": _stream,
    "download": _download,
    "haul": _haul,
    "fsspec": _fsspec,
}
ASYNC_FACES: dict[str, AsyncFace] = {
    "open": _afile,
    "stream": _astream,
    "download": _adownload,
    "haul": _ahaul,
}
CASES = [(k, f) for k in SYNC_KINDS for f in SYNC_FACES] + [
    (k, f) for k in ASYNC_KINDS for f in ASYNC_FACES
]


def _through(
    kind: str, face: str, url: str, origin: str, tmp: Path, proxy: str | None = None
) -> bytes:
    """Run ``face`` on ``url`` twice with one fresh client of ``kind`` holding credentials for
    ``origin``: the second run proves rangeio left the borrowed client working (the aiohttp
    adapter shares the session's connector with a session of its own, closed with it)."""
    runs = [tmp / "1", tmp / "2"]
    for run_dir in runs:
        run_dir.mkdir()
    if kind in SYNC_KINDS:
        client = _sync_client(kind, origin, proxy)
        try:
            results = [SYNC_FACES[face](client, url, d) for d in runs]
        finally:
            _close(client)
    else:

        async def run() -> list[bytes]:
            client = await _async_client(kind, origin, proxy)
            try:
                return [await ASYNC_FACES[face](client, url, d) for d in runs]
            finally:
                await _aclose(client)

        results = asyncio.run(run())
    assert results[0] == results[1]
    return results[0]


def _assert_credentials(seen: Any) -> None:
    for name, value in EXPECTED.items():
        assert seen.headers.get(name) == value, f"{name} missing from {seen}"


@pytest.mark.parametrize(("kind", "face"), CASES)
def test_borrowed_client_credentials_never_reach_another_origin(
    kind: str, face: str, first: FaultServer, second: FaultServer, tmp_path: Path
) -> None:
    first.set_faults("/moved", Faults(redirect_to=second.url(DATA)))
    assert _through(kind, face, first.url("/moved"), first.origin, tmp_path) == PAYLOAD
    # The first origin got the client's credentials: they were live, and stayed home.
    assert first.requests and {r.path for r in first.requests} == {"/moved"}
    for seen in first.requests:
        _assert_credentials(seen)
    assert second.requests, "the redirect target was never asked"
    for seen in second.requests:
        leaked = [name for name in EXPECTED if name in seen.headers]
        assert not leaked, f"{leaked} reached {second.origin} in {seen}"


@pytest.mark.parametrize(("kind", "face"), CASES)
def test_borrowed_client_credentials_follow_a_same_origin_redirect(
    kind: str, face: str, first: FaultServer, tmp_path: Path
) -> None:
    first.set_faults("/alias", Faults(redirect_to=DATA))  # relative: the same origin
    assert _through(kind, face, first.url("/alias"), first.origin, tmp_path) == PAYLOAD
    assert DATA in {r.path for r in first.requests}
    for seen in first.requests:
        _assert_credentials(seen)


NETRC_KINDS = ["requests", "niquests", "aiohttp", "niquests-async"]


async def _plain_async_client(kind: str) -> Any:
    if kind == "aiohttp":
        import aiohttp

        return aiohttp.ClientSession(trust_env=True)  # trust_env: aiohttp reads ~/.netrc
    import niquests

    return niquests.AsyncSession()


@pytest.mark.parametrize("face", ["open", "haul"])
@pytest.mark.parametrize("kind", NETRC_KINDS)
def test_netrc_credentials_stay_with_their_origin(
    kind: str, face: str, first: FaultServer, second: FaultServer, tmp_path: Path
) -> None:
    # A netrc entry names a host, not a port: the client would send it to the same host on
    # another port, which is another origin.
    netrc = tmp_path / "netrc"  # where the autouse fixture points NETRC
    netrc.write_text(f"machine 127.0.0.1 login {USER} password {PASSWORD}\n")
    netrc.chmod(0o600)
    first.set_faults("/moved", Faults(redirect_to=second.url(DATA)))
    url = first.url("/moved")
    if kind in SYNC_KINDS:
        import niquests
        import requests

        client = requests.Session() if kind == "requests" else niquests.Session()
        with client:
            assert SYNC_FACES[face](client, url, tmp_path) == PAYLOAD
    else:

        async def run() -> bytes:
            client = await _plain_async_client(kind)
            try:
                return await ASYNC_FACES[face](client, url, tmp_path)
            finally:
                await client.close()

        assert asyncio.run(run()) == PAYLOAD
    assert [r.headers.get("authorization") for r in first.requests] == [BASIC]
    assert second.requests
    assert not [r for r in second.requests if "authorization" in r.headers]


# Hosts that exist only behind the proxy: a request reaches them through it, or not at all.
ORIGIN_A, ORIGIN_B = "http://origin-a.test", "http://origin-b.test"


def _forward_proxy(conn: RawConnection, request: RawRequest) -> None:
    """A forward proxy in front of both hosts: ``ORIGIN_A/moved`` redirects to ``ORIGIN_B``,
    anything else is the payload."""
    if request.target == ORIGIN_A + "/moved":
        conn.send(response_head(302, {"Location": ORIGIN_B + DATA, "Content-Length": "0"}))
    else:
        conn.send(serve_range(PAYLOAD, request))


# niquests caches the environment's proxies for the whole process: only its own setting is tried.
PROXY_CASES = [(k, "client") for k in SYNC_KINDS + ASYNC_KINDS] + [
    (k, "environment") for k in ("requests", "httpx", "aiohttp", "httpx-async")
]


@pytest.mark.parametrize("face", ["open", "haul"])
@pytest.mark.parametrize(("kind", "configured"), PROXY_CASES)
def test_a_hop_without_credentials_still_goes_through_the_clients_proxy(
    kind: str, configured: str, face: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with RawServer(_forward_proxy, keep_alive=True) as proxy:
        address = f"http://127.0.0.1:{proxy.port}"
        if configured == "environment":
            monkeypatch.setenv("HTTP_PROXY", address)
        own = address if configured == "client" else None
        assert _through(kind, face, ORIGIN_A + "/moved", ORIGIN_A, tmp_path, own) == PAYLOAD
    to_a = [r for r in proxy.requests if r.target.startswith(ORIGIN_A + "/")]
    to_b = [r for r in proxy.requests if r.target.startswith(ORIGIN_B + "/")]
    assert len(to_a) + len(to_b) == len(proxy.requests)
    assert to_a and to_b
    for seen in to_a:
        _assert_credentials(seen)
    for seen in to_b:
        leaked = [name for name in EXPECTED if name in seen.headers]
        assert not leaked, f"{leaked} reached {ORIGIN_B} in {seen}"
