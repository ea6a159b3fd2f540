"""Faults: every misbehaviour FaultServer can switch on for a path, one field each, checked once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

_REDIRECT_STATUSES = frozenset({300, 301, 302, 303, 307, 308})


@dataclass(frozen=True, kw_only=True)
class Faults:
    """Ways to misbehave; every field defaults to off.

    A Faults applies to every GET of the paths it covers, and to HEAD only when it has
    ``refuse_head`` or ``on_head``. ``times`` limits it to the first ``times`` requests it
    applies to (counted across all paths for the global Faults); after that the server
    behaves normally; ``skip`` answers the first ``skip`` of them normally first (so a
    download's first request works and its later segments' requests fail). Body and framing
    faults touch only 200 and 206 answers to GET.

    - ``ignore_range``: answer range requests with 200 and the whole body.
    - ``content_range_shift``: answer each range moved by this many bytes (clipped to the file),
      honestly: Content-Range names the bytes the body holds, as a server or cache that serves
      other ranges than asked does.
    - ``align_ranges``: round each range out to multiples of this many bytes (clipped to the
      file), like a cache that stores a file in blocks and answers whole blocks (honestly).
    - ``content_length_delta``: > 0 declares more than is sent, then closes; < 0 declares
      and sends fewer bytes, keeping the connection.
    - ``truncate_after``: send this many body bytes, then close (FIN).
    - ``reset_after``: send this many body bytes, then reset (RST); 0 resets before answering.
    - ``gzip``: gzip the body, with Content-Encoding: gzip (Content-Range stays identity).
    - ``status`` and ``retry_after``: answer with this status and Retry-After.
    - ``redirect_to`` and ``redirect_status``: redirect there (absolute or relative).
    - ``suffix_501``: answer suffix ranges (``bytes=-N``) with 501.
    - ``always_416``: answer every request that has a Range header with 416.
    - ``star_total``: Content-Range totals are ``*``.
    - ``refuse_head``: HEAD gets 405.
    - ``delay``: seconds to wait before answering.
    - ``chunked``: Transfer-Encoding: chunked, no Content-Length.
    - ``change_after``: after this many GETs of a path, its content changes once (reversed).
    - ``throttle``: send the body at most this many bytes per second (in 16 KiB pieces), so a
      client can be interrupted mid-body at a moment of the test's choosing.
    - ``link_rate``: send the bodies of every paced answer together at most this many bytes per
      second (16 KiB pieces, taking turns): one link's capacity, however many connections
      share it (``throttle`` is per answer: a per-connection cap).
    - ``extra_headers``: add these response headers (digests, say) to 200 and 206 answers.
    - ``on_head``: HEAD gets ``delay``, ``reset_after=0``, ``status`` and ``redirect_to`` too.
    - ``multipart_parts``: answer every range request (single ones too) with a
      multipart/byteranges body of this many 1-byte parts, from the first byte asked for on
      (so they outnumber, and soon lie outside, the ranges asked for).
    - ``bad_boundary``: multipart answers declare no boundary (``"missing"``) or one the body
      never uses (``"wrong"``).
    - ``endless``: after the body, send filler bytes until the client hangs up; the framing
      (``chunked`` never terminated, or a Content-Length, true or not) stays as declared. After
      a multipart body this is an epilogue that never ends.
    - ``overlapping_parts``: multipart answers repeat the first part's range, with other bytes,
      in place of the last part (the part count stays that of the ranges asked for).
    - ``drip``: send the body one byte at a time, this many seconds apart (slow loris).
    - ``header_flood``: add this many small headers to 200 and 206 answers.
    - ``huge_header``: add one header whose value is this many bytes to 200 and 206 answers.
    - ``total_delta``: Content-Range totals (206 and multipart parts) claim this many more bytes
      than the file has (the ranges and bodies stay true).
    - ``early_hints``: send this many ``103 Early Hints`` interim responses (with a Link header)
      before the answer.
    - ``drip_head``: send the answer's status line and headers one byte at a time, this many
      seconds apart (then the body at once): a slow-loris head.
    - ``endless_trailers``: send 200 and 206 bodies chunked, then after the last chunk one
      trailer line every this many seconds, never the blank line that ends them.
    - ``max_ranges``: answer a request for more than this many ranges with 200 and the whole
      body, as nginx's ``max_ranges`` and Apache's ``MaxRanges`` do; 1 is a server that never
      answers multipart (S3).
    - ``ignore_conditionals``: ignore ``If-None-Match`` and ``If-Modified-Since`` (answer as if
      they were not sent, never 304), as servers and proxies without conditional GETs do.
    """

    times: int | None = None
    skip: int = 0
    ignore_range: bool = False
    content_range_shift: int = 0
    align_ranges: int = 0
    content_length_delta: int = 0
    truncate_after: int | None = None
    reset_after: int | None = None
    gzip: bool = False
    status: int | None = None
    retry_after: str | None = None
    redirect_to: str | None = None
    redirect_status: int = 302
    suffix_501: bool = False
    always_416: bool = False
    star_total: bool = False
    refuse_head: bool = False
    delay: float = 0.0
    throttle: float = 0.0
    link_rate: float = 0.0
    extra_headers: tuple[tuple[str, str], ...] = ()
    chunked: bool = False
    change_after: int | None = None
    on_head: bool = False
    multipart_parts: int = 0
    bad_boundary: Literal["missing", "wrong"] | None = None
    endless: bool = False
    drip: float = 0.0
    header_flood: int = 0
    huge_header: int = 0
    total_delta: int = 0
    overlapping_parts: bool = False
    early_hints: int = 0
    drip_head: float = 0.0
    endless_trailers: float = 0.0
    max_ranges: int | None = None
    ignore_conditionals: bool = False

    def __post_init__(self) -> None:
        if self.times is not None and self.times < 0:
            raise ValueError("times must be >= 0")
        if self.skip < 0:
            raise ValueError("skip must be >= 0")
        for name in ("truncate_after", "reset_after"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.change_after is not None and self.change_after < 1:
            raise ValueError("change_after must be >= 1")
        if self.delay < 0:
            raise ValueError("delay must be >= 0")
        if self.throttle < 0:
            raise ValueError("throttle must be >= 0")
        if self.link_rate < 0:
            raise ValueError("link_rate must be >= 0")
        for name in (
            "multipart_parts",
            "drip",
            "header_flood",
            "huge_header",
            "align_ranges",
            "early_hints",
            "drip_head",
            "endless_trailers",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.max_ranges is not None and self.max_ranges < 1:
            raise ValueError("max_ranges must be >= 1")
        if self.bad_boundary not in (None, "missing", "wrong"):
            raise ValueError("bad_boundary must be None, 'missing' or 'wrong'")
        if self.redirect_status not in _REDIRECT_STATUSES:
            raise ValueError(f"redirect_status must be one of {sorted(_REDIRECT_STATUSES)}")
        # h11 sends 1xx only as interim answers, so they cannot stand in for the answer.
        if self.status is not None and not 200 <= self.status <= 599:
            raise ValueError("status must be in 200..599")

    def applies_to(self, method: str) -> bool:
        if method == "GET":
            return True
        return method == "HEAD" and (self.refuse_head or self.on_head)
