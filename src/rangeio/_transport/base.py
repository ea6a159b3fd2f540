"""The transport protocol: send one request, hand back status, folded headers and raw body bytes."""

from __future__ import annotations

import os
import ssl
import sys
from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

from rangeio._core.exchange import Request
from rangeio._core.options import Timeout
from rangeio.errors import NetworkError, NetworkTimeoutError, TLSError

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
        """Send without following redirects or decoding; raise NetworkError on failure. A
        request with ``credentials=False`` goes without anything the client adds by itself
        (default headers, auth, cookies): it is for another origin than the user's URL."""
        ...

    def close(self) -> None:
        """Close what the transport owns; a borrowed client is left open."""
        ...


def cuts_head(transport: object) -> bool:
    """Whether the watchdog can cut ``transport``'s response head while it is still arriving:
    its client hands the socket over before reading the head (rangeio's own urllib3
    connections). A borrowed client's reads no supported hook reaches say False (the default,
    and what an unknown Transport gets): the sync runner then sends on a helper thread and
    abandons a head that overruns (`_sync/handoff.py`). Not part of the Transport protocol, so
    a user's own transport needs no such attribute."""
    return getattr(transport, "cuts_head", False) is True


# A TLS stream cut short is a cut connection like any other (resumable), not a TLS failure;
# asyncio's TLS layer reports a reset mid-record as SSLWantReadError.
_CUT_TLS_STREAM = (
    ssl.SSLEOFError,
    ssl.SSLZeroReturnError,
    ssl.SSLSyscallError,
    ssl.SSLWantReadError,
    ssl.SSLWantWriteError,
)


def tls_failure(exc: BaseException) -> BaseException | None:
    """The ssl error behind a client library's exception, if there is one. Every library wraps
    it differently (urllib3 in args, requests in a MaxRetryError's reason, httpx and niquests
    as __cause__, aiohttp in args and certificate_error), so the whole chain is searched."""
    pending: list[BaseException] = [exc]
    seen: set[int] = set()
    while pending and len(seen) < 32:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        if isinstance(current, ssl.SSLError) and not isinstance(current, _CUT_TLS_STREAM):
            return current
        linked = (
            current.__cause__,
            current.__context__,
            getattr(current, "reason", None),
            getattr(current, "certificate_error", None),
            *current.args,
        )
        pending.extend(e for e in linked if isinstance(e, BaseException))
    return None


def network_error(
    exc: BaseException, url: str, *, timed_out: bool, reading: bool = False
) -> NetworkError:
    """The typed error for a client library's exception; the caller chains it as __cause__.
    ``reading``: the body was flowing, so the handshake had succeeded and whatever TLS says
    now is a cut connection, to be resumed."""
    failure = None if reading else tls_failure(exc)
    if failure is not None:
        return TLSError(f"TLS failed talking to {url}: {failure}")
    if timed_out or _timeout_behind(exc):
        return NetworkTimeoutError(f"timed out talking to {url}: {exc}")
    return NetworkError(f"{type(exc).__name__} talking to {url}: {exc}")


def _timeout_behind(exc: BaseException) -> bool:
    """Whether a socket timeout caused ``exc``: niquests reports a read timeout in the middle of
    a body as ``ConnectionError(ReadTimeoutError(...))``, which is no Timeout by its type."""
    return any(isinstance(cause, TimeoutError) for cause in causes(exc))


def causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, then what caused it (``__cause__``, else ``__context__``), and so on, each once."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def tls_context(verify: object) -> ssl.SSLContext | bool:
    """What ``verify`` (checked by FileOptions) means for a client rangeio creates: True keeps
    the client's default (certificates checked against the system trust store), False turns
    checking off, a path becomes a context trusting that CA bundle."""
    if isinstance(verify, bool):
        return verify
    if isinstance(verify, ssl.SSLContext):
        return verify
    path = os.fspath(verify)  # type: ignore[call-overload]
    try:
        return ssl.create_default_context(cafile=path)
    except (OSError, ssl.SSLError) as exc:
        raise TLSError(f"cannot load the CA bundle {path!r}: {exc}") from exc


def session_call(
    session: Any, request_class: Any, request: Request, timeout: Timeout
) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
    """How a requests-style session (requests, niquests; sync or async) sends ``request``: the
    method to call, its arguments and keyword arguments. Always streamed, following no redirect
    (the exchange does, to judge every hop).

    With credentials: ``session.request``, which merges in the session's headers, auth, cookies,
    hooks and netrc. Without: the Request class prepares it alone and ``session.send`` sends it
    as it is; the session still picks the proxies, TLS checking and client certificate, which
    are no credentials for the origin."""
    timeouts = (timeout.connect, timeout.read)
    if request.credentials:
        kwargs = {
            "headers": request.headers,
            "stream": True,
            "allow_redirects": False,
            "timeout": timeouts,
        }
        return session.request, (request.method, request.url), kwargs
    prepared = request_class(request.method, request.url, headers=request.headers).prepare()
    settings = session.merge_environment_settings(prepared.url, {}, True, None, None)
    return session.send, (prepared,), {**settings, "allow_redirects": False, "timeout": timeouts}


def is_instance_of(obj: Any, module: str, name: str) -> bool:
    """isinstance against ``module.name`` without importing an optional library the user
    does not use (only if it is imported already can ``obj`` be one of its types)."""
    mod = sys.modules.get(module)
    cls = getattr(mod, name, None) if mod is not None else None
    return isinstance(cls, type) and isinstance(obj, cls)
