"""The client factories a process registers for files that arrive in it by pickle."""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: see rangeio/__init__.py
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Factory = Callable[[str], Any]

# A borrowed client never travels in a pickle (its connections belong to this process, and its
# auth, cookies and certificates are secrets). A file unpickled here asks the factory this
# process registered for a client for its URL; with none registered (or None returned) it
# uses rangeio's own connection pool, as `rangeio.open(url)` does.
_factories: dict[str, Factory | None] = {"sync": None, "async": None}


def set_client_factory(factory: Factory | None) -> None:
    """Register ``factory(url) -> client or None``: the client each ``HttpFile`` (and
    ``RangeStream``, format reader, fsspec file) unpickled in this process reads through.
    Call it in the worker (a pool's ``initializer``, a dask ``WorkerPlugin``); None removes it.
    The client is borrowed: rangeio never closes it, so return a shared one (see
    docs/distributed.md)."""
    _set("sync", factory)


def set_async_client_factory(factory: Factory | None) -> None:
    """``rangeio.aio.set_client_factory``: the same, for ``AsyncHttpFile``; the factory is
    called at the file's first I/O, on the event loop that reads it (an aiohttp session, an
    httpx.AsyncClient or a niquests.AsyncSession belongs to one loop)."""
    _set("async", factory)


def _set(kind: str, factory: Factory | None) -> None:
    if factory is not None and not callable(factory):
        raise TypeError(f"a client factory must be callable (url -> client), not {factory!r}")
    _factories[kind] = factory


def client_for(url: str, verify: Any, *, kind: str = "sync") -> tuple[Any, Any]:
    """The client and ``verify`` for a file unpickled here: the registered factory's client
    (its TLS settings are its own, so ``verify`` is left at True), else None (rangeio's own
    pool) and the pickled ``verify``."""
    factory = _factories[kind]
    client = None if factory is None else factory(url)
    return client, verify if client is None else True
