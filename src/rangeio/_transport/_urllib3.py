"""Transport over urllib3's PoolManager: the default, and the raw layer under requests."""

from __future__ import annotations

from collections.abc import Iterator

import urllib3
from urllib3.exceptions import HTTPError as Urllib3HTTPError
from urllib3.exceptions import NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3TimeoutError

from rangeio._core.exchange import Request
from rangeio._core.headers import fold_headers
from rangeio._core.options import Timeout
from rangeio._transport.base import CHUNK_BYTES, network_error
from rangeio.errors import NetworkError

# Enough pooled connections per host for read_ranges' concurrency; more would be dropped with a
# warning after each use.
POOL_MAXSIZE = 16


def map_urllib3_error(exc: Exception, url: str) -> NetworkError:
    # urllib3 2 makes NewConnectionError (a refused or failed connect) a subclass of
    # ConnectTimeoutError; a refusal is not a timeout.
    timed_out = isinstance(exc, Urllib3TimeoutError) and not isinstance(exc, NewConnectionError)
    return network_error(exc, url, timed_out=timed_out)


class Urllib3Response:
    def __init__(self, response: urllib3.BaseHTTPResponse, url: str) -> None:
        self._response = response
        self._url = url
        self.status = response.status
        self.headers = fold_headers(response.headers.items())
        self._finished = False

    def iter_raw(self) -> Iterator[bytes]:
        try:
            # read1: hand over what has arrived (one socket read) instead of blocking until a
            # whole chunk is filled, so a streaming reader never waits on bytes it did not ask for.
            while chunk := self._response.read1(CHUNK_BYTES, decode_content=False):
                yield chunk
        except (Urllib3HTTPError, OSError) as exc:
            raise map_urllib3_error(exc, self._url) from exc
        self._finished = True

    def close(self) -> None:
        if not self._finished:
            # An unread body would poison the next request on this connection: drop it.
            self._response.close()
        self._response.release_conn()


class Urllib3Transport:
    def __init__(self, pool: urllib3.PoolManager | None = None) -> None:
        self.owned = pool is None
        self._pool = pool if pool is not None else urllib3.PoolManager(maxsize=POOL_MAXSIZE)

    def send(self, request: Request, timeout: Timeout) -> Urllib3Response:
        try:
            response = self._pool.request(
                request.method,
                request.url,
                headers=request.headers,
                preload_content=False,
                decode_content=False,
                redirect=False,
                retries=False,
                timeout=urllib3.Timeout(connect=timeout.connect, read=timeout.read),
            )
        except (Urllib3HTTPError, OSError) as exc:
            raise map_urllib3_error(exc, request.url) from exc
        return Urllib3Response(response, request.url)

    def close(self) -> None:
        if self.owned:
            self._pool.clear()
