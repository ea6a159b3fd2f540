"""The remote file's identity (ETag, Last-Modified, size) and the RFC 9110 §8.8.3 comparisons."""

from __future__ import annotations

import re
from collections.abc import Mapping

from rangeio._core.records import Record

_ETAG = re.compile(r'\s*(?P<weak>W/)?"(?P<opaque>[^"]*)"\s*')


class ETag(Record):
    """An entity tag. ``quoted`` is False for servers that send a bare token instead of a quoted
    string; such a tag is still compared, but never echoed back in a precondition."""

    __slots__ = ("opaque", "weak", "quoted")
    opaque: str
    weak: bool
    quoted: bool

    def __init__(self, opaque: str, weak: bool = False, quoted: bool = True) -> None:
        object.__setattr__(self, "opaque", opaque)
        object.__setattr__(self, "weak", weak)
        object.__setattr__(self, "quoted", quoted)

    @classmethod
    def parse(cls, value: str | None) -> ETag | None:
        if value is None or not value.strip():
            return None
        m = _ETAG.fullmatch(value)
        if m is None:
            return cls(value.strip(), weak=False, quoted=False)
        return cls(m.group("opaque"), weak=m.group("weak") is not None)

    def header_value(self) -> str:
        return f'{"W/" if self.weak else ""}"{self.opaque}"'

    def strong_equals(self, other: ETag) -> bool:
        """§8.8.3.2 strong comparison: both strong and character-for-character equal."""
        return not self.weak and not other.weak and self.opaque == other.opaque

    def weak_equals(self, other: ETag) -> bool:
        """§8.8.3.2 weak comparison: opaque tags equal, weakness ignored."""
        return self.opaque == other.opaque

    @property
    def usable_as_precondition(self) -> bool:
        # §13.1.1 If-Match and §13.1.5 If-Range use the strong comparison, so a weak tag can never
        # match there; sending it would only make every request fail.
        return self.quoted and not self.weak


class Identity(Record):
    """Which version of the remote file a response speaks for."""

    __slots__ = ("etag", "last_modified", "size")
    etag: ETag | None
    last_modified: str | None
    size: int | None

    def __init__(
        self, etag: ETag | None = None, last_modified: str | None = None, size: int | None = None
    ) -> None:
        object.__setattr__(self, "etag", etag)
        object.__setattr__(self, "last_modified", last_modified)
        object.__setattr__(self, "size", size)

    @classmethod
    def from_headers(cls, headers: Mapping[str, str], size: int | None) -> Identity:
        """``headers`` are folded (lower-case names); ``size`` is the complete length if known."""
        last_modified = headers.get("last-modified")
        return cls(
            ETag.parse(headers.get("etag")),
            last_modified.strip() if last_modified else None,
            size,
        )

    def conflict_with(self, other: Identity) -> str | None:
        """Why ``other`` is a different version from this one, or None if nothing says so.

        Only validators present on both sides are compared. Judgement call: a CDN edge that drops an
        ETag is common and harmless, so a missing validator is not by itself a change.
        """
        if self.etag is not None and other.etag is not None:
            # §8.8.3: outside If-Match/If-Range the weak comparison applies, so W/"x" matches "x".
            if not self.etag.weak_equals(other.etag):
                return (
                    f"ETag changed from {self.etag.header_value()} to {other.etag.header_value()}"
                )
        elif self.last_modified is not None and other.last_modified is not None:
            if self.last_modified != other.last_modified:
                return f"Last-Modified changed from {self.last_modified} to {other.last_modified}"
        if self.size is not None and other.size is not None and self.size != other.size:
            return f"size changed from {self.size} to {other.size}"
        return None

    def merged(self, other: Identity) -> Identity:
        """This identity with any validator it lacks taken from ``other`` (same version)."""
        if self.etag is not None and self.last_modified is not None and self.size is not None:
            return self  # lacks none (a pinned identity, merged with every answer): immutable
        return Identity(
            self.etag if self.etag is not None else other.etag,
            self.last_modified if self.last_modified is not None else other.last_modified,
            self.size if self.size is not None else other.size,
        )

    def precondition_headers(self) -> dict[str, str]:
        """Headers that make the server refuse (412) to answer for another version (§13.1.1)."""
        if self.etag is not None and self.etag.usable_as_precondition:
            return {"If-Match": self.etag.header_value()}
        return {}

    def if_range_value(self) -> str | None:
        """The validator for If-Range (§13.1.5): a strong ETag, else Last-Modified."""
        if self.etag is not None:
            # §13.1.5: a date may only be sent when the client has no entity tag at all; a weak
            # or unquoted tag rules out both forms, so no If-Range is possible.
            return self.etag.header_value() if self.etag.usable_as_precondition else None
        return self.last_modified
