"""Incremental, strict multipart/byteranges parser (RFC 9110 §14.6) with bounded memory."""

from __future__ import annotations

from collections.abc import Sequence

from rangeio._core.headers import fold_headers, parse_content_range
from rangeio._core.ranges import ByteRange, RangeSet
from rangeio._core.records import Record
from rangeio.errors import HeaderParseError, ProtocolError, RemoteChangedError

# A part's header block is a Content-Type and a Content-Range: a few hundred bytes. 8 KiB is
# generous and keeps a hostile server from growing our buffer without bound.
MAX_PART_HEADER_BYTES = 8 * 1024
# RFC 2046 allows a preamble before the first delimiter; nobody sends a large one.
MAX_PREAMBLE_BYTES = 8 * 1024


class Part(Record):
    """One complete part: ``data`` is exactly the bytes of ``range``."""

    __slots__ = ("range", "data")
    range: ByteRange
    data: bytes

    def __init__(self, range: ByteRange, data: bytes) -> None:
        object.__setattr__(self, "range", range)
        object.__setattr__(self, "data", data)


class MultipartParser:
    """Feed the body of a multipart/byteranges 206; collect complete, checked parts.

    Checks: every part has a Content-Range for a range inside what was requested, with the
    expected total; its body is exactly that long; parts are disjoint (a part repeating or
    overlapping another is refused, even with equal bytes: simple and strict, since no correct
    server sends one); parts are at most as many as the ranges asked for; the body ends with the
    close delimiter, and nothing after it is read (``finished``: the epilogue is ignored). Memory is bounded by the requested bytes plus
    the header limits above.
    """

    def __init__(self, boundary: str, requested: Sequence[ByteRange], total: int | None) -> None:
        try:
            encoded = boundary.encode("latin-1")
        except UnicodeEncodeError:
            # Some clients (httpx) decode header values as UTF-8, so any character can arrive;
            # RFC 2046 §5.1.1 allows only ASCII in a boundary, and no body can match this one.
            raise ProtocolError(f"multipart boundary {boundary[:80]!r} is not ASCII") from None
        self._delimiter = b"\r\n--" + encoded
        self._requested = sorted(requested)
        self._total = total
        self._max_parts = len(requested)
        # Pretend a CRLF preceded the body so the first delimiter looks like every later one.
        self._buf = bytearray(b"\r\n")
        self._state = "preamble"
        self._current: ByteRange | None = None
        self._body = bytearray()
        self._seen = RangeSet()
        self.parts: list[Part] = []

    @property
    def finished(self) -> bool:
        return self._state == "done"

    def feed(self, chunk: bytes | bytearray | memoryview) -> None:
        if self._state == "done":
            # RFC 2046 §5.1.1: an epilogue after the close delimiter is ignored.
            return
        self._buf += chunk
        progressing = True
        while progressing and self._state != "done":
            progressing = getattr(self, "_step_" + self._state)()

    def end(self) -> list[Part]:
        """The body is over: return the parts, or raise if it stopped early."""
        if self._state != "done":
            raise ProtocolError(f"multipart body ended early (in {self._state})")
        return self.parts

    # -- states -----------------------------------------------------------------------------

    def _step_preamble(self) -> bool:
        at = self._buf.find(self._delimiter)
        if at < 0:
            if len(self._buf) > MAX_PREAMBLE_BYTES + len(self._delimiter):
                raise ProtocolError("multipart body has no boundary delimiter")
            return False
        del self._buf[: at + len(self._delimiter)]
        self._state = "after_delimiter"
        return True

    def _step_after_delimiter(self) -> bool:
        if len(self._buf) < 2:
            return False
        if self._buf[:2] == b"--":
            self._state = "done"
            return True
        # Transport padding (LWSP) may follow a delimiter before its CRLF (RFC 2046 §5.1.1).
        end = self._buf.find(b"\r\n")
        if end < 0:
            if len(self._buf) > 256:
                raise ProtocolError("multipart delimiter line is not terminated")
            return False
        if self._buf[:end].strip(b" \t"):
            raise ProtocolError("garbage after a multipart delimiter")
        del self._buf[: end + 2]
        self._state = "headers"
        return True

    def _step_headers(self) -> bool:
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buf) > MAX_PART_HEADER_BYTES:
                raise ProtocolError("multipart part headers are too large")
            return False
        block = bytes(self._buf[:end]).decode("latin-1")
        del self._buf[: end + 4]
        self._current = self._part_range(block)
        self._body = bytearray()
        self._state = "body"
        return True

    def _step_body(self) -> bool:
        assert self._current is not None
        need = self._current.length - len(self._body)
        take = min(need, len(self._buf))
        self._body += self._buf[:take]
        del self._buf[:take]
        if len(self._body) < self._current.length:
            return False
        # The part must end exactly here, at the next delimiter.
        if len(self._buf) < len(self._delimiter):
            return False
        if not self._buf.startswith(self._delimiter):
            raise ProtocolError(f"multipart part {self._current} is longer than its Content-Range")
        del self._buf[: len(self._delimiter)]
        self.parts.append(Part(self._current, bytes(self._body)))
        self._body = bytearray()
        self._current = None
        self._state = "after_delimiter"
        return True

    def _part_range(self, block: str) -> ByteRange:
        if len(self.parts) >= self._max_parts:
            raise ProtocolError(
                f"multipart body has more parts than the {self._max_parts} asked for"
            )
        pairs: list[tuple[str, str]] = []
        for line in block.split("\r\n"):
            name, sep, value = line.partition(":")
            if not sep or not name.strip() or name != name.strip():
                raise ProtocolError(f"malformed multipart part header: {line[:80]!r}")
            pairs.append((name, value.strip()))
        headers = fold_headers(pairs)
        raw = headers.get("content-range")
        if raw is None:
            raise ProtocolError("multipart part without Content-Range")
        try:
            content_range = parse_content_range(raw)
        except HeaderParseError as exc:
            raise ProtocolError(str(exc)) from exc
        got = content_range.range
        if got is None:
            raise ProtocolError(f"multipart part with an unsatisfied Content-Range {raw!r}")
        if self._total is not None and content_range.total not in (None, self._total):
            raise RemoteChangedError(
                f"remote file changed: a multipart part says the size is {content_range.total}, "
                f"not {self._total}"
            )
        if not any(r.contains(got) for r in self._requested):
            raise ProtocolError(f"multipart part {got} was not asked for")
        if self._seen.gaps(got) != [got]:
            raise ProtocolError(f"multipart part {got} repeats or overlaps an earlier part")
        self._seen.add(got)
        return got
