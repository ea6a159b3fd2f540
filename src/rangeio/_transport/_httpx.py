"""Transport over a borrowed httpx.Client, reading bodies with iter_raw (never decoded)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx

from rangeio._core.exchange import Request
from rangeio._core.headers import fold_headers
from rangeio._core.options import Timeout
from rangeio._transport.base import network_error
from rangeio._transport.watchdog import attach_sending, socket_shutdown
from rangeio.errors import NetworkError


def map_httpx_error(exc: Exception, url: str, *, reading: bool = False) -> NetworkError:
    timed_out = isinstance(exc, httpx.TimeoutException)
    return network_error(exc, url, timed_out=timed_out, reading=reading)


class HttpxResponse:
    def __init__(self, response: httpx.Response, url: str) -> None:
        self._response = response
        self._url = url
        self.status = response.status_code
        self.headers = fold_headers(response.headers.multi_items())

    def iter_raw(self) -> Iterator[bytes]:
        try:
            # No chunk_size: httpx would hold bytes back to fill a chunk, and lose them if the
            # connection then drops; we want every received byte so a resume starts after it.
            yield from self._response.iter_raw()
        except httpx.HTTPError as exc:
            raise map_httpx_error(exc, self._url, reading=True) from exc

    def shutdown(self) -> None:
        """Cut the connection from another thread (the watchdog), waking a blocked read."""
        cut = stream_shutdown(self._response.extensions.get("network_stream"))
        if cut is not None:
            cut()

    def close(self) -> None:
        self._response.close()


def httpx_request(
    client: httpx.Client | httpx.AsyncClient,
    request: Request,
    timeout: Timeout,
    trace: Callable[[str, dict[str, Any]], None] | None = None,
) -> tuple[httpx.Request, dict[str, Any]]:
    """The httpx request for ``request`` and ``client.send`` keyword arguments (sync and async
    alike). Without credentials it is built by httpx.Request itself, not by
    ``client.build_request`` (which merges in the client's headers and cookies), and sent with
    ``auth=None`` (httpx then uses no auth but what the URL itself carries, never the
    client's); the client still picks the transport, proxy and TLS settings. ``trace`` is
    httpx's trace extension (the sync watchdog learns a new connection's socket from it)."""
    extensions: dict[str, Any] = {
        "timeout": httpx.Timeout(timeout.read, connect=timeout.connect).as_dict()
    }
    if trace is not None:
        extensions["trace"] = trace
    if request.credentials:
        built = client.build_request(
            request.method, request.url, headers=request.headers, extensions=extensions
        )
        return built, {"stream": True, "follow_redirects": False}
    bare = httpx.Request(
        request.method, request.url, headers=request.headers, extensions=extensions
    )
    return bare, {"stream": True, "follow_redirects": False, "auth": None}


def stream_shutdown(stream: Any) -> Any:
    get_extra_info = getattr(stream, "get_extra_info", None)
    return socket_shutdown(get_extra_info("socket")) if get_extra_info is not None else None


def _trace(event: str, info: dict[str, Any]) -> None:
    """httpx's ``trace`` extension: a new connection's stream is handed to the watchdog before
    the head is read. (A kept-alive connection is not announced: the send is handed off and
    an overrunning head abandoned, `_sync/handoff.py`.)"""
    if event in _CONNECTED:
        attach_sending(stream_shutdown(info.get("return_value")))


_CONNECTED = frozenset({"connection.connect_tcp.complete", "connection.start_tls.complete"})


class HttpxTransport:
    owned = False
    # Only a new connection's socket is announced (the trace extension), not a kept-alive one's.
    cuts_head = False

    def __init__(self, client: httpx.Client) -> None:
        self._client = client

    def send(self, request: Request, timeout: Timeout) -> HttpxResponse:
        try:
            built, kwargs = httpx_request(self._client, request, timeout, trace=_trace)
            response = self._client.send(built, **kwargs)
        except httpx.HTTPError as exc:
            raise map_httpx_error(exc, request.url) from exc
        return HttpxResponse(response, request.url)

    def close(self) -> None:
        """The client is borrowed: the caller closes it."""
