"""Transport adapters: pick one for the client the user passed (or none), by type."""

from __future__ import annotations

from typing import Any

from rangeio._core.options import check_borrowed_tls
from rangeio._transport.base import RawResponse, Transport, is_instance_of


def make_transport(client: Any = None, verify: Any = True) -> Transport:
    """A transport for ``client``. With no client, rangeio creates and owns a urllib3 pool
    that checks TLS as ``verify`` says; a client the user passes is borrowed, never closed
    and never reconfigured (so ``verify`` must then be left at True)."""
    check_borrowed_tls(client, verify)
    if client is None:
        from rangeio._transport._urllib3 import Urllib3Transport

        return Urllib3Transport(verify=verify)
    # Checked through sys.modules so that an optional library the user does not use is
    # never imported.
    if is_instance_of(client, "niquests", "AsyncSession"):
        raise TypeError("niquests.AsyncSession is an async client: use rangeio.aio")
    if is_instance_of(client, "urllib3", "PoolManager"):
        from rangeio._transport._urllib3 import Urllib3Transport

        return Urllib3Transport(client)
    if is_instance_of(client, "requests", "Session"):
        from rangeio._transport._requests import RequestsTransport

        return RequestsTransport(client)
    if is_instance_of(client, "httpx", "Client"):
        from rangeio._transport._httpx import HttpxTransport

        return HttpxTransport(client)
    if is_instance_of(client, "niquests", "Session"):
        from rangeio._transport._niquests import NiquestsTransport

        return NiquestsTransport(client)
    if isinstance(client, Transport):
        return client
    raise TypeError(
        f"unsupported client {type(client).__qualname__}: pass a urllib3.PoolManager, "
        "requests.Session, httpx.Client or niquests.Session"
    )


__all__ = ["RawResponse", "Transport", "make_transport"]
