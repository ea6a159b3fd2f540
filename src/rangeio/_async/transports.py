"""Async transport adapters (aiohttp, httpx.AsyncClient, niquests.AsyncSession), raw bytes only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Protocol, runtime_checkable

from rangeio._core.exchange import Request
from rangeio._core.headers import fold_headers
from rangeio._core.options import Timeout, check_borrowed_tls
from rangeio._transport.base import (
    is_instance_of,
    network_error,
    session_call,
    tls_context,
)
from rangeio.errors import NetworkError


class AsyncRawResponse(Protocol):
    status: int
    headers: dict[str, str]  # folded: lower-case names, repeated fields joined

    def iter_raw(self) -> AsyncIterator[bytes]:
        """The body exactly as sent; failures surface as NetworkError (cause chained)."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class AsyncTransport(Protocol):
    async def send(self, request: Request, timeout: Timeout) -> AsyncRawResponse:
        """As the sync Transport.send: never follows redirects nor decodes, and sends a request
        with ``credentials=False`` without anything the client adds by itself."""
        ...

    async def aclose(self) -> None: ...


# -- aiohttp ---------------------------------------------------------------------------------


class AiohttpResponse:
    def __init__(self, response: Any, url: str) -> None:
        self._response = response
        self._url = url
        self.status: int = response.status
        self.headers = fold_headers(response.headers.items())
        self._finished = False

    async def iter_raw(self) -> AsyncIterator[bytes]:
        import aiohttp

        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except aiohttp.ClientPayloadError as exc:
            # aiohttp raises for a short body before handing over what it had buffered; those
            # bytes are valid, and a resume should not fetch them again.
            for chunk in _drain_buffered(self._response.content):
                yield chunk
            raise network_error(exc, self._url, timed_out=False, reading=True) from exc
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            timed_out = isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError))
            raise network_error(exc, self._url, timed_out=timed_out, reading=True) from exc
        self._finished = True

    async def aclose(self) -> None:
        if self._finished:
            self._response.release()
        else:
            # An unread body would poison the connection for the next request: drop it.
            self._response.close()


def _drain_buffered(content: Any) -> list[bytes]:
    """Bytes an aiohttp StreamReader holds but will no longer return (its buffer is private,
    hence the defensive access: with another layout nothing is recovered, which is safe)."""
    buffer = getattr(content, "_buffer", None)
    chunks: list[bytes] = []
    while buffer:
        try:
            chunks.append(bytes(buffer.popleft()))
        except (AttributeError, IndexError, TypeError):
            break
    return chunks


class AiohttpTransport:
    """Over an aiohttp.ClientSession; rangeio creates (and owns) one when none is given.
    Every request passes auto_decompress=False, so stored-gzip objects stay bytes."""

    def __init__(self, session: Any = None, *, verify: Any = True) -> None:
        self.owned = session is None
        self._session = session
        # Sends the requests without credentials; made on the first one (see _bare_session).
        self._bare: Any = None
        # Resolved now, so that a CA bundle that cannot be loaded fails at once.
        self._tls = tls_context(verify) if session is None else True

    async def send(self, request: Request, timeout: Timeout) -> AiohttpResponse:
        import aiohttp

        if self._session is None:
            # The connector needs a running loop, hence created on the first request.
            connector = aiohttp.TCPConnector(ssl=self._tls)
            self._session = aiohttp.ClientSession(connector=connector)
        session, proxy = self._session, {}
        if not request.credentials:
            session, proxy = self._bare_session(), await _bare_proxy(self._session, request)
        client_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=timeout.connect, sock_read=timeout.read
        )
        try:
            response = await session.request(
                request.method,
                request.url,
                headers=request.headers,
                allow_redirects=False,
                auto_decompress=False,
                timeout=client_timeout,
                **proxy,
            )
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            timed_out = isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError))
            raise network_error(exc, request.url, timed_out=timed_out) from exc
        return AiohttpResponse(response, request.url)

    def _bare_session(self) -> Any:
        """A session without credentials on the same connection pool: a ClientSession adds
        its default headers, default auth, middlewares, cookie jar and (with trust_env) netrc
        to every request, and no request argument turns that off. Only the connector is
        shared, and it stays the borrowed session's (connector_owner=False)."""
        import aiohttp

        if self._session.closed:
            # As aiohttp says for the session itself; a bare session on no connector would
            # make a pool of its own that nobody closes.
            raise RuntimeError("Session is closed")
        if self._bare is None or self._bare.closed:
            self._bare = aiohttp.ClientSession(
                connector=self._session.connector,
                connector_owner=False,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._bare

    async def aclose(self) -> None:
        if self._bare is not None:
            await self._bare.close()  # leaves the shared connector open
            self._bare = None
        if self.owned and self._session is not None:
            await self._session.close()

    def abandon(self) -> None:
        """Close the connections of a session rangeio owns at once, without its event loop: for
        a loop that has stopped or closed, where ``aclose`` can no longer run. aiohttp has no
        public synchronous close; the connector's ``_close()`` is the step its ``close()``
        takes before awaiting the sockets' ends (fsspec's http filesystem calls it for the same
        case). Without it the session warns "Unclosed client session" when collected. The
        bare session needs nothing: it is closed once its (shared) connector is."""
        if not self.owned or self._session is None:
            return
        close_now = getattr(self._session.connector, "_close", None)
        if close_now is not None:
            close_now()


async def _bare_proxy(session: Any, request: Request) -> dict[str, Any]:
    """The proxy a request without credentials goes through: the borrowed session's own, or
    (trust_env) the environment's, as the session itself would pick. Proxy credentials are for
    the proxy, never the origin."""
    proxy = getattr(session, "_default_proxy", None)
    if proxy is not None:
        return {"proxy": proxy, "proxy_auth": getattr(session, "_default_proxy_auth", None)}
    if not session.trust_env:
        return {}
    from aiohttp.helpers import get_env_proxy_for_url
    from yarl import URL

    try:
        # It reads the environment and maybe ~/.netrc: in a thread, as aiohttp does.
        found, auth = await asyncio.to_thread(get_env_proxy_for_url, URL(request.url))
    except LookupError:
        return {}
    return {"proxy": found, "proxy_auth": auth}


# -- httpx -----------------------------------------------------------------------------------


class HttpxAsyncResponse:
    def __init__(self, response: Any, url: str) -> None:
        self._response = response
        self._url = url
        self.status: int = response.status_code
        self.headers = fold_headers(response.headers.multi_items())

    async def iter_raw(self) -> AsyncIterator[bytes]:
        import httpx

        try:
            # No chunk_size: httpx would hold bytes back to fill a chunk and lose them on a cut.
            async for chunk in self._response.aiter_raw():
                yield chunk
        except httpx.HTTPError as exc:
            timed_out = isinstance(exc, httpx.TimeoutException)
            raise network_error(exc, self._url, timed_out=timed_out, reading=True) from exc

    async def aclose(self) -> None:
        await self._response.aclose()


class HttpxAsyncTransport:
    owned = False

    def __init__(self, client: Any) -> None:
        self._client = client

    async def send(self, request: Request, timeout: Timeout) -> HttpxAsyncResponse:
        import httpx

        from rangeio._transport._httpx import httpx_request

        try:
            built, kwargs = httpx_request(self._client, request, timeout)
            response = await self._client.send(built, **kwargs)
        except httpx.HTTPError as exc:
            timed_out = isinstance(exc, httpx.TimeoutException)
            raise network_error(exc, request.url, timed_out=timed_out) from exc
        return HttpxAsyncResponse(response, request.url)

    async def aclose(self) -> None:
        """The client is borrowed: the caller closes it."""


# -- niquests --------------------------------------------------------------------------------


class NiquestsAsyncResponse:
    def __init__(self, response: Any, url: str) -> None:
        self._response = response
        self._url = url
        self.status: int = response.status_code
        self.headers = fold_headers(response.headers.items())

    async def iter_raw(self) -> AsyncIterator[bytes]:
        import niquests

        try:
            async for chunk in await self._response.iter_raw(-1):
                yield chunk
        except niquests.RequestException as exc:
            timed_out = isinstance(exc, niquests.Timeout)
            raise network_error(exc, self._url, timed_out=timed_out, reading=True) from exc

    async def aclose(self) -> None:
        await self._response.close()


class NiquestsAsyncTransport:
    owned = False

    def __init__(self, session: Any) -> None:
        self._session = session

    async def send(self, request: Request, timeout: Timeout) -> NiquestsAsyncResponse:
        import niquests

        try:
            call, args, kwargs = session_call(self._session, niquests.Request, request, timeout)
            response = await call(*args, **kwargs)
        except niquests.RequestException as exc:
            timed_out = isinstance(exc, niquests.Timeout)
            raise network_error(exc, request.url, timed_out=timed_out) from exc
        return NiquestsAsyncResponse(response, request.url)

    async def aclose(self) -> None:
        """The session is borrowed: the caller closes it."""


def make_async_transport(client: Any = None, verify: Any = True) -> AsyncTransport:
    """An async transport for ``client``. With none: aiohttp if installed, then httpx, checking
    TLS as ``verify`` says; a client the user passes is never reconfigured (``verify`` must
    then be left at True)."""
    check_borrowed_tls(client, verify)
    if client is None:
        try:
            import aiohttp  # noqa: F401
        except ImportError:
            pass
        else:
            return AiohttpTransport(verify=verify)
        try:
            import httpx
        except ImportError:
            raise ImportError(
                "rangeio.aio needs an async HTTP client: pip install rangeio[aiohttp] "
                "(or rangeio[httpx])"
            ) from None
        return _OwnedHttpx(httpx.AsyncClient(verify=tls_context(verify)))
    if is_instance_of(client, "aiohttp", "ClientSession"):
        return AiohttpTransport(client)
    if is_instance_of(client, "httpx", "AsyncClient"):
        return HttpxAsyncTransport(client)
    if is_instance_of(client, "niquests", "AsyncSession"):
        return NiquestsAsyncTransport(client)
    if isinstance(client, AsyncTransport):
        return client
    raise TypeError(
        f"unsupported async client {type(client).__qualname__}: pass an aiohttp.ClientSession, "
        "httpx.AsyncClient or niquests.AsyncSession"
    )


class _OwnedHttpx(HttpxAsyncTransport):
    owned = True

    async def aclose(self) -> None:
        await self._client.aclose()

    def abandon(self) -> None:
        """httpx has no synchronous close of an AsyncClient, nor warns when one is collected:
        its sockets go with the loop's transports."""


class Borrowed:
    """A transport lent to files that share it (``fetch_many``'s URLs, the files of an fsspec
    filesystem): they send through it, and closing one of them leaves it open. Its owner
    closes it, once."""

    owned = False

    def __init__(self, transport: AsyncTransport) -> None:
        self.transport = transport

    async def send(self, request: Request, timeout: Timeout) -> AsyncRawResponse:
        return await self.transport.send(request, timeout)

    async def aclose(self) -> None:
        """Borrowed: the owner closes it."""


def abandon(transport: AsyncTransport) -> None:
    """Close an owned transport without its event loop (the loop stopped or closed), as far as
    its library allows; a transport with no such step is left to the loop's end."""
    close_now = getattr(transport, "abandon", None)
    if close_now is not None:
        close_now()


__all__ = [
    "AsyncRawResponse",
    "AsyncTransport",
    "Borrowed",
    "NetworkError",
    "abandon",
    "make_async_transport",
]
