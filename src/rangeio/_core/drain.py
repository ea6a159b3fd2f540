"""Whether the unread rest of a response body is drained (the connection kept) or dropped.

A body that is not read to its end leaves its bytes on the socket, so the connection cannot carry
another request and is dropped: the next request pays a new TCP (and TLS) handshake. That is the
price of every error status whose body rangeio never reads (the 404s of sidecar probes, a 503
before its retry, a redirect's little page), of a multipart body closed after its close delimiter
(with at most a CRLF after it), and of a widened 206 whose tail is not needed. Reading a small,
framed rest instead keeps the connection: the rule here says when that is worth it.

A body's end is known only from its framing (RFC 9112 §6.3): none (HEAD, 1xx, 204, 304), a
Content-Length, or chunked coding. A close-delimited body ends only when the server closes, and a
body of unknown length may be endless, so both are dropped. Draining is bounded twice: in bytes
(``DRAIN_BYTES``) and in time (``DRAIN_SECONDS``, on top of every wait's own bound, the
low-speed floor and the read timeout), so a dripping or endless rest costs at most that.
"""

from __future__ import annotations

from collections.abc import Mapping

from rangeio._core.headers import parse_content_length
from rangeio.errors import HeaderParseError

# At most this many bytes are read to keep a connection. Error pages are small (nginx's are
# about 150 bytes, S3's XML errors under 1 KiB, Chromium's drainer notes "typically a small page
# just a few hundred bytes long"), and a multipart epilogue is a CRLF. 64 KiB is one or two
# socket reads on any link, far less than the handshakes a new connection costs; past it, the
# body is no error page and a new connection is cheaper. Peers: Go's client reads up to 2 KiB of
# a redirect's body for the same reason (maxBodySlurpSize), go-retryablehttp 4 KiB before a
# retry, Chromium's HttpResponseBodyDrainer drains a discarded body in the background; urllib3's
# drain_conn and requests' redirect handling read the whole rest, without a cap.
DRAIN_BYTES = 64 * 1024

# A drain runs before the caller gets its answer (the error, the bytes), so it must be short: a
# rest that has not arrived within a second is not worth the wait, since a new connection costs
# one to three round trips. Chromium gives up after 5 s, but its drainer runs in the background.
DRAIN_SECONDS = 1.0

# Statuses whose response never has a body (RFC 9112 §6.3 items 1 and 2).
_NO_BODY_STATUSES = frozenset({204, 304})


def drain_budget(
    *, method: str, status: int, headers: Mapping[str, str], received: int = 0
) -> int | None:
    """How many more body bytes may be read to reach the end of this response, so that its
    connection is kept (0: the body is known to be over already, or empty); None when the rest
    must be dropped with the connection. ``headers`` are folded (lower-case names);
    ``received`` counts the body bytes already read (after de-chunking).

    - no body (HEAD, 1xx, 204, 304): 0;
    - ``Connection: close``: None, the server closes it whatever is read;
    - chunked: ``DRAIN_BYTES`` (the drain gives up past it);
    - a Content-Length: what remains, if it is at most ``DRAIN_BYTES``;
    - close-delimited (neither), or framing that cannot be trusted: None.
    """
    if "close" in _tokens(headers.get("connection", "")):
        return None
    if method == "HEAD" or 100 <= status < 200 or status in _NO_BODY_STATUSES:
        return 0
    coding = headers.get("transfer-encoding")
    if coding is not None:
        # §6.3 item 4: chunked must be the last coding, or the body is close-delimited; with a
        # Content-Length as well, the message is a smuggling risk and its framing is not trusted.
        codings = _tokens(coding)
        if not codings or codings[-1] != "chunked" or "content-length" in headers:
            return None
        return DRAIN_BYTES
    try:
        length = parse_content_length(headers.get("content-length"))
    except HeaderParseError:
        return None
    if length is None or received > length:
        return None
    remaining = length - received
    return remaining if remaining <= DRAIN_BYTES else None


def _tokens(value: str) -> list[str]:
    return [token.strip(" \t").lower() for token in value.split(",") if token.strip(" \t")]
