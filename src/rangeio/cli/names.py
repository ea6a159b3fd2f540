"""The name ``get`` saves to: sanitised, from Content-Disposition (via rangeio.probe) or the URL."""

from __future__ import annotations

import rangeio
from rangeio.errors import RangeioError

TYPE_CHECKING = False  # not typing's: see rangeio/cli/__init__.py
if TYPE_CHECKING:
    from typing import Any

_MAX_NAME = 200  # leaves room for ".part.ctrl" under the usual 255-byte limit
_FALLBACK_NAME = "download"


def sanitize_filename(name: str | None) -> str:
    """A plain file name for the current directory: no directories, no ``..``, no absolute
    path, no control characters, no leading dots (hidden files), never empty."""
    import unicodedata

    if not name:
        return _FALLBACK_NAME
    name = "".join(ch for ch in name if not unicodedata.category(ch).startswith("C") or ch in "/\\")
    name = name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    name = name.strip().lstrip(".").strip()
    if len(name.encode("utf-8")) > _MAX_NAME:
        stem, dot, ext = name.rpartition(".")
        if not dot or len(ext) > 16:
            stem, ext = name, ""
        suffix = f".{ext}" if ext else ""
        budget = _MAX_NAME - len(suffix.encode("utf-8"))
        stem = stem.encode("utf-8")[:budget].decode("utf-8", "ignore")
        name = stem + suffix
    return name or _FALLBACK_NAME


def content_disposition_filename(value: str | None) -> str | None:
    """``filename*`` (RFC 6266/5987) or ``filename`` of a Content-Disposition header."""
    import email.message

    if not value:
        return None
    message = email.message.Message()
    message["Content-Disposition"] = value
    try:
        return message.get_filename()
    except Exception:  # a malformed header means no name, never a crash
        return None


def url_filename(url: str) -> str | None:
    import urllib.parse

    path = urllib.parse.urlsplit(url).path
    segment = path.rstrip("/").rsplit("/", 1)[-1] if path.rstrip("/") else ""
    return urllib.parse.unquote(segment) or None


def remote_filename(url: str, options: dict[str, Any]) -> str:
    """The name ``get`` saves to: the Content-Disposition filename of the probe's answer
    (``rangeio.probe``, no multipart request), else the URL's last path segment; always
    sanitised."""
    try:
        facts = rangeio.probe(url, max_ranges=0, **options)
    except RangeioError:
        facts = None  # the download itself reports the real problem
    name = content_disposition_filename(facts.header("Content-Disposition")) if facts else None
    return sanitize_filename(name or url_filename(url))
