"""The one place a response is judged: request + status + headers in, a typed verdict out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rangeio._core.headers import (
    ContentRange,
    RangeSpec,
    parse_content_length,
    parse_content_range,
)
from rangeio._core.identity import Identity
from rangeio._core.ranges import ByteRange
from rangeio._core.records import Record
from rangeio._core.retry import TRANSIENT_STATUSES, parse_retry_after
from rangeio.errors import (
    HeaderParseError,
    HTTPStatusError,
    ProtocolError,
    RangeioError,
    RangeNotSupportedError,
    RemoteChangedError,
)

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

# A server may send any number of 1xx interim responses (103 Early Hints, 102 Processing)
# before the answer (RFC 9110 §15.2); a client skips them. 101 Switching Protocols is not
# interim: it ends HTTP on that connection, so it is the (unusable) answer. Past this many in
# a row the server is not heading for an answer: the connection is cut (a transient failure).
MAX_INTERIM_RESPONSES = 32


def is_interim(status: int) -> bool:
    """Whether ``status`` is an interim response to skip while waiting for the answer."""
    return 100 <= status < 200 and status != 101


class Verdict(Record):
    """Base of every verdict. ``error()`` is the typed exception a shell raises when it cannot use
    the verdict; verdicts that carry bytes have no error. Verdicts are Records (`records.py`),
    not dataclasses: one is made per response, and nine dataclasses cost ~5 ms at import."""

    __slots__ = ()

    def error(self) -> RangeioError:
        raise TypeError(f"{type(self).__name__} is not a failure")


class Partial(Verdict):
    """206 whose body holds ``range``, the bytes its Content-Range names.

    ``asked`` is None when that is exactly what was asked for. Otherwise it is the range asked
    for, which ``range`` overlaps without matching: a range-aligning cache widened the answer, or
    a server shifted or shortened it. Such an answer is honest about its bytes, so the bytes it
    shares with ``asked`` are used and the rest is asked for again (the exchange decides how).
    """

    __slots__ = ("range", "total", "identity", "asked")
    range: ByteRange
    total: int | None
    identity: Identity
    asked: ByteRange | None

    def __init__(
        self,
        range: ByteRange,
        total: int | None,
        identity: Identity,
        asked: ByteRange | None = None,
    ) -> None:
        object.__setattr__(self, "range", range)
        object.__setattr__(self, "total", total)
        object.__setattr__(self, "identity", identity)
        object.__setattr__(self, "asked", asked)

    @property
    def wanted(self) -> ByteRange:
        """The bytes the request asked for (resolved against the size)."""
        return self.asked if self.asked is not None else self.range


class Multipart(Verdict):
    """206 multipart/byteranges answering a multi-range request (§14.6); parts are checked one by
    one by the multipart parser."""

    __slots__ = ("boundary", "identity")
    boundary: str
    identity: Identity

    def __init__(self, boundary: str, identity: Identity) -> None:
        object.__setattr__(self, "boundary", boundary)
        object.__setattr__(self, "identity", identity)


class Full(Verdict):
    """200 with the whole representation. ``range_ignored`` is True when a Range was sent (§14.2
    lets a server ignore it); ``length`` is None for a body of unknown length."""

    __slots__ = ("length", "identity", "range_ignored")
    length: int | None
    identity: Identity
    range_ignored: bool

    def __init__(self, length: int | None, identity: Identity, range_ignored: bool) -> None:
        object.__setattr__(self, "length", length)
        object.__setattr__(self, "identity", identity)
        object.__setattr__(self, "range_ignored", range_ignored)


class Unsatisfiable(Verdict):
    """416: no byte of the range exists; ``total`` from ``Content-Range: bytes */L`` if sent."""

    __slots__ = ("total",)
    total: int | None

    def __init__(self, total: int | None) -> None:
        object.__setattr__(self, "total", total)

    def error(self) -> RangeioError:
        return HTTPStatusError(
            f"range not satisfiable (size {self.total if self.total is not None else 'unknown'})",
            status=416,
        )


class Changed(Verdict):
    __slots__ = ("reason",)
    reason: str

    def __init__(self, reason: str) -> None:
        object.__setattr__(self, "reason", reason)

    def error(self) -> RangeioError:
        return RemoteChangedError(f"remote file changed: {self.reason}")


class Encoded(Verdict):
    """A Content-Encoding other than identity: the body is not the bytes of the file (§8.4), and
    ranges of an encoded stream cannot be spliced."""

    __slots__ = ("encoding",)
    encoding: str

    def __init__(self, encoding: str) -> None:
        object.__setattr__(self, "encoding", encoding)

    def error(self) -> RangeioError:
        return RangeNotSupportedError(
            f"server sent Content-Encoding {self.encoding!r} despite Accept-Encoding: identity"
        )


class NotModified(Verdict):
    """304 answering the open's conditional request (the disk cache's revalidation): the
    version the precondition named is current. ``identity`` holds the validators it sent."""

    __slots__ = ("identity",)
    identity: Identity

    def __init__(self, identity: Identity) -> None:
        object.__setattr__(self, "identity", identity)


class Redirect(Verdict):
    __slots__ = ("status", "location")
    status: int
    location: str

    def __init__(self, status: int, location: str) -> None:
        object.__setattr__(self, "status", status)
        object.__setattr__(self, "location", location)


class Failure(Verdict):
    __slots__ = ("status", "is_transient", "retry_after", "reason")
    status: int
    is_transient: bool
    retry_after: float | None
    reason: str

    def __init__(
        self, status: int, is_transient: bool, retry_after: float | None, reason: str
    ) -> None:
        object.__setattr__(self, "status", status)
        object.__setattr__(self, "is_transient", is_transient)
        object.__setattr__(self, "retry_after", retry_after)
        object.__setattr__(self, "reason", reason)

    def error(self) -> RangeioError:
        return HTTPStatusError(
            f"HTTP {self.status}: {self.reason}",
            status=self.status,
            is_transient=self.is_transient,
            retry_after=self.retry_after,
        )


class Malformed(Verdict):
    """The server broke a protocol rule; nothing in the body may be used."""

    __slots__ = ("reason",)
    reason: str

    def __init__(self, reason: str) -> None:
        object.__setattr__(self, "reason", reason)

    def error(self) -> RangeioError:
        return ProtocolError(self.reason)


def judge(
    requested: Sequence[RangeSpec],
    status: int,
    headers: Mapping[str, str],
    pinned: Identity | None,
    *,
    now: float,
    conditional: bool = False,
) -> Verdict:
    """Judge one response. ``requested`` is the Range that was sent (empty for a plain GET);
    ``headers`` are folded (lower-case names); ``now`` is epoch seconds, for Retry-After dates;
    ``conditional``: the request carried If-None-Match or If-Modified-Since (a 304 may answer)."""
    if status in _REDIRECT_STATUSES:
        location = headers.get("location")
        if not location:
            return Malformed(f"redirect {status} without a Location header")
        return Redirect(status, location)
    if status == 412:
        # We only send preconditions built from the pinned identity, so failing one means the
        # file is no longer that version (§13.1.1).
        return Changed("precondition failed (412): the ETag no longer matches")
    if status == 416:
        return _judge_416(requested, headers, pinned)
    if status == 304 and conditional:
        return NotModified(Identity.from_headers(headers, None))
    if status not in (200, 206):
        return Failure(
            status,
            status in TRANSIENT_STATUSES,
            parse_retry_after(headers.get("retry-after"), now),
            _reason_for(status),
        )

    encoding = headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        return Encoded(encoding)
    try:
        length = parse_content_length(headers.get("content-length"))
        if status == 206:
            return _judge_206(requested, headers, length, pinned)
    except HeaderParseError as exc:
        return Malformed(str(exc))

    raw = headers.get("content-range")
    if raw is not None:
        try:
            length = _whole_length(raw, length)
        except HeaderParseError as exc:
            return Malformed(str(exc))
    identity = Identity.from_headers(headers, length)
    conflict = pinned.conflict_with(identity) if pinned is not None else None
    if conflict is not None:
        return Changed(conflict)
    return Full(length, identity, range_ignored=bool(requested))


def _whole_length(raw: str, length: int | None) -> int | None:
    """The length of a 200 that carries a Content-Range. §14.4 gives the header no meaning on a
    200, but a 200 saying ``bytes 900-999/1000`` with a 100-byte body is a range answer with the
    wrong status (a proxy rewrote it, say): taking it as the whole file would make the file 100
    bytes long. So the header must describe the whole body, or nothing of it is used."""
    content_range = parse_content_range(raw)
    total = content_range.total
    got = content_range.range
    if got is not None and (got.start != 0 or total is None or got.stop != total):
        raise HeaderParseError(
            f"200 with Content-Range {raw!r}: a part of the file sent as if it were the whole"
        )
    if total is not None and length is not None and total != length:
        raise HeaderParseError(f"200 with Content-Range {raw!r} and Content-Length {length}")
    return length if length is not None else total


def _judge_206(
    requested: Sequence[RangeSpec],
    headers: Mapping[str, str],
    length: int | None,
    pinned: Identity | None,
) -> Verdict:
    if not requested:
        return Malformed("206 Partial Content answering a request without Range")
    content_type = headers.get("content-type", "")
    if content_type.lower().lstrip().startswith("multipart/byteranges"):
        if len(requested) < 2:
            # §14.6 lets a server send one range as multipart; we never ask that, so we refuse it
            # rather than carry a second body format through the single-range paths.
            return Malformed("multipart/byteranges answering a single-range request")
        boundary = _boundary(content_type)
        if boundary is None:
            return Malformed("multipart/byteranges without a usable boundary parameter")
        identity = Identity.from_headers(headers, None)
        conflict = pinned.conflict_with(identity) if pinned is not None else None
        return Changed(conflict) if conflict else Multipart(boundary, identity)

    raw = headers.get("content-range")
    if raw is None:
        return Malformed("206 without Content-Range")
    content_range = parse_content_range(raw)
    if content_range.range is None:
        return Malformed(f"206 with an unsatisfied Content-Range {raw!r}")
    identity = Identity.from_headers(headers, content_range.total)
    conflict = pinned.conflict_with(identity) if pinned is not None else None
    if conflict is not None:
        return Changed(conflict)
    if len(requested) != 1:
        # §14.6 allows one part to answer several ranges when they coalesce; we only send
        # multi-range requests whose parts are far apart, so any single range must cover all.
        return _check_covers(requested, content_range, length, identity)
    spec = requested[0]
    got = content_range.range
    expected = expected_range(spec, content_range.total, pinned)
    if expected is None and spec.start is not None and spec.stop is None:
        # `bytes=N-` answered with `a-b/*`: the size is unknown, so the answer can only be
        # checked to hold byte N; the body length then comes from b (checked as it streams).
        if got.start <= spec.start < got.stop:
            expected = ByteRange(spec.start, got.stop)
    if expected is None:
        return Malformed(f"cannot check Content-Range {raw!r}: the size is unknown")
    size = content_range.total if content_range.total is not None else identity_size(pinned)
    if size is not None and got.stop > size:
        return Malformed(f"Content-Range {raw!r} runs past the end of the file ({size} bytes)")
    if length is not None and length != got.length:
        return Malformed(f"Content-Length {length} does not match Content-Range {raw!r}")
    if got == expected:
        return Partial(expected, content_range.total, identity)
    if not got.overlaps(expected):
        # Judgement call: not retried. A server that answers another range than the one asked
        # (a cache aligning ranges, a broken rewrite) answers the same way next time.
        return Malformed(
            f"Content-Range {raw!r} holds none of the requested "
            f"{requested[0].header_value()} (expected {expected})"
        )
    # Shifted, widened or shortened, but honest about which bytes it holds: use them.
    return Partial(got, content_range.total, identity, asked=expected)


def identity_size(identity: Identity | None) -> int | None:
    return identity.size if identity is not None else None


def size_contradiction(size: int, validated_stop: int) -> Changed | None:
    """A size learned after bytes were validated (a HEAD after a ``/*`` total, say) that leaves
    some of them outside the file. Judgement call: RemoteChangedError, as for any other size
    change (the bytes we hold are not of the file the server now describes); the file is never
    shrunk to fit, which would silently drop or misplace bytes already handed out."""
    if size < validated_stop:
        return Changed(
            f"the server now says the size is {size}, but bytes up to {validated_stop} "
            f"were already received"
        )
    return None


def expected_range(spec: RangeSpec, total: int | None, pinned: Identity | None) -> ByteRange | None:
    """The exact bytes a correct 206 answers ``spec`` with, given what is known of the size."""
    size = total if total is not None else (pinned.size if pinned is not None else None)
    if size is not None:
        return spec.resolve(size)
    if spec.start is not None and spec.stop is not None:
        # Size unknown (`/*`): a closed range can only be answered in full.
        return ByteRange(spec.start, spec.stop)
    return None


def _check_covers(
    requested: Sequence[RangeSpec],
    content_range: ContentRange,
    length: int | None,
    identity: Identity,
) -> Verdict:
    got = content_range.range
    assert got is not None
    for spec in requested:
        want = expected_range(spec, content_range.total, None)
        if want is None or not got.contains(want):
            return Malformed(
                f"single-part 206 {got} does not cover requested {spec.header_value()}"
            )
    if length is not None and length != got.length:
        return Malformed(f"Content-Length {length} does not match Content-Range {got}")
    return Partial(got, content_range.total, identity)


def _judge_416(
    requested: Sequence[RangeSpec], headers: Mapping[str, str], pinned: Identity | None
) -> Verdict:
    raw = headers.get("content-range")
    if raw is None:
        return Unsatisfiable(None)
    try:
        content_range = parse_content_range(raw)
    except HeaderParseError as exc:
        return Malformed(str(exc))
    if content_range.range is not None:
        return Malformed(f"416 with a satisfied Content-Range {raw!r}")
    if content_range.total is not None:
        for spec in requested:
            if spec.resolve(content_range.total) is not None:
                return Malformed(
                    f"416 for {spec.header_value()}, which lies inside the file of "
                    f"{content_range.total} bytes"
                )
    if pinned is not None and pinned.size is not None and content_range.total is not None:
        if pinned.size != content_range.total:
            return Changed(f"size changed from {pinned.size} to {content_range.total}")
    return Unsatisfiable(content_range.total)


def _boundary(content_type: str) -> str | None:
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "boundary":
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            # RFC 2046 §5.1.1: 1 to 70 characters.
            return value if 0 < len(value) <= 70 else None
    return None


def _reason_for(status: int) -> str:
    reasons = {
        400: "bad request",
        401: "unauthorized",
        403: "forbidden",
        404: "not found",
        405: "method not allowed",
        408: "request timeout",
        410: "gone",
        429: "too many requests",
        500: "internal server error",
        501: "not implemented",
        502: "bad gateway",
        503: "service unavailable",
        504: "gateway timeout",
    }
    return reasons.get(status, "unexpected status")
