"""Transport over a borrowed niquests.Session, reading bodies with iter_raw (never decoded)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import niquests

from rangeio._core.exchange import Request
from rangeio._core.headers import fold_headers
from rangeio._core.options import Timeout
from rangeio._transport.base import network_error, session_call
from rangeio._transport.watchdog import connection_shutdown


class NiquestsResponse:
    def __init__(self, response: Any, url: str) -> None:
        self._response = response
        self._url = url
        self.status: int = response.status_code
        self.headers = fold_headers(response.headers.items())

    def iter_raw(self) -> Iterator[bytes]:
        try:
            # -1: chunks as they arrive, so a cut body loses nothing already received.
            yield from self._response.iter_raw(-1)
        except niquests.RequestException as exc:
            timed_out = isinstance(exc, niquests.Timeout)
            raise network_error(exc, self._url, timed_out=timed_out, reading=True) from exc

    def shutdown(self) -> None:
        """Cut the connection from another thread (the watchdog), waking a blocked read."""
        cut = connection_shutdown(getattr(self._response, "raw", None))
        if cut is not None:
            cut()

    def close(self) -> None:
        self._response.close()


class NiquestsTransport:
    owned = False
    cuts_head = False  # the session reads the head with no hook to its socket: handed off

    def __init__(self, session: Any) -> None:
        self._session = session

    def send(self, request: Request, timeout: Timeout) -> NiquestsResponse:
        try:
            call, args, kwargs = session_call(self._session, niquests.Request, request, timeout)
            response = call(*args, **kwargs)
        except niquests.RequestException as exc:
            timed_out = isinstance(exc, niquests.Timeout)
            raise network_error(exc, request.url, timed_out=timed_out) from exc
        return NiquestsResponse(response, request.url)

    def close(self) -> None:
        """The session is borrowed: the caller closes it."""
