"""RecordingPool: a urllib3 pool, lent to rangeio as a client, that notes every exchange (the CLI's
``get`` name probe and ``info`` read headers through it). Its own module so that the CLI's
start-up does not import urllib3."""

from __future__ import annotations

import dataclasses
from typing import Any

import urllib3

from rangeio._transport._urllib3 import pool_tls_kwargs, use_own_connections


@dataclasses.dataclass(frozen=True)
class Exchange:
    """One request rangeio sent through the recording pool, and the answer's headers."""

    method: str
    url: str
    range: str | None
    status: int
    headers: dict[str, str]

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None


class RecordingPool(urllib3.PoolManager):
    """A urllib3 pool (a client rangeio accepts and borrows) that notes every request and the
    response headers, which rangeio's file API does not expose (Content-Disposition,
    Last-Modified, redirects)."""

    def __init__(self, verify: Any = True) -> None:
        super().__init__(maxsize=16, **pool_tls_kwargs(verify))
        use_own_connections(self)
        self.exchanges: list[Exchange] = []

    def urlopen(  # type: ignore[override]
        self, method: str, url: str, redirect: bool = True, **kw: Any
    ) -> urllib3.BaseHTTPResponse:
        response = super().urlopen(method, url, redirect=redirect, **kw)
        headers = dict(kw.get("headers") or {})
        range_value = next((v for k, v in headers.items() if k.lower() == "range"), None)
        self.exchanges.append(
            Exchange(method, url, range_value, response.status, dict(response.headers.items()))
        )
        return response
