"""TLS test kit: a trustme CA and server certificate, and every adapter's client trusting it or not."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rangeio
import rangeio.aio
from tests.adapters import ALL_ADAPTERS, ASYNC_ADAPTERS, Opener

# Every adapter, plus aiohttp with a session the user passes (ALL_ADAPTERS' "aiohttp" is
# rangeio's own session).
TLS_KINDS = [*ALL_ADAPTERS, "aiohttp-session"]
# The kinds whose client rangeio creates: TLS is configured through ``verify``.
OWNED_KINDS = ("urllib3", "aiohttp")


@dataclass
class Tls:
    """A private CA (``ca_pem``: its certificate as a PEM file) and a server context whose
    certificate, issued by that CA, is valid for ``hosts``."""

    ca: Any
    ca_pem: str
    server_context: ssl.SSLContext

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_pem)


def make_tls(directory: Path, *hosts: str) -> Tls:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert(*(hosts or ("127.0.0.1",)))
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_context)
    pem = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    return Tls(ca, str(pem), server_context)


class TlsOpener(Opener):
    """An Opener whose client trusts ``ca_pem`` (None: the client's defaults). For the kinds
    rangeio owns, trust is passed as ``verify``; borrowed clients are configured themselves.
    Every borrowed client is one that follows redirects on its own unless told not to
    (httpx is configured so), so a test sees it if rangeio ever lets one do that."""

    def __init__(self, kind: str, ca_pem: str | None) -> None:
        self.kind = kind
        self.is_async = kind in ASYNC_ADAPTERS or kind == "aiohttp-session"
        self._closers = []
        self._loop = None
        self.client = None
        self.ca_pem = ca_pem
        self.options: dict[str, Any] = {}
        if kind in OWNED_KINDS and ca_pem is not None:
            self.options["verify"] = ca_pem
        if self.is_async:
            import asyncio

            self._loop = asyncio.new_event_loop()
            self.client = self._loop.run_until_complete(self._make_async_client())
        else:
            self.client = self._make_sync_client()

    def _context(self) -> ssl.SSLContext | None:
        return ssl.create_default_context(cafile=self.ca_pem) if self.ca_pem else None

    def _make_sync_client(self) -> Any:
        if self.kind == "urllib3":
            return None
        if self.kind == "requests":
            import requests

            session = requests.Session()
            if self.ca_pem:
                session.verify = self.ca_pem
            self._closers.append(session.close)
            return session
        if self.kind == "httpx":
            import httpx

            client = httpx.Client(verify=self._context() or True, follow_redirects=True)
            self._closers.append(client.close)
            return client
        import niquests

        nsession = niquests.Session()
        if self.ca_pem:
            nsession.verify = self.ca_pem
        self._closers.append(nsession.close)
        return nsession

    async def _make_async_client(self) -> Any:
        if self.kind == "aiohttp":
            return None
        if self.kind == "aiohttp-session":
            import aiohttp

            context = self._context()
            connector = aiohttp.TCPConnector(ssl=context if context is not None else True)
            # unsafe=True: a jar that keeps cookies for IP hosts, so tests can put one there.
            jar = aiohttp.CookieJar(unsafe=True)
            session = aiohttp.ClientSession(connector=connector, cookie_jar=jar)
            self._closers.append(lambda: self._run(session.close()))
            return session
        if self.kind == "httpx-async":
            import httpx

            client = httpx.AsyncClient(verify=self._context() or True, follow_redirects=True)
            self._closers.append(lambda: self._run(client.aclose()))
            return client
        import niquests

        asession = niquests.AsyncSession()
        if self.ca_pem:
            asession.verify = self.ca_pem
        self._closers.append(lambda: self._run(asession.close()))
        return asession

    def __call__(self, url: str, **options: Any) -> Any:
        return super().__call__(url, **{**self.options, **options})

    def download(self, url: str, dest: Any, **options: Any) -> Any:
        return super().download(url, dest, **{**self.options, **options})

    def haul(self, url: str, dest: Any, **options: Any) -> Any:
        return super().haul(url, dest, **{**self.options, **options})

    def stream_read(self, url: str, start: int, stop: int, **options: Any) -> bytes:
        """The bytes ``[start, stop)`` read through a RangeStream (sync or async)."""
        options = {**self.options, **options}
        if not self.is_async:
            with rangeio.RangeStream(url, self.client, (start, stop), **options) as rs:
                return rs.read()

        async def read() -> bytes:
            async with rangeio.aio.RangeStream(url, self.client, (start, stop), **options) as rs:
                return await rs.read()

        return self._run(read())  # type: ignore[no-any-return]


def tls_opener_for(kind: str, ca_pem: str | None) -> Iterator[TlsOpener]:
    opener = TlsOpener(kind, ca_pem)
    try:
        yield opener
    finally:
        opener.close()
