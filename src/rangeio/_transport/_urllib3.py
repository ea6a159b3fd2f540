"""Transport over urllib3's PoolManager: the default, and the raw layer under requests."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from typing import Any, cast

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import HTTPError as Urllib3HTTPError
from urllib3.exceptions import IncompleteRead, NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3TimeoutError

from rangeio._core.exchange import Request
from rangeio._core.headers import fold_headers
from rangeio._core.options import CONNECTIONS_PER_HOST, Timeout
from rangeio._core.validate import MAX_INTERIM_RESPONSES, is_interim
from rangeio._transport.base import CHUNK_BYTES, network_error, tls_context
from rangeio._transport.watchdog import attach_sending, connection_shutdown, socket_shutdown
from rangeio.errors import NetworkError

# Enough pooled connections per host for the requests a file may have in flight (cursors and
# read_ranges); more would be dropped with a warning after each use.
POOL_MAXSIZE = CONNECTIONS_PER_HOST
# What urllib3 makes of ``retries=False, redirect=False`` (Retry.from_int), made once instead of
# per request: rangeio retries and follows redirects itself (`_core/exchange.py`). A Retry is
# never changed (increment() returns a new one).
_NO_RETRIES = urllib3.Retry(False, redirect=False)


def map_urllib3_error(exc: Exception, url: str, *, reading: bool = False) -> NetworkError:
    # urllib3 2 makes NewConnectionError (a refused or failed connect) a subclass of
    # ConnectTimeoutError; a refusal is not a timeout.
    timed_out = isinstance(exc, Urllib3TimeoutError) and not isinstance(exc, NewConnectionError)
    return network_error(exc, url, timed_out=timed_out, reading=reading)


class Urllib3Response:
    def __init__(self, response: urllib3.BaseHTTPResponse, url: str) -> None:
        # A connection rangeio does not own (a borrowed pool, requests) takes a 1xx for the
        # answer: read on to the real one, on the same stream.
        self._interim: urllib3.BaseHTTPResponse | None = None
        if is_interim(response.status):
            self._interim, response = response, _past_interim(response, url)
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
            raise map_urllib3_error(exc, self._url, reading=True) from exc
        self._finished = True

    def readinto1(self, into: memoryview) -> int:
        """Read what has arrived of the body (one socket read at most) straight into ``into``;
        0 at the end of the body. The bytes are the raw body, never decoded."""
        try:
            received = _readinto1(self._response, into)
        except (Urllib3HTTPError, OSError) as exc:
            raise map_urllib3_error(exc, self._url, reading=True) from exc
        if not received:
            self._finished = True
        return received

    def shutdown(self) -> None:
        """Cut the connection from another thread (the watchdog), waking a blocked read."""
        cut = connection_shutdown(self._response)
        if cut is not None:
            cut()

    def close(self) -> None:
        if self._interim is not None:
            # http.client still thinks the 1xx is this connection's response: never reuse it.
            # Both responses read one stream, so the second close finds it closed already.
            connection = self._interim.connection
            for closing in (connection, self._response):
                try:
                    if closing is not None:
                        closing.close()
                except (OSError, ValueError):
                    pass
            self._interim.release_conn()
            return
        if not self._finished:
            # An unread body would poison the next request on this connection: drop it.
            self._response.close()
        self._response.release_conn()


def _readinto1(response: Any, into: memoryview) -> int:
    """``response.read1(len(into), decode_content=False)`` into ``into``. urllib3's own
    ``readinto`` reads a bytes object and copies it, so for a body of known length over
    http.client (every Content-Length answer) this reads from http.client's buffered socket
    stream itself and keeps both libraries' counts as their ``read1`` would: http.client's
    ``length`` (it closes the stream at the end, so the connection can be reused), urllib3's
    ``length_remaining`` and its IncompleteRead for a body cut short. Anything else (chunked,
    no length, content already decoded, another stream) is read by ``read1`` and copied."""
    raw = getattr(response, "_fp", None)
    stream = getattr(raw, "fp", None)
    if (
        isinstance(raw, http.client.HTTPResponse)
        and stream is not None
        and not raw.chunked
        and raw.length is not None
        and not getattr(response, "_has_decoded_content", True)
        and hasattr(stream, "readinto1")
        and isinstance(getattr(response, "length_remaining", None), int)
    ):
        wanted = min(len(into), raw.length)
        received = stream.readinto1(into[:wanted]) if wanted else 0
        if received:
            raw.length -= received
            response._fp_bytes_read += received
            response.length_remaining -= received
        if not raw.length or not received:
            raw._close_conn()  # type: ignore[attr-defined]
        if not received and wanted and response.enforce_content_length:
            raise IncompleteRead(response._fp_bytes_read, response.length_remaining)
        return received
    data = response.read1(len(into), decode_content=False)
    into[: len(data)] = data
    return len(data)


class _Stream:
    """Gives http.client the buffered stream an interim response came on (it may already hold
    the answer's first bytes) instead of a new one."""

    def __init__(self, fp: Any) -> None:
        self._fp = fp

    def makefile(self, mode: str) -> Any:
        return self._fp


def _past_interim(interim: urllib3.BaseHTTPResponse, url: str) -> urllib3.BaseHTTPResponse:
    """The answer that follows an interim response on the same connection, as urllib3 would
    have built it had it skipped the interim itself (no pool: see Urllib3Response.close)."""
    original = getattr(interim, "_original_response", None)
    fp = getattr(original, "fp", None)
    if fp is None:  # not http.client underneath: the status is judged as it is
        return interim
    answer = _FinalResponse(_Stream(fp), method=getattr(original, "_method", None))  # type: ignore[arg-type]
    try:
        answer.begin()
    except (http.client.HTTPException, OSError) as exc:
        interim.close()  # the connection is dropped
        raise map_urllib3_error(exc, url) from exc
    return urllib3.HTTPResponse(
        body=answer,
        headers=urllib3.HTTPHeaderDict(answer.msg.items()),
        status=answer.status,
        version=answer.version,
        reason=answer.reason,
        preload_content=False,
        decode_content=False,
        original_response=answer,
        connection=cast(Any, interim.connection),
    )


class _FinalResponse(http.client.HTTPResponse):
    """http.client skips only 100 Continue and takes any other 1xx (103 Early Hints) for the
    answer, leaving the real one on the socket: this skips every interim response."""

    def _read_status(self) -> tuple[str, int, str]:
        for _ in range(MAX_INTERIM_RESPONSES):
            version, status, reason = super()._read_status()  # type: ignore[misc]
            if not is_interim(status):
                return version, status, reason
            http.client.parse_headers(self.fp)  # the interim's headers, dropped
        raise http.client.HTTPException(f"more than {MAX_INTERIM_RESPONSES} interim responses")


class _Connection(HTTPConnection):
    """rangeio's connection: interim responses skipped, and its socket handed to the watchdog
    before the head is read, so that a dripped head is cut at the head timeout."""

    response_class = _FinalResponse

    def getresponse(self) -> Any:
        attach_sending(socket_shutdown(self.sock))
        return super().getresponse()


class _TLSConnection(HTTPSConnection):
    response_class = _FinalResponse

    def getresponse(self) -> Any:
        attach_sending(socket_shutdown(self.sock))
        return super().getresponse()


class _Pool(HTTPConnectionPool):
    ConnectionCls = _Connection


class _TLSPool(HTTPSConnectionPool):
    ConnectionCls = _TLSConnection


def use_own_connections(manager: urllib3.PoolManager) -> urllib3.PoolManager:
    """Make a PoolManager rangeio creates open rangeio's connections (never a borrowed one)."""
    manager.pool_classes_by_scheme = {"http": _Pool, "https": _TLSPool}
    return manager


def pool_tls_kwargs(verify: object = True) -> dict[str, Any]:
    """PoolManager keyword arguments that check TLS as ``verify`` says (True: urllib3's
    default, the system trust store)."""
    tls = tls_context(verify)
    if tls is True:
        return {}
    if tls is False:
        return {"cert_reqs": "CERT_NONE", "assert_hostname": False}
    # urllib3 imposes its cert_reqs on a given context; keep the context's own choice.
    return {"ssl_context": tls, "cert_reqs": tls.verify_mode}


def make_pool(verify: object = True, **kwargs: Any) -> urllib3.PoolManager:
    """A PoolManager with rangeio's pool size and TLS checked as ``verify`` says."""
    kwargs.setdefault("maxsize", POOL_MAXSIZE)
    return use_own_connections(urllib3.PoolManager(**kwargs, **pool_tls_kwargs(verify)))


class Urllib3Transport:
    def __init__(self, pool: urllib3.PoolManager | None = None, *, verify: object = True) -> None:
        self.owned = pool is None
        # Only rangeio's own connections hand their socket over before the head (_Connection);
        # a borrowed pool keeps its own, never reconfigured.
        self.cuts_head = self.owned
        self._verify = verify
        self._pool = pool if pool is not None else make_pool(verify)
        # urllib3's Timeout for the last Timeout seen: a file sends every request with the same
        # one, and urllib3 clones it per request (never changes it), so it is made once.
        self._timeout: tuple[Timeout, urllib3.Timeout] | None = None

    def _urllib3_timeout(self, timeout: Timeout) -> urllib3.Timeout:
        last = self._timeout
        if last is not None and last[0] is timeout:
            return last[1]
        made = urllib3.Timeout(connect=timeout.connect, read=timeout.read)
        self._timeout = (timeout, made)
        return made

    def send(self, request: Request, timeout: Timeout) -> Urllib3Response:
        try:
            response = self._pool.request(
                request.method,
                request.url,
                headers=request.headers,
                preload_content=False,
                decode_content=False,
                redirect=False,
                retries=_NO_RETRIES,
                timeout=self._urllib3_timeout(timeout),
            )
        except (Urllib3HTTPError, OSError) as exc:
            raise map_urllib3_error(exc, request.url) from exc
        return Urllib3Response(response, request.url)

    def after_fork_in_child(self) -> None:
        """In a forked child: a fresh pool of our own. The old one is dropped, not cleared: its
        lock may be held by a parent thread, and its sockets are the parent's connections."""
        if self.owned:
            self._pool = make_pool(self._verify)

    def close(self) -> None:
        if self.owned:
            self._pool.clear()
