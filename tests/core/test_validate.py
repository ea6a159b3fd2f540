"""judge(): one table of responses and the verdict each must get, plus the verdicts' errors."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from email.utils import format_datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rangeio._core.headers import RangeSpec
from rangeio._core.identity import ETag, Identity
from rangeio._core.ranges import ByteRange
from rangeio._core.validate import (
    Changed,
    Encoded,
    Failure,
    Full,
    Malformed,
    Multipart,
    Partial,
    Redirect,
    Unsatisfiable,
    Verdict,
    expected_range,
    judge,
    size_contradiction,
)
from rangeio.errors import (
    HTTPStatusError,
    NetworkError,
    ProtocolError,
    RangeNotSupportedError,
    RemoteChangedError,
)

SETTINGS = settings(max_examples=200, deadline=None)
NOW = 1_700_000_000.0
LM1 = "Wed, 21 Oct 2015 07:28:00 GMT"
LM2 = "Thu, 22 Oct 2015 07:28:00 GMT"
C = RangeSpec.closed
PINNED = Identity(ETag("v1"), LM1, 1000)


def H(**fields: str) -> dict[str, str]:
    """Folded headers from keyword arguments: content_range= becomes content-range."""
    return {k.replace("_", "-"): v for k, v in fields.items()}


def run(
    status: int,
    headers: dict[str, str],
    requested: Sequence[RangeSpec] = (C(0, 100),),
    pinned: Identity | None = None,
) -> Verdict:
    return judge(requested, status, headers, pinned, now=NOW)


# -- 206 ------------------------------------------------------------------------------------

CASES_206: list[tuple[str, Sequence[RangeSpec], dict[str, str], Identity | None, Verdict]] = [
    (
        "exact",
        [C(0, 100)],
        H(content_range="bytes 0-99/1000", content_length="100", etag='"v1"'),
        None,
        Partial(ByteRange(0, 100), 1000, Identity(ETag("v1"), None, 1000)),
    ),
    (
        "exact, pinned agrees",
        [C(100, 200)],
        H(content_range="bytes 100-199/1000", etag='"v1"', last_modified=LM1),
        PINNED,
        Partial(ByteRange(100, 200), 1000, Identity(ETag("v1"), LM1, 1000)),
    ),
    (
        "suffix resolved with the total",
        [RangeSpec.suffix(100)],
        H(content_range="bytes 900-999/1000"),
        None,
        Partial(ByteRange(900, 1000), 1000, Identity(size=1000)),
    ),
    (
        "suffix longer than the file",
        [RangeSpec.suffix(5000)],
        H(content_range="bytes 0-999/1000", content_length="1000"),
        None,
        Partial(ByteRange(0, 1000), 1000, Identity(size=1000)),
    ),
    (
        "open-ended",
        [RangeSpec.open_ended(900)],
        H(content_range="bytes 900-999/1000"),
        None,
        Partial(ByteRange(900, 1000), 1000, Identity(size=1000)),
    ),
    (
        "closed range past the end is clipped",
        [C(900, 2000)],
        H(content_range="bytes 900-999/1000", content_length="100"),
        None,
        Partial(ByteRange(900, 1000), 1000, Identity(size=1000)),
    ),
    (
        "unknown total, closed range",
        [C(0, 100)],
        H(content_range="bytes 0-99/*", content_length="100"),
        None,
        Partial(ByteRange(0, 100), None, Identity()),
    ),
    (
        "unknown total, suffix resolved with the pinned size",
        [RangeSpec.suffix(10)],
        H(content_range="bytes 990-999/*"),
        Identity(None, None, 1000),
        Partial(ByteRange(990, 1000), None, Identity()),
    ),
    (
        "one part covering a multi-range request",
        [C(0, 10), C(20, 30)],
        H(content_range="bytes 0-29/100", content_length="30"),
        None,
        Partial(ByteRange(0, 30), 100, Identity(size=100)),
    ),
    (
        "shifted Content-Range: honest about its bytes, used",
        [C(0, 100)],
        H(content_range="bytes 1-100/1000"),
        None,
        Partial(ByteRange(1, 101), 1000, Identity(size=1000), asked=ByteRange(0, 100)),
    ),
    (
        "short Content-Range (a capped answer)",
        [C(0, 100)],
        H(content_range="bytes 0-98/1000"),
        None,
        Partial(ByteRange(0, 99), 1000, Identity(size=1000), asked=ByteRange(0, 100)),
    ),
    (
        "widened Content-Range (a range-aligning cache)",
        [C(5000, 5100)],
        H(content_range="bytes 4096-8191/10000", content_length="4096"),
        None,
        Partial(ByteRange(4096, 8192), 10000, Identity(size=10000), asked=ByteRange(5000, 5100)),
    ),
    (
        "open-ended with unknown total, widened start",
        [RangeSpec.open_ended(5)],
        H(content_range="bytes 0-99/*"),
        None,
        Partial(ByteRange(0, 100), None, Identity(), asked=ByteRange(5, 100)),
    ),
    (
        "multipart with quoted boundary",
        [C(0, 10), C(500, 510)],
        H(content_type='multipart/byteranges; boundary="THIS_STRING_SEPARATES"', etag='"v1"'),
        None,
        Multipart("THIS_STRING_SEPARATES", Identity(ETag("v1"))),
    ),
    (
        "multipart with bare boundary, odd case",
        [C(0, 10), C(500, 510)],
        H(content_type="Multipart/ByteRanges;charset=x; BOUNDARY=abc123"),
        PINNED,
        Multipart("abc123", Identity()),
    ),
]


@pytest.mark.parametrize(
    ("requested", "headers", "pinned", "expected"),
    [c[1:] for c in CASES_206],
    ids=[c[0] for c in CASES_206],
)
def test_206_accepted(
    requested: Sequence[RangeSpec],
    headers: dict[str, str],
    pinned: Identity | None,
    expected: Verdict,
) -> None:
    assert run(206, headers, requested, pinned) == expected


MALFORMED_206: list[tuple[str, Sequence[RangeSpec], dict[str, str], Identity | None]] = [
    ("Content-Range holding none of it", [C(0, 100)], H(content_range="bytes 100-199/1000"), None),
    ("Content-Range before it", [C(100, 200)], H(content_range="bytes 0-99/1000"), None),
    (
        "Content-Range past the pinned size",
        [C(900, 1000)],
        H(content_range="bytes 900-1099/*"),
        Identity(None, None, 1000),
    ),
    (
        "200-style Content-Length on a shifted range",
        [C(0, 100)],
        H(content_range="bytes 1-100/1000", content_length="99"),
        None,
    ),
    (
        "Content-Length mismatch",
        [C(0, 100)],
        H(content_range="bytes 0-99/1000", content_length="99"),
        None,
    ),
    (
        "Content-Length mismatch, unknown total",
        [C(0, 100)],
        H(content_range="bytes 0-99/*", content_length="101"),
        None,
    ),
    ("suffix with unknown total", [RangeSpec.suffix(10)], H(content_range="bytes 90-99/*"), None),
    (
        "open-ended with unknown total, wrong start",
        [RangeSpec.open_ended(5)],
        H(content_range="bytes 6-99/*"),
        None,
    ),
    ("suffix resolved wrongly", [RangeSpec.suffix(100)], H(content_range="bytes 0-99/1000"), None),
    ("no Content-Range", [C(0, 100)], H(content_length="100"), None),
    ("unsatisfied Content-Range", [C(0, 100)], H(content_range="bytes */1000"), None),
    ("garbage Content-Range", [C(0, 100)], H(content_range="bytes zero-99/1000"), None),
    ("Content-Range past its total", [C(0, 100)], H(content_range="bytes 0-99/50"), None),
    (
        "malformed Content-Length",
        [C(0, 100)],
        H(content_range="bytes 0-99/1000", content_length="1e2"),
        None,
    ),
    ("206 without a Range sent", [], H(content_range="bytes 0-99/1000"), None),
    (
        "one part not covering a multi-range request",
        [C(0, 10), C(20, 30)],
        H(content_range="bytes 0-19/100"),
        None,
    ),
    (
        "one part, wrong Content-Length, multi-range",
        [C(0, 10), C(20, 30)],
        H(content_range="bytes 0-29/100", content_length="10"),
        None,
    ),
    (
        "multipart answering one range",
        [C(0, 10)],
        H(content_type="multipart/byteranges; boundary=abc"),
        None,
    ),
    (
        "multipart without boundary",
        [C(0, 10), C(20, 30)],
        H(content_type="multipart/byteranges"),
        None,
    ),
    (
        "multipart with empty boundary",
        [C(0, 10), C(20, 30)],
        H(content_type='multipart/byteranges; boundary=""'),
        None,
    ),
    (
        "multipart with 71-character boundary",
        [C(0, 10), C(20, 30)],
        H(content_type="multipart/byteranges; boundary=" + "b" * 71),
        None,
    ),
]


@pytest.mark.parametrize(
    ("requested", "headers", "pinned"),
    [c[1:] for c in MALFORMED_206],
    ids=[c[0] for c in MALFORMED_206],
)
def test_206_malformed(
    requested: Sequence[RangeSpec], headers: dict[str, str], pinned: Identity | None
) -> None:
    verdict = run(206, headers, requested, pinned)
    assert isinstance(verdict, Malformed), verdict
    assert verdict.reason
    assert isinstance(verdict.error(), ProtocolError)


def test_boundary_at_the_70_character_limit() -> None:
    verdict = run(
        206, H(content_type="multipart/byteranges; boundary=" + "b" * 70), [C(0, 1), C(5, 6)]
    )
    assert verdict == Multipart("b" * 70, Identity())


@SETTINGS
@given(
    spec=st.one_of(
        st.builds(lambda a, n: C(a, a + n), st.integers(0, 120), st.integers(1, 120)),
        st.builds(RangeSpec.open_ended, st.integers(0, 120)),
        st.builds(RangeSpec.suffix, st.integers(1, 120)),
    ),
    total=st.integers(1, 100),
    first=st.integers(0, 99),
    length=st.integers(1, 100),
)
def test_206_partial_iff_content_range_holds_some_of_the_resolved_range(
    spec: RangeSpec, total: int, first: int, length: int
) -> None:
    last = min(first + length, total) - 1
    if last < first:
        return
    verdict = run(206, H(content_range=f"bytes {first}-{last}/{total}"), [spec])
    want = spec.resolve(total)
    got = ByteRange(first, last + 1)
    if want == got:
        assert verdict == Partial(want, total, Identity(size=total))
    elif want is not None and want.overlaps(got):
        # Shifted, widened or shortened: the body is the bytes its Content-Range names.
        assert verdict == Partial(got, total, Identity(size=total), asked=want)
    else:
        assert isinstance(verdict, Malformed)


# -- 200 ------------------------------------------------------------------------------------


def test_200_to_a_range_request_is_full_with_range_ignored() -> None:
    verdict = run(200, H(content_length="1000", etag='"v1"'))
    assert verdict == Full(1000, Identity(ETag("v1"), None, 1000), range_ignored=True)


def test_200_to_a_plain_get() -> None:
    assert run(200, H(), requested=()) == Full(None, Identity(), range_ignored=False)


def test_200_with_identity_content_encoding_is_fine() -> None:
    verdict = run(200, H(content_encoding=" Identity ", content_length="5"), requested=())
    assert isinstance(verdict, Full) and verdict.length == 5


@pytest.mark.parametrize("status", [200, 206])
@pytest.mark.parametrize("encoding", ["gzip", " GZIP ", "br", "identity, gzip"])
def test_content_encoding_is_refused(status: int, encoding: str) -> None:
    verdict = run(status, H(content_encoding=encoding, content_range="bytes 0-99/1000"))
    assert verdict == Encoded(encoding.strip().lower())
    err = verdict.error()
    assert isinstance(err, RangeNotSupportedError)
    assert encoding.strip().lower() in err.reason


def test_200_with_malformed_content_length() -> None:
    assert isinstance(run(200, H(content_length="12, 13")), Malformed)


# -- changes against the pinned identity ----------------------------------------------------


@pytest.mark.parametrize(
    ("status", "headers", "word"),
    [
        (206, H(content_range="bytes 0-99/1000", etag='"v2"'), "ETag"),
        (206, H(content_range="bytes 0-99/2000", etag='"v1"'), "size"),
        (200, H(content_length="1000", etag='"v2"'), "ETag"),
        (200, H(content_length="999"), "size"),
        (206, H(content_type="multipart/byteranges; boundary=b", etag='"v9"'), "ETag"),
    ],
)
def test_change_against_pinned(status: int, headers: dict[str, str], word: str) -> None:
    verdict = run(
        status,
        headers,
        [C(0, 100), C(200, 300)] if "content-type" in headers else [C(0, 100)],
        PINNED,
    )
    assert isinstance(verdict, Changed), verdict
    assert word in verdict.reason
    assert isinstance(verdict.error(), RemoteChangedError)


def test_last_modified_change_without_etags() -> None:
    pinned = Identity(None, LM1, 1000)
    verdict = run(206, H(content_range="bytes 0-99/1000", last_modified=LM2), pinned=pinned)
    assert isinstance(verdict, Changed) and "Last-Modified" in verdict.reason


def test_weak_etag_of_same_version_is_no_change() -> None:
    verdict = run(206, H(content_range="bytes 0-99/1000", etag='W/"v1"'), pinned=PINNED)
    assert isinstance(verdict, Partial)


def test_412_means_changed() -> None:
    verdict = run(412, H(), pinned=PINNED)
    assert isinstance(verdict, Changed)
    assert isinstance(verdict.error(), RemoteChangedError)


# -- 416 ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "headers", "pinned", "expected"),
    [
        ([C(0, 100)], H(content_range="bytes */0"), None, Unsatisfiable(0)),
        ([RangeSpec.suffix(10)], H(content_range="bytes */0"), None, Unsatisfiable(0)),
        ([RangeSpec.open_ended(0)], H(content_range="bytes */0"), None, Unsatisfiable(0)),
        ([C(2000, 3000)], H(content_range="bytes */1000"), None, Unsatisfiable(1000)),
        ([C(1000, 1001)], H(content_range="bytes */1000"), PINNED, Unsatisfiable(1000)),
        ([C(0, 100)], H(), None, Unsatisfiable(None)),
    ],
)
def test_416_unsatisfiable(
    requested: Sequence[RangeSpec],
    headers: dict[str, str],
    pinned: Identity | None,
    expected: Verdict,
) -> None:
    verdict = run(416, headers, requested, pinned)
    assert verdict == expected
    err = verdict.error()
    assert isinstance(err, HTTPStatusError) and err.status == 416 and not err.is_transient


@pytest.mark.parametrize(
    ("requested", "content_range"),
    [
        ([C(0, 100)], "bytes */1000"),
        ([C(999, 2000)], "bytes */1000"),
        ([RangeSpec.suffix(1)], "bytes */1"),
        ([C(5000, 6000), C(0, 1)], "bytes */1000"),
        ([C(0, 100)], "bytes 0-99/1000"),
        ([C(0, 100)], "nonsense"),
    ],
)
def test_416_malformed(requested: Sequence[RangeSpec], content_range: str) -> None:
    verdict = run(416, H(content_range=content_range), requested)
    assert isinstance(verdict, Malformed), verdict
    assert isinstance(verdict.error(), ProtocolError)


def test_416_with_a_size_other_than_pinned_is_changed() -> None:
    verdict = run(416, H(content_range="bytes */500"), [C(2000, 3000)], PINNED)
    assert isinstance(verdict, Changed) and "size" in verdict.reason


# -- redirects and failures -----------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects(status: int) -> None:
    assert run(status, H(location="/elsewhere")) == Redirect(status, "/elsewhere")
    missing = run(status, H())
    assert isinstance(missing, Malformed) and "Location" in missing.reason
    assert isinstance(run(status, H(location="")), Malformed)


def test_503_with_retry_after_seconds() -> None:
    verdict = run(503, H(retry_after="120"))
    assert verdict == Failure(503, True, 120.0, "service unavailable")
    err = verdict.error()
    assert isinstance(err, HTTPStatusError)
    assert (err.status, err.is_transient, err.retry_after) == (503, True, 120.0)
    assert "503" in str(err)


def test_503_with_retry_after_http_date() -> None:
    when = format_datetime(datetime.fromtimestamp(NOW + 90, timezone.utc), usegmt=True)
    verdict = run(503, H(retry_after=when))
    assert isinstance(verdict, Failure)
    assert verdict.is_transient
    assert verdict.retry_after == pytest.approx(90.0)


def test_retry_after_date_in_the_past_is_zero_and_garbage_is_ignored() -> None:
    past = run(429, H(retry_after="Wed, 21 Oct 2015 07:28:00 GMT"))
    assert isinstance(past, Failure) and past.retry_after == 0.0
    junk = run(503, H(retry_after="soon"))
    assert isinstance(junk, Failure) and junk.retry_after is None and junk.is_transient


@pytest.mark.parametrize(
    ("status", "transient"),
    [
        (404, False),
        (403, False),
        (410, False),
        (400, False),
        (501, False),
        (418, False),
        (408, True),
        (425, True),
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (504, True),
    ],
)
def test_failure_transience(status: int, transient: bool) -> None:
    verdict = run(status, H())
    assert isinstance(verdict, Failure)
    assert verdict.status == status and verdict.is_transient is transient
    err = verdict.error()
    assert isinstance(err, HTTPStatusError) and err.is_transient is transient
    assert err.status == status


def test_404_reason() -> None:
    verdict = run(404, H())
    assert verdict == Failure(404, False, None, "not found")


# -- the verdicts' errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    "verdict",
    [
        Partial(ByteRange(0, 1), 1, Identity()),
        Full(1, Identity(), range_ignored=False),
        Multipart("b", Identity()),
        Redirect(302, "/x"),
    ],
)
def test_verdicts_with_bytes_have_no_error(verdict: Verdict) -> None:
    with pytest.raises(TypeError):
        verdict.error()


@pytest.mark.parametrize(
    ("verdict", "error_type"),
    [
        (Unsatisfiable(10), HTTPStatusError),
        (Changed("x"), RemoteChangedError),
        (Encoded("gzip"), RangeNotSupportedError),
        (Failure(500, True, None, "boom"), HTTPStatusError),
        (Malformed("bad"), ProtocolError),
    ],
)
def test_error_classes(verdict: Verdict, error_type: type[Exception]) -> None:
    err = verdict.error()
    assert type(err) is error_type
    if error_type is not RemoteChangedError:
        assert isinstance(err, NetworkError)


def test_expected_range() -> None:
    assert expected_range(C(0, 10), None, None) == ByteRange(0, 10)
    assert expected_range(RangeSpec.suffix(10), None, None) is None
    assert expected_range(RangeSpec.suffix(10), None, Identity(size=50)) == ByteRange(40, 50)
    assert expected_range(RangeSpec.suffix(10), 30, Identity(size=50)) == ByteRange(20, 30)


# -- judge never raises ---------------------------------------------------------------------

header_values = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        ["bytes 0-99/1000", "bytes */0", "bytes */*", "100", "multipart/byteranges", '"x"']
    ),
)


@SETTINGS
@given(
    status=st.sampled_from([200, 206, 301, 404, 412, 416, 503, 599]),
    headers=st.dictionaries(
        st.sampled_from(
            [
                "content-range",
                "content-length",
                "content-type",
                "content-encoding",
                "etag",
                "last-modified",
                "location",
                "retry-after",
            ]
        ),
        header_values,
    ),
    requested=st.lists(
        st.one_of(
            st.builds(lambda a, n: C(a, a + n), st.integers(0, 2000), st.integers(1, 200)),
            st.builds(RangeSpec.suffix, st.integers(1, 2000)),
        ),
        max_size=2,
    ),
    pinned=st.sampled_from([None, PINNED]),
)
def test_judge_always_returns_a_verdict(
    status: int,
    headers: dict[str, str],
    requested: list[RangeSpec],
    pinned: Identity | None,
) -> None:
    verdict = judge(requested, status, headers, pinned, now=NOW)
    assert isinstance(verdict, Verdict)
    if isinstance(verdict, Partial):
        assert status == 206 and requested
        if len(requested) == 1 and verdict.total is not None:
            assert verdict.range == requested[0].resolve(verdict.total)


def test_open_ended_with_unknown_total_checks_the_start() -> None:
    """A resumed download (`bytes=N-`) of a file whose size the server does not tell."""
    verdict = judge([RangeSpec.open_ended(5)], 206, H(content_range="bytes 5-99/*"), None, now=0)
    assert isinstance(verdict, Partial)
    assert verdict.range == ByteRange(5, 100) and verdict.total is None


# -- a 200 carrying a Content-Range; sizes learned later ---------------------------------------


@pytest.mark.parametrize(
    ("content_range", "content_length"),
    [
        ("bytes 900-999/1000", "100"),  # the tail, sent as if it were the file
        ("bytes 900-999/1000", None),
        ("bytes 0-99/1000", "100"),
        ("bytes 0-99/*", "100"),
        ("bytes 0-999/1000", "999"),
        ("bytes */1000", "100"),
        ("bytes zero-99/100", "100"),
    ],
)
@pytest.mark.parametrize("requested", [[RangeSpec.suffix(100)], [C(0, 100)], []])
def test_200_with_a_content_range_of_a_part_is_malformed(
    content_range: str, content_length: str | None, requested: Sequence[RangeSpec]
) -> None:
    headers = H(content_range=content_range)
    if content_length is not None:
        headers["content-length"] = content_length
    verdict = run(200, headers, requested)
    assert isinstance(verdict, Malformed), verdict
    assert "Content-Range" in verdict.reason


@pytest.mark.parametrize("content_range", ["bytes 0-999/1000", "bytes */1000"])
def test_200_with_a_content_range_of_the_whole_file_is_full(content_range: str) -> None:
    verdict = run(200, H(content_range=content_range))
    assert verdict == Full(1000, Identity(size=1000), range_ignored=True)
    verdict = run(200, H(content_range=content_range, content_length="1000"))
    assert verdict == Full(1000, Identity(size=1000), range_ignored=True)


def test_a_size_below_the_bytes_received_is_a_change() -> None:
    verdict = size_contradiction(50, 1000)
    assert isinstance(verdict, Changed)
    assert isinstance(verdict.error(), RemoteChangedError)
    assert size_contradiction(1000, 1000) is None
    assert size_contradiction(5000, 1000) is None
