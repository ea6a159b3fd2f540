"""Connections kept across answers whose body rangeio does not need, on every adapter.

An error status (a 404 probe, a 503 before its retry), a multipart body whose close delimiter
has arrived and a HEAD leave a small, framed rest; rangeio drains it so the next request reuses
the connection (`_core/drain.py`). A large, close-delimited or endless rest is still dropped,
and a drain never hangs.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import rangeio
import rangeio.aio
from tests.adapters import ALL_ADAPTERS, AsyncFacade, Opener, opener_for
from tests.conftest import make_bytes
from tests.raw_server import RawConnection, RawRequest, RawServer, response_head, serve_range
from tests.servers.nginx import Nginx

SIZE = 50_000
DATA = make_bytes(SIZE, seed=12)
FAST = rangeio.RetryPolicy(attempts=3, backoff=0.01, max_backoff=0.02)
QUICK = rangeio.Timeout(connect=2.0, read=2.0)
PROBES = 20
# nginx's own 404 page is about 150 bytes; this is a typical error body.
ERROR_BODY = b"<html><body><h1>404 Not Found</h1></body></html>\n"


@pytest.fixture(params=ALL_ADAPTERS)
def shared(request: pytest.FixtureRequest) -> Iterator[Opener]:
    """An opener whose files all share one client (rangeio's own clients are per file)."""
    for opener in opener_for(request.param):
        if opener.kind == "urllib3":
            import urllib3

            opener.client = urllib3.PoolManager()
            opener._closers.append(opener.client.clear)
        elif opener.kind == "aiohttp":

            async def make() -> Any:
                import aiohttp

                return aiohttp.ClientSession()

            session = opener._run(make())
            opener.client = session
            opener._closers.append(lambda: opener._run(session.close()))
        yield opener


def _answers(status: int, body: bytes, framing: str = "length") -> Callable[..., None]:
    """Every request gets ``status`` with ``body``, framed by a Content-Length or chunks."""

    def handler(conn: RawConnection, request: RawRequest) -> None:
        headers = {"Content-Type": "text/html"}
        if framing == "chunked":
            headers["Transfer-Encoding"] = "chunked"
            payload = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if body else b"0\r\n\r\n"
        else:
            headers["Content-Length"] = str(len(body))
            payload = body
        conn.send(response_head(status, headers) + payload)

    return handler


def _probe(opener: Opener, url: str) -> None:
    with pytest.raises(FileNotFoundError if False else rangeio.HTTPStatusError):
        opener(url, retries=FAST, timeout=QUICK)


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_404_probes_reuse_one_connection(shared: Opener, framing: str) -> None:
    with RawServer(_answers(404, ERROR_BODY, framing), keep_alive=True) as srv:
        for i in range(PROBES):
            _probe(shared, srv.url(f"/missing{i}.aux.xml"))
        srv.wait_for_requests(PROBES)
        assert srv.connections == 1
