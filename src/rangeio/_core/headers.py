"""Parse and format the Range and Content-Range headers (RFC 9110 §14), strictly, with typed errors."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from rangeio._core.ranges import ByteRange
from rangeio._core.records import Record
from rangeio.errors import HeaderParseError

# Numbers longer than this are refused before int() sees them: no real file has a 20-digit size,
# and it keeps a hostile header from costing quadratic time in the int parser.
_MAX_DIGITS = 19
_DIGITS = rf"[0-9]{{1,{_MAX_DIGITS}}}"
_CONTENT_RANGE = re.compile(
    rf"\s*bytes\s+(?:(?P<first>{_DIGITS})-(?P<last>{_DIGITS})|(?P<star>\*))"
    rf"\s*/\s*(?:(?P<total>{_DIGITS})|(?P<unknown>\*))\s*",
    re.ASCII | re.IGNORECASE,
)
_RANGE_SPEC = re.compile(rf"\s*(?P<first>{_DIGITS})?\s*-\s*(?P<last>{_DIGITS})?\s*", re.ASCII)
_RANGE_UNIT = re.compile(r"\s*bytes\s*=(?P<specs>.*)", re.ASCII | re.IGNORECASE | re.DOTALL)
# What `\s` matches under re.ASCII. str.strip() with no argument also eats Unicode spaces such as
# U+00A0, which are not HTTP whitespace: they would turn garbage into an accepted empty element.
_SPACE = " \t\n\r\f\v"


@dataclass(frozen=True, slots=True)
class RangeSpec:
    """One byte-range-spec of a request: closed ``[start, stop)``, open ``start-``, or suffix ``-N``."""

    start: int | None
    stop: int | None = None
    suffix_length: int | None = None

    @classmethod
    def closed(cls, start: int, stop: int) -> RangeSpec:
        if start < 0 or stop <= start:
            raise ValueError(f"a closed range needs 0 <= start < stop, got [{start}, {stop})")
        return cls(start, stop)

    @classmethod
    def of(cls, r: ByteRange) -> RangeSpec:
        return cls.closed(r.start, r.stop)

    @classmethod
    def open_ended(cls, start: int) -> RangeSpec:
        if start < 0:
            raise ValueError("start must be >= 0")
        return cls(start)

    @classmethod
    def suffix(cls, length: int) -> RangeSpec:
        # RFC 9110 §14.1.1: a suffix length of 0 is unsatisfiable; asking for it is a caller bug.
        if length <= 0:
            raise ValueError("a suffix range needs a positive length")
        return cls(None, None, length)

    @property
    def is_suffix(self) -> bool:
        return self.start is None

    def header_value(self) -> str:
        if self.start is None:
            return f"-{self.suffix_length}"
        if self.stop is None:
            return f"{self.start}-"
        return f"{self.start}-{self.stop - 1}"

    def resolve(self, size: int) -> ByteRange | None:
        """The bytes this spec selects from a representation of ``size`` bytes (§14.1.1), or None
        when it is unsatisfiable."""
        if self.start is None:
            assert self.suffix_length is not None
            if size == 0:
                return None
            return ByteRange(max(0, size - self.suffix_length), size)
        if self.start >= size:
            return None
        stop = size if self.stop is None else min(self.stop, size)
        return ByteRange(self.start, stop)

    def __repr__(self) -> str:
        return f"RangeSpec(bytes={self.header_value()})"


def format_range(specs: RangeSpec | Iterable[RangeSpec]) -> str:
    if isinstance(specs, RangeSpec):
        specs = (specs,)
    values = [s.header_value() for s in specs]
    if not values:
        raise ValueError("a Range header needs at least one range")
    return "bytes=" + ",".join(values)


def parse_range(value: str) -> list[RangeSpec]:
    """Parse a ``Range`` request header (§14.2). Only the ``bytes`` unit is understood."""
    unit = _RANGE_UNIT.fullmatch(value)
    if unit is None:
        raise HeaderParseError(f"Range header is not a bytes range: {value[:80]!r}")
    specs: list[RangeSpec] = []
    for part in unit.group("specs").split(","):
        if not part.strip(_SPACE):
            # §5.6.1 list syntax allows empty elements; they carry nothing.
            continue
        m = _RANGE_SPEC.fullmatch(part)
        if m is None:
            raise HeaderParseError(f"malformed byte-range-spec: {part[:80]!r}")
        first, last = m.group("first"), m.group("last")
        if first is None and last is None:
            raise HeaderParseError("a byte-range-spec needs a first or a suffix length")
        if first is None:
            assert last is not None
            if int(last) == 0:
                raise HeaderParseError("a suffix length of 0 selects nothing")
            specs.append(RangeSpec.suffix(int(last)))
        elif last is None:
            specs.append(RangeSpec.open_ended(int(first)))
        else:
            if int(last) < int(first):
                raise HeaderParseError(f"byte range ends before it starts: {part.strip()!r}")
            specs.append(RangeSpec.closed(int(first), int(last) + 1))
    if not specs:
        raise HeaderParseError("Range header has no ranges")
    return specs


class ContentRange(Record):
    """A parsed ``Content-Range`` (§14.4): the range sent (None for ``*/L``) and the total (None for ``/*``)."""

    __slots__ = ("range", "total")
    range: ByteRange | None
    total: int | None

    def __init__(self, range: ByteRange | None, total: int | None) -> None:
        object.__setattr__(self, "range", range)
        object.__setattr__(self, "total", total)


def parse_content_range(value: str) -> ContentRange:
    m = _CONTENT_RANGE.fullmatch(value)
    if m is None:
        raise HeaderParseError(f"malformed Content-Range: {value[:80]!r}")
    total = None if m.group("unknown") else int(m.group("total"))
    if m.group("star"):
        # `bytes */*` says nothing at all; §14.4 only allows `*/complete-length`.
        if total is None:
            raise HeaderParseError("Content-Range `*/*` carries no information")
        return ContentRange(None, total)
    first, last = int(m.group("first")), int(m.group("last"))
    if last < first:
        raise HeaderParseError(f"Content-Range ends before it starts: {value[:80]!r}")
    if total is not None and last >= total:
        raise HeaderParseError(f"Content-Range lies beyond its own total: {value[:80]!r}")
    return ContentRange(ByteRange(first, last + 1), total)


def format_content_range(r: ByteRange | None, total: int | None) -> str:
    total_text = "*" if total is None else str(total)
    if r is None:
        return f"bytes */{total_text}"
    return f"bytes {r.start}-{r.stop - 1}/{total_text}"


def parse_content_length(value: str | None) -> int | None:
    """Content-Length (§8.6); a list of identical values is tolerated, as the RFC allows."""
    if value is None:
        return None
    values = {v.strip(_SPACE) for v in value.split(",")}
    if len(values) != 1:
        raise HeaderParseError(f"conflicting Content-Length values: {value[:80]!r}")
    (text,) = values
    if not re.fullmatch(_DIGITS, text, re.ASCII):
        raise HeaderParseError(f"malformed Content-Length: {value[:80]!r}")
    return int(text)


def fold_headers(items: Iterable[tuple[str, str]] | Mapping[str, str]) -> dict[str, str]:
    """Lower-case header names and join repeated fields with ``, `` (§5.3), so every adapter hands
    the core the same shape."""
    pairs = items.items() if isinstance(items, Mapping) else items
    folded: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        folded[key] = f"{folded[key]}, {value}" if key in folded else value
    return folded
