"""When to retry and how long to wait: backoff with jitter that honours Retry-After (RFC 9110 §10.2.3)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import timezone
from email.utils import parsedate_to_datetime

from rangeio.errors import (
    HTTPStatusError,
    NetworkError,
    ProtocolError,
    RangeNotSupportedError,
    RedirectError,
    TLSError,
)

# Statuses that say "try again": §15.5.9 408, RFC 8470 425, RFC 6585 429, §15.6 500/502/503/504.
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry a failed exchange.

    ``attempts`` counts every try, so 1 means no retry. The delay before retry n (1-based) is
    ``backoff * 2**(n-1)`` capped at ``max_backoff``, scaled by a random factor in
    ``[1 - jitter, 1]`` so that many clients do not retry in step. A server's Retry-After wins over
    the backoff, but never beyond ``max_retry_after``: a server asking for an hour is treated as
    a failure rather than a reason to hang the caller.
    """

    attempts: int = 4
    backoff: float = 0.1
    max_backoff: float = 5.0
    jitter: float = 0.5
    max_retry_after: float = 30.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be >= 1")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("jitter must be within [0, 1]")

    def __reduce__(self) -> tuple[type[RetryPolicy], tuple[int, float, float, float, float]]:
        # Pickled (a file sent to a worker) without its random source: a fresh one there, so
        # workers do not back off in step, and no 2.5 KB of generator state in every pickle.
        return (
            RetryPolicy,
            (self.attempts, self.backoff, self.max_backoff, self.jitter, self.max_retry_after),
        )

    def delay(self, failures: int, retry_after: float | None = None) -> float | None:
        """Seconds to wait after the ``failures``-th failure, or None when it is time to give up."""
        if failures >= self.attempts:
            return None
        if retry_after is not None:
            return retry_after if retry_after <= self.max_retry_after else None
        base: float = min(self.max_backoff, self.backoff * 2.0 ** (failures - 1))
        spread: float = self.rng.random()
        return base * (1.0 - self.jitter * spread)


NO_RETRY = RetryPolicy(attempts=1)


def coerce_retries(value: RetryPolicy | int | None, default: RetryPolicy) -> RetryPolicy:
    """The policy a ``retries=`` argument means, for every face: a RetryPolicy as given, an int
    as that many retries (``0``: none), and None as "not given", the face's ``default`` (as
    ``timeout=None`` means the default Timeout; urllib3's ``retries=None`` is its default too).
    The one place the argument is read, so files and downloads cannot drift apart again."""
    if value is None:
        return default
    if isinstance(value, RetryPolicy):
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TypeError("retries must be a RetryPolicy or a number of retries >= 0")
    return RetryPolicy(attempts=value + 1)


def is_retryable(error: BaseException) -> bool:
    """Whether asking again may succeed where ``error`` failed: the one retry decision, made for
    reads, streams, ``download`` (and each of its parallel workers) alike.

    ``NetworkError`` means "the exchange with the server failed", which includes answers that
    asking again cannot change; those are subtracted here, and only here:

    - ``TLSError``: an untrusted certificate stays untrusted.
    - ``RedirectError``: a redirect the caller said not to follow is the same redirect again.
    - ``HTTPStatusError``: only a transient status (408, 425, 429, 5xx; ``is_transient``).
    - ``ProtocolError``: the server broke an HTTP rule (or the body overflowed its framing);
      the same server breaks it again.
    - ``RangeNotSupportedError``: the server will not serve ranges usably; that does not pass.

    Every other ``NetworkError`` (a refused or reset connection, a timeout, a cut body, a
    ``PartialDownloadError``) is retried. Any error that is not a ``NetworkError`` (a changed
    remote, a checksum mismatch, a local disk failure, a bug) is not.
    """
    if isinstance(error, (TLSError, RedirectError, ProtocolError, RangeNotSupportedError)):
        return False
    if isinstance(error, HTTPStatusError):
        return error.is_transient
    return isinstance(error, NetworkError)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Retry-After as seconds from ``now`` (epoch seconds): delay-seconds or an HTTP-date (§10.2.3).
    Unparseable values are ignored, as the header is only advice."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        # Leading zeros go first: cutting the digits before would read "000000000060" as 0.
        # Past ten digits the delay is centuries, so the exact value no longer matters.
        digits = text.lstrip("0") or "0"
        return float(int(digits)) if len(digits) <= 10 else float(10**10)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        # asctime dates and `-0000` parse as naive datetimes, which .timestamp() would read as
        # local time; every HTTP-date is in GMT (§5.6.7).
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - now)
