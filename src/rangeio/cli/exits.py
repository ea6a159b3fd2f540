"""The CLI's exit codes: the constants, THE table (``EXIT_CODES_HELP``: the package docstring and
``--help`` both print it), and exit_code(), the code for an error."""

from __future__ import annotations

import sys

from rangeio.errors import (
    ChecksumMismatchError,
    DownloadLockedError,
    HTTPStatusError,
    NetworkError,
    NetworkTimeoutError,
    PartialDownloadError,
    ProtocolError,
    RangeioError,
    RangeNotSupportedError,
    RemoteChangedError,
    TLSError,
    UrlError,
)

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_URL = 3
EXIT_RESOLVE = 6
EXIT_NETWORK = 7
EXIT_PROTOCOL = 8
EXIT_PARTIAL = 18
EXIT_HTTP = 22
EXIT_WRITE = 23
EXIT_TIMEOUT = 28
EXIT_RANGES = 33
EXIT_CHECKSUM = 50
EXIT_CHANGED = 51
EXIT_LOCKED = 52
EXIT_TLS = 60
EXIT_FORMAT = 65
EXIT_NO_MEMBER = 66
EXIT_EXISTS = 73
EXIT_INTERRUPTED = 130

# A constant, not parsed out of __doc__: `python -OO` strips docstrings.
EXIT_CODES_HELP = """
     0  success
     1  any other rangeio error
     2  usage error
     3  the URL is malformed or not http/https
     6  could not resolve the host
     7  could not connect, or another network failure (including too many redirects)
     8  the server broke an HTTP rule (a wrong Content-Range, say)
    18  partial download: the transfer stopped; run the command again to resume
    22  the server answered with an HTTP error status (404, 500, ...)
    23  writing the output failed (a local I/O error, or a closed pipe)
    28  timed out
    33  the server does not serve byte ranges usably
    50  checksum mismatch (``--sha256`` or a digest header); the data stays in ``.part``
    51  the remote file changed while it was read
    52  the destination is locked by another download
    60  TLS failed: the server's certificate is not trusted (see --cacert), or a redirect
        from https to http was refused
    65  the remote file is not a well-formed zip archive
    66  no such zip member
    73  refusing to overwrite an existing file (use ``--force``)
   130  interrupted (Ctrl-C); ``get`` says whether progress was saved (a rerun resumes it)
"""
EPILOG = "exit codes:\n" + EXIT_CODES_HELP


class UsageError(Exception):
    """A bad argument found after parsing (exit 2)."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during ``get``, with the bytes a rerun would resume from (read back from disk)."""

    def __init__(self, saved: int) -> None:
        super().__init__(saved)
        self.saved = saved


class RefusedError(Exception):
    """The command would overwrite an existing file (exit 73)."""


def exit_code(exc: BaseException) -> int:
    """The exit code for an error (see the module docstring)."""
    import socket

    from rangeio._transport.base import causes

    # A FormatError exists only if its module was loaded: not importing the formats here
    # keeps every other failing command's exit quick.
    formats = sys.modules.get("rangeio.formats._common")
    if isinstance(exc, UrlError):
        return EXIT_URL
    if isinstance(exc, ChecksumMismatchError):
        return EXIT_CHECKSUM
    if isinstance(exc, RemoteChangedError):
        return EXIT_CHANGED
    if isinstance(exc, DownloadLockedError):
        return EXIT_LOCKED
    if formats is not None and isinstance(exc, formats.FormatError):
        return EXIT_FORMAT
    if isinstance(exc, PartialDownloadError) and exc.bytes_done > 0:
        return EXIT_PARTIAL
    if isinstance(exc, NetworkError):
        # What the client library saw first: refusals are reported by urllib3 as connect
        # "timeouts", so look at the socket error underneath before the typed one.
        for cause in causes(exc):
            if isinstance(cause, socket.gaierror):
                return EXIT_RESOLVE
            if isinstance(cause, ConnectionRefusedError):
                return EXIT_NETWORK
        for cause in causes(exc):
            if isinstance(cause, TLSError):
                return EXIT_TLS
            if isinstance(cause, RangeNotSupportedError):
                return EXIT_RANGES
            if isinstance(cause, HTTPStatusError):
                return EXIT_HTTP
            if isinstance(cause, NetworkTimeoutError):
                return EXIT_TIMEOUT
            if isinstance(cause, ProtocolError):
                return EXIT_PROTOCOL
        if isinstance(exc, PartialDownloadError):
            return EXIT_PARTIAL
        return EXIT_NETWORK
    if isinstance(exc, RangeioError):
        return EXIT_ERROR
    if isinstance(exc, OSError):
        return EXIT_WRITE
    return EXIT_ERROR
