"""Transport over a borrowed requests.Session, reading the raw urllib3 stream underneath."""

from __future__ import annotations

from typing import Any

import requests

from rangeio._core.exchange import Request
from rangeio._core.options import Timeout
from rangeio._transport._urllib3 import Urllib3Response
from rangeio._transport.base import network_error, session_call


class RequestsTransport:
    owned = False
    cuts_head = False  # the session reads the head with no hook to its socket: handed off

    def __init__(self, session: requests.Session) -> None:
        self._session = session

    def send(self, request: Request, timeout: Timeout) -> Urllib3Response:
        try:
            call, args, kwargs = session_call(self._session, requests.Request, request, timeout)
            response: Any = call(*args, **kwargs)
        except requests.RequestException as exc:
            timed_out = isinstance(exc, requests.Timeout)
            raise network_error(exc, request.url, timed_out=timed_out) from exc
        # response.raw is the urllib3 response; reading it directly skips requests' decoding.
        return Urllib3Response(response.raw, request.url)

    def close(self) -> None:
        """The session is borrowed: the caller closes it."""
