"""Redirect rules: where the next hop goes, which headers may follow it, and when a URL expires."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from functools import lru_cache
from urllib.parse import parse_qsl, urljoin, urlsplit

from rangeio._core.records import Record
from rangeio.errors import NetworkError, TLSError, UrlError

# Credentials that must never reach another origin (RFC 9110 §15.4: a client SHOULD strip them).
_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
# Browsers stop at 20; curl at 50. Twenty hops is already far beyond any sane CDN chain.
MAX_REDIRECTS = 20


def check_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        # Reading the port validates it (a number within 0-65535): better a typed error now than
        # a bare ValueError from origin() in the middle of an exchange.
        _ = parts.port
    except ValueError as exc:
        raise UrlError(f"malformed URL {url!r}: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise UrlError(
            f"only http and https URLs are supported, not {parts.scheme or 'none'!r}: {url}"
        )
    if not parts.hostname:
        raise UrlError(f"URL has no host: {url}")
    return url


# Asked twice per request with the same few URLs: parsing them again is most of its cost.
@lru_cache(maxsize=64)
def origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, (parts.hostname or "").lower(), port


def next_hop(current: str, location: str) -> str:
    """The absolute URL a Location header points to (§10.2.2 allows relative references)."""
    try:
        target = urljoin(current, location.strip())
    except ValueError as exc:
        raise UrlError(f"malformed redirect Location {location!r}: {exc}") from None
    return check_url(target)


def is_downgrade(current: str, target: str) -> bool:
    return urlsplit(current).scheme.lower() == "https" and urlsplit(target).scheme.lower() == "http"


def follow(current: str, location: str, hops: int, first_url: str, *, allow_downgrade: bool) -> str:
    """The URL to request after the ``hops``-th redirect from ``current`` to ``location``:
    bounded in number (a loop ends with a typed error) and never https -> http unless allowed."""
    if hops > MAX_REDIRECTS:
        raise NetworkError(f"more than {MAX_REDIRECTS} redirects, starting at {first_url}")
    target = next_hop(current, location)
    if is_downgrade(current, target) and not allow_downgrade:
        # The bytes (and any credentials) would travel in clear: a TLS failure, never retried.
        raise TLSError(
            f"refusing redirect from https to http: {target} "
            "(pass allow_https_downgrade=True to allow it)"
        )
    return target


def same_origin(target: str, first_url: str) -> bool:
    """Whether ``target`` is on the origin of the URL the user gave (RFC 6454: scheme, host and
    port), the one origin credentials were given for."""
    return origin(target) == origin(first_url)


def headers_for(target: str, first_url: str, headers: Mapping[str, str]) -> dict[str, str]:
    """The caller's headers as they may be sent to ``target``: credentials only to the origin
    they were given for."""
    if same_origin(target, first_url):
        return dict(headers)
    return {k: v for k, v in headers.items() if k.lower() not in _CREDENTIAL_HEADERS}


class ResolvedUrl(Record):
    """Where range requests go after redirects, and until when that is trusted."""

    __slots__ = ("url", "expires_at")
    url: str
    expires_at: float | None

    def __init__(self, url: str, expires_at: float | None = None) -> None:
        object.__setattr__(self, "url", url)
        object.__setattr__(self, "expires_at", expires_at)

    def usable(self, now: float, margin: float = 5.0) -> bool:
        return self.expires_at is None or now + margin < self.expires_at


def expiry_of(url: str, now: float) -> float | None:
    """When a presigned URL stops working, in epoch seconds, or None if it does not say.
    ``now`` is when the URL was handed over (its redirect answer arrived): a lifetime without a
    signing date (or with one that does not parse) counts from then, since a redirect hands out
    a URL signed just before; a lower bound on its life would be a guess of a date. No default:
    a forgotten time must not make such a URL expire in 1970.

    Understands AWS SigV4 (X-Amz-Date + X-Amz-Expires), Google (X-Goog-Date + X-Goog-Expires) and
    the epoch ``Expires=`` of SigV2 and CloudFront.
    """
    query = {k.lower(): v for k, v in parse_qsl(urlsplit(url).query, keep_blank_values=True)}
    for prefix in ("x-amz-", "x-goog-"):
        lifetime = query.get(prefix + "expires")
        if lifetime is not None and _is_digits(lifetime):
            signed = query.get(prefix + "date")
            start = _parse_iso_basic(signed) if signed else None
            return (start if start is not None else now) + int(lifetime)
    expires = query.get("expires")
    if expires is not None and _is_digits(expires):
        return float(int(expires))
    return None


def _is_digits(text: str) -> bool:
    # str.isdigit() alone accepts characters such as "²" that int() refuses.
    return text.isascii() and text.isdigit()


def _parse_iso_basic(text: str) -> float | None:
    try:
        return datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None
