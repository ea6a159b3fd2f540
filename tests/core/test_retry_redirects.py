"""RetryPolicy and Retry-After; redirect hops, credential stripping, downgrades, URL expiry."""

from __future__ import annotations

import os
import random
import time
from calendar import timegm
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rangeio._core.redirects import (
    MAX_REDIRECTS,
    ResolvedUrl,
    check_url,
    expiry_of,
    headers_for,
    is_downgrade,
    next_hop,
    origin,
)
from rangeio._core.retry import NO_RETRY, TRANSIENT_STATUSES, RetryPolicy, parse_retry_after
from rangeio.errors import UrlError

SETTINGS = settings(max_examples=200, deadline=None)
# Sun, 06 Nov 1994 08:49:37 GMT, the RFC's example date.
RFC_DATE_EPOCH = 784111777.0


class FixedRandom(random.Random):
    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


# -- RetryPolicy ----------------------------------------------------------------------------


def test_delay_schedule_without_jitter() -> None:
    policy = RetryPolicy(attempts=4, backoff=0.1, max_backoff=5.0, jitter=0.0)
    assert [policy.delay(n) for n in range(1, 5)] == [
        pytest.approx(0.1),
        pytest.approx(0.2),
        pytest.approx(0.4),
        None,
    ]


def test_delay_is_capped_by_max_backoff() -> None:
    policy = RetryPolicy(attempts=8, backoff=1.0, max_backoff=3.0, jitter=0.0)
    assert [policy.delay(n) for n in range(1, 9)] == [1.0, 2.0, 3.0, 3.0, 3.0, 3.0, 3.0, None]


def test_attempts_count_every_try() -> None:
    assert RetryPolicy(attempts=1).delay(1) is None
    assert NO_RETRY.delay(1) is None
    assert NO_RETRY.delay(1, retry_after=0.0) is None
    two = RetryPolicy(attempts=2, jitter=0.0)
    assert two.delay(1) is not None
    assert two.delay(2) is None
    assert two.delay(2, retry_after=1.0) is None, "Retry-After does not buy extra attempts"


def test_jitter_extremes() -> None:
    low = RetryPolicy(backoff=1.0, jitter=0.5, rng=FixedRandom(0.0))
    high = RetryPolicy(backoff=1.0, jitter=0.5, rng=FixedRandom(0.999999))
    assert low.delay(2) == 2.0
    assert high.delay(2) == pytest.approx(1.0, abs=1e-5)
    full = RetryPolicy(backoff=1.0, jitter=1.0, rng=FixedRandom(0.999999))
    assert full.delay(1) == pytest.approx(0.0, abs=1e-5)


@SETTINGS
@given(
    seed=st.integers(0, 2**32),
    jitter=st.floats(0.0, 1.0),
    backoff=st.floats(0.001, 10.0),
    failures=st.integers(1, 9),
)
def test_jitter_bounds(seed: int, jitter: float, backoff: float, failures: int) -> None:
    policy = RetryPolicy(
        attempts=10, backoff=backoff, max_backoff=20.0, jitter=jitter, rng=random.Random(seed)
    )
    base = min(20.0, backoff * 2 ** (failures - 1))
    delay = policy.delay(failures)
    assert delay is not None
    assert base * (1 - jitter) - 1e-9 <= delay <= base + 1e-9


def test_jitter_actually_varies() -> None:
    policy = RetryPolicy(backoff=1.0, jitter=0.5, rng=random.Random(1))
    delays = {policy.delay(1) for _ in range(20)}
    assert len(delays) > 1


def test_retry_after_wins_but_is_capped() -> None:
    policy = RetryPolicy(attempts=3, backoff=0.1, max_backoff=1.0, max_retry_after=30.0)
    assert policy.delay(1, retry_after=12.0) == 12.0, "beyond max_backoff, no jitter"
    assert policy.delay(1, retry_after=0.0) == 0.0
    assert policy.delay(1, retry_after=30.0) == 30.0
    assert policy.delay(1, retry_after=30.5) is None, "a server asking too much is a failure"
    assert policy.delay(3, retry_after=1.0) is None


@pytest.mark.parametrize(
    "kwargs", [{"attempts": 0}, {"attempts": -1}, {"jitter": -0.1}, {"jitter": 1.5}]
)
def test_policy_validation(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_transient_statuses() -> None:
    assert {408, 429, 500, 502, 503, 504} <= TRANSIENT_STATUSES
    assert not {400, 401, 403, 404, 410, 416, 501} & TRANSIENT_STATUSES


# -- Retry-After ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, None),
        ("120", 120.0),
        (" 5 ", 5.0),
        ("0", 0.0),
        ("000000000060", 60.0),
        ("-5", None),
        ("1.5", None),
        ("+5", None),
        ("soon", None),
        ("", None),
        ("\u0661\u0662", None),
    ],
)
def test_parse_retry_after_seconds(text: str | None, expected: float | None) -> None:
    assert parse_retry_after(text, now=1000.0) == expected


def test_parse_retry_after_huge_seconds_stays_huge() -> None:
    value = parse_retry_after("9" * 40, now=0.0)
    assert value is not None and value >= 9_999_999_999
    assert RetryPolicy().delay(1, value) is None


@pytest.fixture(params=["UTC0", "EST+05", "XYZ-09"])
def local_zone(request: pytest.FixtureRequest) -> Iterator[None]:
    """Run under several local time zones: HTTP-dates are GMT whatever the machine thinks."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = request.param
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()


@pytest.mark.usefixtures("local_zone")
@pytest.mark.parametrize(
    "text",
    [
        "Sun, 06 Nov 1994 08:49:37 GMT",  # IMF-fixdate
        "Sunday, 06-Nov-94 08:49:37 GMT",  # obsolete RFC 850
        "Sun Nov  6 08:49:37 1994",  # obsolete asctime, no zone: GMT by definition
    ],
)
def test_parse_retry_after_http_dates(text: str) -> None:
    assert parse_retry_after(text, now=RFC_DATE_EPOCH - 30) == pytest.approx(30.0)
    assert parse_retry_after(text, now=RFC_DATE_EPOCH + 30) == 0.0, "past dates mean now"


@SETTINGS
@given(st.one_of(st.text(max_size=40), st.text(alphabet="0123456789 ,:-GMTSunNov+", max_size=40)))
def test_parse_retry_after_never_raises(text: str) -> None:
    value = parse_retry_after(text, now=RFC_DATE_EPOCH)
    assert value is None or value >= 0.0


# -- URLs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/x",
        "file:///etc/passwd",
        "example.com/x",
        "http:///nohost",
        "https://",
        "",
        "http://example.com:99999/x",
        "http://example.com:port/x",
        "http://[::1/x",
    ],
)
def test_check_url_refuses(url: str) -> None:
    with pytest.raises(UrlError):
        check_url(url)


def test_check_url_accepts() -> None:
    for url in ["http://example.com", "HTTPS://Example.COM:8443/a?b=c", "http://[::1]:80/x"]:
        assert check_url(url) == url


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("other", "https://a.com/dir/other"),
        ("/abs/path", "https://a.com/abs/path"),
        ("../up", "https://a.com/up"),
        ("?q=2", "https://a.com/dir/file?q=2"),
        ("//cdn.net/x", "https://cdn.net/x"),
        ("http://b.org/y", "http://b.org/y"),
        ("  /trimmed \t", "https://a.com/trimmed"),
    ],
)
def test_next_hop(location: str, expected: str) -> None:
    assert next_hop("https://a.com/dir/file?x=1", location) == expected


@pytest.mark.parametrize("location", ["ftp://a.com/x", "mailto:x@y", "http://a.com:70000/"])
def test_next_hop_refuses_unusable_targets(location: str) -> None:
    with pytest.raises(UrlError):
        next_hop("https://a.com/x", location)


def test_origin() -> None:
    assert origin("https://A.com/x") == ("https", "a.com", 443)
    assert origin("http://a.com/x") == ("http", "a.com", 80)
    assert origin("HTTP://a.com:8080") == ("http", "a.com", 8080)


CREDENTIALS = {
    "Authorization": "Bearer t",
    "cookie": "s=1",
    "Proxy-Authorization": "Basic x",
    "X-Custom": "keep",
    "User-Agent": "ua",
}


@pytest.mark.parametrize(
    "target",
    ["https://a.com/other", "https://A.COM:443/x?y", "https://a.com/"],
)
def test_headers_for_same_origin_keeps_credentials(target: str) -> None:
    out = headers_for(target, "https://a.com/file", CREDENTIALS)
    assert out == CREDENTIALS
    assert out is not CREDENTIALS


@pytest.mark.parametrize(
    "target",
    ["https://b.com/file", "http://a.com/file", "https://a.com:8443/file", "https://sub.a.com/"],
)
def test_headers_for_cross_origin_strips_credentials(target: str) -> None:
    out = headers_for(target, "https://a.com/file", CREDENTIALS)
    assert out == {"X-Custom": "keep", "User-Agent": "ua"}


def test_is_downgrade() -> None:
    assert is_downgrade("https://a.com/x", "http://a.com/x")
    assert is_downgrade("HTTPS://a.com/x", "HTTP://b.com/x")
    assert not is_downgrade("http://a.com/x", "https://a.com/x")
    assert not is_downgrade("https://a.com/x", "https://b.com/x")
    assert not is_downgrade("http://a.com/x", "http://b.com/x")


def test_max_redirects_is_sane() -> None:
    assert 5 <= MAX_REDIRECTS <= 50


# -- expiry ---------------------------------------------------------------------------------

SIGNED_AT = float(timegm((2024, 1, 2, 3, 4, 5, 0, 0, 0)))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("X-Amz-Date=20240102T030405Z&X-Amz-Expires=3600&X-Amz-Signature=s", SIGNED_AT + 3600),
        ("x-amz-date=20240102T030405Z&x-amz-expires=60", SIGNED_AT + 60),
        ("X-Goog-Date=20240102T030405Z&X-Goog-Expires=900", SIGNED_AT + 900),
        ("X-Amz-Expires=3600", 5000.0 + 3600),
        ("X-Amz-Date=garbage&X-Amz-Expires=10", 5000.0 + 10),
        ("Expires=1700000000&Signature=abc", 1700000000.0),
        ("Expires=1700000000&Key-Pair-Id=K&Policy=p", 1700000000.0),
        ("", None),
        ("a=1&b=2", None),
        ("Expires=tomorrow", None),
        ("X-Amz-Expires=%C2%B2", None),  # "²" is a digit to str.isdigit, not to int()
        ("Expires=%C2%B2", None),
        ("X-Amz-Expires=-5", None),
    ],
)
def test_expiry_of(query: str, expected: float | None) -> None:
    assert expiry_of(f"https://bucket.example.com/key?{query}", now=5000.0) == expected


def test_resolved_url_usable() -> None:
    assert ResolvedUrl("https://a.com/x").usable(now=1e12)
    url = ResolvedUrl("https://a.com/x", expires_at=100.0)
    assert url.usable(now=90.0)
    assert not url.usable(now=95.0), "within the safety margin counts as expired"
    assert not url.usable(now=200.0)
    assert url.usable(now=99.0, margin=0.5)
