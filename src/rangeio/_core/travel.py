"""What an open file becomes when pickled: a small description (URL, options, identity), no secrets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from rangeio._core.identity import Identity
from rangeio._core.options import FileOptions
from rangeio._core.redirects import ResolvedUrl

# The description's layout. A pickle names its version, so a worker running another rangeio
# refuses one it cannot read instead of misreading it.
VERSION = 1


@dataclass(frozen=True, slots=True)
class Description:
    """One remote file, as a pickle carries it to another process.

    ``url`` is the URL the user gave (credentials and redirects are judged against its origin
    there as here); ``resolved`` where its redirects led, kept only when that URL does not
    expire (a presigned target is asked again from ``url``); ``identity`` the pinned version
    (ETag, Last-Modified, size) every response there must match; ``options`` the file's
    options, as ``travelling_options`` leaves them."""

    url: str
    resolved: str | None
    identity: Identity
    options: FileOptions
    version: int = VERSION

    @property
    def target(self) -> ResolvedUrl:
        """Where the first request goes on the other side."""
        return ResolvedUrl(self.resolved if self.resolved is not None else self.url)

    def check(self) -> Description:
        if self.version != VERSION:
            raise ValueError(
                f"this pickle holds a rangeio file description of version {self.version}; "
                f"this rangeio reads version {VERSION}: run the same rangeio on both sides"
            )
        return self


def describe(
    url: str, target: ResolvedUrl, identity: Identity, options: FileOptions
) -> Description:
    """The description of a file opened from ``url`` whose requests now go to ``target``."""
    # A target that expires (a presigned URL a redirect led to) may be dead by the time a worker
    # reads: the worker follows ``url``'s redirects again instead (as this process does once
    # the target is near its expiry, `RemoteFile.drive`).
    resolved = target.url if target.url != url and target.expires_at is None else None
    return Description(url, resolved, identity, travelling_options(options))


def travelling_options(options: FileOptions) -> FileOptions:
    """``options`` as they may leave this process.

    - ``headers`` only with ``pickle_headers=True``: they are where credentials go
      (Authorization, cookies, API keys), and a pickle is stored and sent in clear by the
      engines that carry it (a dask scheduler, a task on disk). A worker without them gets the
      server's 401/403 as an HTTPStatusError, never another user's bytes.
    - ``verify`` as given when it is a bool or a CA bundle's path; an ``ssl.SSLContext`` does
      not pickle and may hold a client certificate's key, so the worker checks certificates
      against its system trust store instead (never less checking than True).
    """
    headers = options.headers if options.pickle_headers else {}
    verify = options.verify if verify_travels(options.verify) else True
    return replace(options, headers=dict(headers), verify=verify)


def verify_travels(verify: Any) -> bool:
    """Whether a ``verify`` value is pickled as it is (a bool or a CA bundle's path)."""
    return isinstance(verify, (bool, str)) or hasattr(verify, "__fspath__")


# Keyword arguments that name a client: borrowed, never pickled.
BORROWED = frozenset({"client", "async_client", "loop"})


def travelling_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Open keyword arguments (an fsspec filesystem's storage options) as they may leave this
    process, by the rules of ``travelling_options``; a borrowed client (and fsspec's
    ``loop``) stays behind too."""
    out = {k: v for k, v in kwargs.items() if k not in BORROWED}
    if not out.get("pickle_headers"):
        out.pop("headers", None)
    if "verify" in out and not verify_travels(out["verify"]):
        del out["verify"]
    return out
