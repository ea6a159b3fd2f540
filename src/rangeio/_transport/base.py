"""The transport protocol: send one request, hand back status, folded headers and raw body bytes."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

from rangeio._core.exchange import Request
from rangeio._core.options import Timeout
from rangeio.errors import NetworkError, NetworkTimeoutError

# Body chunks are read in pieces up to this large: per-chunk Python overhead is then negligible
# at loopback speed. A cut connection loses nothing: what was received is still handed over.
CHUNK_BYTES = 1024 * 1024


class RawResponse(Protocol):
    status: int
    headers: dict[str, str]  # folded: lower-case names, repeated fields joined

    def iter_raw(self) -> Iterator[bytes]:
        """The body exactly as sent (no content decoding). Transport failures surface as
        rangeio.errors.NetworkError with the original exception as __cause__."""
        ...

    def close(self) -> None:
        """Release the connection; safe to call early (the connection is then dropped)."""
        ...


@runtime_checkable
class Transport(Protocol):
    def send(self, request: Request, timeout: Timeout) -> RawResponse:
        """Send without following redirects or decoding; raise NetworkError on failure."""
        ...

    def close(self) -> None:
        """Close what the transport owns; a borrowed client is left open."""
        ...


def network_error(exc: BaseException, url: str, *, timed_out: bool) -> NetworkError:
    """The typed error for a client library's exception; the caller chains it as __cause__."""
    if timed_out:
        return NetworkTimeoutError(f"timed out talking to {url}: {exc}")
    return NetworkError(f"{type(exc).__name__} talking to {url}: {exc}")


def session_request_kwargs(request: Request, timeout: Timeout) -> dict[str, Any]:
    """Keyword arguments for a requests-style ``session.request`` (requests, niquests): stream
    the body, follow no redirect (the exchange does, to judge every hop)."""
    return {
        "headers": request.headers,
        "stream": True,
        "allow_redirects": False,
        "timeout": (timeout.connect, timeout.read),
    }


def is_instance_of(obj: Any, module: str, name: str) -> bool:
    """isinstance against ``module.name`` without importing an optional library the user
    does not use (only if it is imported already can ``obj`` be one of its types)."""
    mod = sys.modules.get(module)
    cls = getattr(mod, name, None) if mod is not None else None
    return isinstance(cls, type) and isinstance(obj, cls)
