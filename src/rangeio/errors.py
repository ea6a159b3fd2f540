"""The typed errors rangeio raises; every failure a user can see is one of these."""

from __future__ import annotations

# Not `from typing import TYPE_CHECKING`: this module is imported by `import rangeio`, which must
# stay light (see rangeio/__init__.py); type checkers treat the name itself as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from rangeio._core.download import DownloadState


class RangeioError(Exception):
    """Base class of every error rangeio raises on purpose. ``state``: for an error out of
    ``haul`` or ``download``, the DownloadState on disk when it stopped (what the next call
    resumes from); None for every other error, and for DownloadLockedError (the disk is
    another download's)."""

    state: DownloadState | None = None


class NetworkError(RangeioError, OSError):
    """The exchange with the server failed: connection, timeout, or an unusable answer."""


class UrlError(RangeioError, ValueError):
    """The URL cannot be used: a scheme other than http/https, or no host."""


class HeaderParseError(RangeioError, ValueError):
    """A Range or Content-Range header (or a multipart part header, or a digest header) is malformed."""


class RangeNotSupportedError(NetworkError):
    """The server will not serve byte ranges in a way rangeio can use; `.reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RemoteChangedError(RangeioError):
    """The remote file is not the version pinned at open; versions are never mixed."""


class HTTPStatusError(NetworkError):
    """The server answered with a status that is not a usable answer to the request."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        is_transient: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.is_transient = is_transient
        self.retry_after = retry_after

    # pyhaul's names for the same facts (rangeio.compat.pyhaul aliases this class).
    @property
    def status_code(self) -> int:
        return self.status

    @property
    def is_server_error(self) -> bool:
        return 500 <= self.status <= 599

    @property
    def retry_after_seconds(self) -> float | None:
        return self.retry_after


class RedirectError(HTTPStatusError):
    """A redirect (3xx) that rangeio was told not to follow (``allow_redirects=False``):
    ``status`` is the 3xx, ``location`` its Location header, as the server sent it."""

    def __init__(self, message: str, *, status: int, location: str) -> None:
        super().__init__(message, status=status)
        self.location = location


class ProtocolError(NetworkError):
    """The server broke an HTTP rule, e.g. a Content-Range that does not match the request."""


class TLSError(NetworkError):
    """TLS failed or would be lost: the server's certificate is not trusted (or not for this host),
    the handshake failed, or a redirect from https to http was refused. Never retried: trying
    again cannot make an untrusted certificate trusted."""


class NetworkTimeoutError(NetworkError, TimeoutError):
    """Connecting or reading took longer than the configured timeout."""


class PartialDownloadError(NetworkError):
    """The transfer stopped before the end; ``bytes_done`` of ``total`` (None: unknown) are durable
    on disk, so trying again resumes instead of starting over."""

    retryable = True

    def __init__(self, message: str, *, bytes_done: int, total: int | None) -> None:
        super().__init__(message)
        self.bytes_done = bytes_done
        self.total = total

    @property
    def reason(self) -> str:
        """What stopped the transfer: the message (pyhaul's ``PartialHaulError.reason``)."""
        return str(self)


class ChecksumMismatchError(RangeioError):
    """The downloaded bytes do not hash to the digest the server announced; ``expected`` and
    ``actual`` are lower-case hex, ``algorithm`` is ``sha256``, ``sha512`` or ``md5``."""

    def __init__(self, message: str, *, expected: str, actual: str, algorithm: str) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual
        self.algorithm = algorithm


class DownloadLockedError(RangeioError):
    """Another process (or another download in this one) holds the lock on the destination."""


class UnsafePathError(RangeioError, OSError):
    """A download will not use one of its paths (``dest``, ``<dest>.part``, ``.part.ctrl``,
    ``.part.lock`` or a temporary record file): a directory is there, a FIFO, socket or device
    is at ``dest``, or what was opened is not the lone regular file it was a moment before (a
    symlink, FIFO or hard link put there meanwhile). Nothing was written through it; ``path``
    names it. Also an ``OSError``: it is a fact about the local disk."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class ForkError(RangeioError, RuntimeError):
    """A file opened before ``os.fork()`` was used in the child in a way that cannot be safe
    there: through a borrowed client (its connections belong to the parent) or an async file
    (its event loop and session belong to the parent). Open the file again in the child."""


__all__ = [
    "ChecksumMismatchError",
    "DownloadLockedError",
    "ForkError",
    "HTTPStatusError",
    "HeaderParseError",
    "NetworkError",
    "NetworkTimeoutError",
    "PartialDownloadError",
    "ProtocolError",
    "RangeNotSupportedError",
    "RangeioError",
    "RedirectError",
    "RemoteChangedError",
    "TLSError",
    "UnsafePathError",
    "UrlError",
]
