"""FaultServer's pure answer builders: request + resource + Faults in, an answer and its wire plan out."""

from __future__ import annotations

import email.utils
import gzip
import hashlib
import http
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

try:
    import h11
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "rangeio.testing needs the h11 package: pip install 'rangeio[testing]'"
    ) from exc

from rangeio.testing.faults import Faults

EtagMode = Literal["strong", "weak", "none"]
_Ending = Literal["keep", "fin", "reset"]
_RANGE_SPEC = re.compile(r"([0-9]*)-([0-9]*)")


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it; header names are lower case."""

    method: str
    path: str
    headers: dict[str, str]
    query: str = ""

    @property
    def range(self) -> str | None:
        return self.headers.get("range")


@dataclass(frozen=True)
class _Resource:
    """An immutable version of one file: a request works on the version it started with."""

    data: bytes
    version: int
    etag: str | None
    last_modified: str | None
    content_type: str


@dataclass(frozen=True)
class _FileSettings:
    etag_mode: EtagMode
    last_modified: bool
    content_type: str
    mtime_base: int


@dataclass
class _Reply:
    """An answer before framing: headers exclude Content-Length and Transfer-Encoding."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""


@dataclass(frozen=True)
class _RangeSpec:
    first: int | None  # None for a suffix range
    last: int | None  # the suffix length for a suffix range; None for an open range

    @property
    def is_suffix(self) -> bool:
        return self.first is None


@dataclass
class _WirePlan:
    """Exactly what goes on the socket for one answer, and how the connection ends."""

    status: int
    headers: list[tuple[str, str]]
    payload: bytes
    chunked: bool
    ending: _Ending


# -- pure helpers: building answers --------------------------------------------------------


def _make_resource(data: bytes, version: int, settings: _FileSettings) -> _Resource:
    digest = hashlib.sha256(version.to_bytes(8, "big") + data).hexdigest()[:20]
    etag = {"strong": f'"{digest}"', "weak": f'W/"{digest}"', "none": None}[settings.etag_mode]
    last_modified = None
    if settings.last_modified:
        last_modified = email.utils.formatdate(settings.mtime_base + version, usegmt=True)
    return _Resource(data, version, etag, last_modified, settings.content_type)


def _recorded(event: h11.Request) -> RecordedRequest:
    headers: dict[str, str] = {}
    for name, value in event.headers:
        key, text = name.decode("latin-1").lower(), value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    target = event.target.decode("latin-1")
    path, _, query = target.partition("?")
    return RecordedRequest(event.method.decode("latin-1"), path, headers, query)


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def _text_reply(status: int, text: str, extra: list[tuple[str, str]] | None = None) -> _Reply:
    headers = [("Content-Type", "text/plain; charset=utf-8"), *(extra or [])]
    return _Reply(status, headers, (text + "\n").encode())


def _early_fault_reply(method: str, faults: Faults) -> _Reply | None:
    """Answers that faults give without looking at the file at all."""
    if method == "HEAD" and faults.refuse_head:
        return _text_reply(405, "HEAD refused", [("Allow", "GET")])
    if faults.redirect_to is not None:
        return _text_reply(faults.redirect_status, "moved", [("Location", faults.redirect_to)])
    if faults.status is not None:
        extra = [("Retry-After", faults.retry_after)] if faults.retry_after is not None else []
        if faults.status in (204, 304):  # statuses that cannot carry a body
            return _Reply(faults.status, extra)
        return _text_reply(faults.status, "injected status", extra)
    return None


def _serve_resource(request: RecordedRequest, resource: _Resource, faults: Faults) -> _Reply:
    headers = request.headers
    if not _if_match_passes(headers.get("if-match"), resource):
        return _Reply(412, _validators(resource))
    if not faults.ignore_conditionals and _not_modified(request, resource):
        return _Reply(304, _validators(resource))
    range_value = headers.get("range")
    # RFC 9110 14.2: only GET has range semantics; a failed If-Range means "send it all".
    if (
        request.method != "GET"
        or range_value is None
        or faults.ignore_range
        or not _if_range_passes(headers.get("if-range"), resource)
    ):
        return _full_reply(resource)
    if faults.always_416:
        return _unsatisfiable_reply(resource)
    specs = _parse_range_header(range_value)
    if specs is None or (faults.max_ranges is not None and len(specs) > faults.max_ranges):
        return _full_reply(resource)
    if faults.suffix_501 and any(spec.is_suffix for spec in specs):
        return _text_reply(501, "suffix ranges not implemented")
    ranges = _resolve_ranges(specs, len(resource.data))
    if not ranges:
        return _unsatisfiable_reply(resource)
    if faults.multipart_parts:
        first = ranges[0][0]
        count = min(faults.multipart_parts, len(resource.data) - first)
        return _multipart_reply(resource, [(i, i) for i in range(first, first + count)], faults)
    if len(ranges) == 1:
        return _single_range_reply(resource, ranges[0], faults)
    return _multipart_reply(resource, ranges, faults)


def _validators(resource: _Resource) -> list[tuple[str, str]]:
    headers = [("Accept-Ranges", "bytes")]
    if resource.etag is not None:
        headers.append(("ETag", resource.etag))
    if resource.last_modified is not None:
        headers.append(("Last-Modified", resource.last_modified))
    return headers


def _full_reply(resource: _Resource) -> _Reply:
    headers = [*_validators(resource), ("Content-Type", resource.content_type)]
    return _Reply(200, headers, resource.data)


def _unsatisfiable_reply(resource: _Resource) -> _Reply:
    headers = [*_validators(resource), ("Content-Range", f"bytes */{len(resource.data)}")]
    return _Reply(416, headers)


def _shaped(span: tuple[int, int], size: int, faults: Faults) -> tuple[int, int]:
    """The range a shifting or block-aligning server answers ``span`` with (inclusive)."""
    first, last = span
    shift, block = faults.content_range_shift, faults.align_ranges
    first, last = first + shift, last + shift
    if block:
        first, last = first - first % block, last - last % block + block - 1
    return min(max(first, 0), size - 1), min(max(last, 0), size - 1)


def _single_range_reply(resource: _Resource, span: tuple[int, int], faults: Faults) -> _Reply:
    first, last = _shaped(span, len(resource.data), faults)
    headers = [
        *_validators(resource),
        ("Content-Type", resource.content_type),
        ("Content-Range", _content_range(first, last, len(resource.data), faults)),
    ]
    return _Reply(206, headers, resource.data[first : last + 1])


def _multipart_reply(resource: _Resource, spans: list[tuple[int, int]], faults: Faults) -> _Reply:
    boundary = "rangeio-" + secrets.token_hex(12)
    parts = []
    shaped = [_shaped(span, len(resource.data), faults) for span in spans]
    for i, (first, last) in enumerate(shaped):
        body = resource.data[first : last + 1]
        if faults.overlapping_parts and len(shaped) > 1 and i == len(shaped) - 1:
            first, last = shaped[0]
            body = bytes(255 - b for b in resource.data[first : last + 1])
        content_range = _content_range(first, last, len(resource.data), faults)
        head = (
            f"--{boundary}\r\n"
            f"Content-Type: {resource.content_type}\r\n"
            f"Content-Range: {content_range}\r\n\r\n"
        )
        parts.append(head.encode("latin-1") + body + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode("latin-1"))
    declared = {None: f"; boundary={boundary}", "missing": "", "wrong": "; boundary=not-the-one"}
    headers = [
        *_validators(resource),
        ("Content-Type", "multipart/byteranges" + declared[faults.bad_boundary]),
    ]
    return _Reply(206, headers, b"".join(parts))


def _content_range(first: int, last: int, total: int, faults: Faults) -> str:
    total_text = "*" if faults.star_total else str(total + faults.total_delta)
    return f"bytes {first}-{last}/{total_text}"


# -- pure helpers: headers -----------------------------------------------------------------


def _parse_range_header(value: str) -> list[_RangeSpec] | None:
    """The range-specs of a bytes Range header, or None if it is malformed (and so ignored)."""
    unit, sep, range_set = value.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    specs = []
    for item in range_set.split(","):
        item = item.strip()
        if not item:
            continue  # RFC 9110 list syntax tolerates empty elements
        match = _RANGE_SPEC.fullmatch(item)
        if match is None or match.group(0) == "-":
            return None
        first_text, last_text = match.groups()
        if not first_text:
            specs.append(_RangeSpec(None, int(last_text)))
            continue
        first, last = int(first_text), int(last_text) if last_text else None
        if last is not None and last < first:
            return None
        specs.append(_RangeSpec(first, last))
    return specs or None


def _resolve_ranges(specs: list[_RangeSpec], length: int) -> list[tuple[int, int]]:
    """Inclusive (first, last) pairs of the satisfiable specs, in request order."""
    spans = []
    for spec in specs:
        if spec.first is None:
            suffix = spec.last or 0
            if suffix > 0 and length > 0:
                spans.append((max(0, length - suffix), length - 1))
        elif spec.first < length:
            last = length - 1 if spec.last is None else min(spec.last, length - 1)
            spans.append((spec.first, last))
    return spans


def _split_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _if_match_passes(value: str | None, resource: _Resource) -> bool:
    if value is None or value.strip() == "*":
        return True
    return any(_strong_match(tag, resource.etag) for tag in _split_list(value))


def _if_range_passes(value: str | None, resource: _Resource) -> bool:
    if value is None:
        return True
    value = value.strip()
    if value.startswith(('"', "W/")):
        return _strong_match(value, resource.etag)
    return _same_date(value, resource.last_modified)


def _not_modified(request: RecordedRequest, resource: _Resource) -> bool:
    """RFC 9110 §13.1.2/§13.1.3 for GET and HEAD: If-None-Match (weak comparison) decides when
    sent; else If-Modified-Since, when the file has not changed since that date."""
    if request.method not in ("GET", "HEAD"):
        return False
    none_match = request.headers.get("if-none-match")
    if none_match is not None:
        if none_match.strip() == "*":
            return True
        tags = [t.removeprefix("W/") for t in _split_list(none_match)]
        return resource.etag is not None and resource.etag.removeprefix("W/") in tags
    since = request.headers.get("if-modified-since")
    if since is None or resource.last_modified is None:
        return False
    try:
        asked = email.utils.parsedate_to_datetime(since)
        modified = email.utils.parsedate_to_datetime(resource.last_modified)
    except (TypeError, ValueError):
        return False
    return modified <= asked


def _strong_match(tag: str, etag: str | None) -> bool:
    # Strong comparison: a weak tag on either side never matches.
    return etag is not None and not etag.startswith("W/") and tag == etag


def _same_date(value: str, last_modified: str | None) -> bool:
    if last_modified is None:
        return False
    try:
        return email.utils.parsedate_to_datetime(value) == email.utils.parsedate_to_datetime(
            last_modified
        )
    except (TypeError, ValueError):
        return False


# -- pure helpers: framing -----------------------------------------------------------------


def _plan_wire(reply: _Reply, method: str, faults: Faults | None) -> _WirePlan:
    """Frame a reply: encoding, length, and the transfer faults that bend the framing."""
    headers = [*reply.headers, ("Date", email.utils.formatdate(usegmt=True))]
    body = reply.body
    faulty = faults is not None and method == "GET" and reply.status in (200, 206)
    if faulty and faults is not None:
        headers.extend(faults.extra_headers)
        headers.extend((f"X-Flood-{i}", "f") for i in range(faults.header_flood))
        if faults.huge_header:
            headers.append(("X-Huge", "h" * faults.huge_header))
    if faulty and faults is not None and faults.gzip:
        body = gzip.compress(body, mtime=0)
        headers.append(("Content-Encoding", "gzip"))
    if method == "HEAD":
        headers.append(("Content-Length", str(len(body))))
        return _WirePlan(reply.status, headers, b"", False, "keep")
    if not faulty or faults is None:
        headers.append(("Content-Length", str(len(body))))
        return _WirePlan(reply.status, headers, body, False, "keep")
    return _plan_faulty_body(reply.status, headers, body, faults)


def _plan_faulty_body(
    status: int, headers: list[tuple[str, str]], body: bytes, faults: Faults
) -> _WirePlan:
    payload = body
    ending: _Ending = "keep"
    if faults.chunked:
        headers.append(("Transfer-Encoding", "chunked"))
    else:
        declared = len(body) + faults.content_length_delta
        if faults.content_length_delta > 0:
            ending = "fin"  # the client waits for bytes that never come, then sees FIN
        elif faults.content_length_delta < 0:
            declared = max(0, declared)
            payload = body[:declared]
        headers.append(("Content-Length", str(declared)))
    if faults.truncate_after is not None:
        payload, ending = payload[: faults.truncate_after], "fin"
    if faults.reset_after is not None:
        payload, ending = payload[: faults.reset_after], "reset"
    return _WirePlan(status, headers, payload, faults.chunked, ending)


def _has_body(plan: _WirePlan, method: str) -> bool:
    return method == "GET" and plan.status in (200, 206)


def _pieces(payload: bytes, chunked: bool) -> Iterator[bytes]:
    # Several chunks, so a chunked answer really exercises the client's chunk decoder.
    if not payload:
        return
    if not chunked:
        yield payload
        return
    step = max(1, -(-len(payload) // 3))
    for start in range(0, len(payload), step):
        yield payload[start : start + step]
