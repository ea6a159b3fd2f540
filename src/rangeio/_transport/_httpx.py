"""Transport over a borrowed httpx.Client, reading bodies with iter_raw (never decoded)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx

from rangeio._core.exchange import Request
from rangeio._core.headers import fold_headers
from rangeio._core.options import Timeout
from rangeio._transport.base import network_error
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

    def close(self) -> None:
        self._response.close()


class HttpxTransport:
    owned = False

    def __init__(self, client: httpx.Client) -> None:
        self._client = client

    def send(self, request: Request, timeout: Timeout) -> HttpxResponse:
        try:
            built = self._client.build_request(
                request.method,
                request.url,
                headers=request.headers,
                timeout=httpx.Timeout(timeout.read, connect=timeout.connect),
            )
            response = self._client.send(built, stream=True, follow_redirects=False)
        except httpx.HTTPError as exc:
            raise map_httpx_error(exc, request.url) from exc
        return HttpxResponse(response, request.url)

    def close(self) -> None:
        """The client is borrowed: the caller closes it."""
