"""is_retryable, the one retry decision, and coerce_retries, the one reading of ``retries=``."""

from __future__ import annotations

import pytest

from rangeio import errors
from rangeio._core.retry import RetryPolicy, coerce_retries, is_retryable

VERDICTS = [
    (errors.NetworkError("reset"), True),
    (errors.NetworkTimeoutError("slow"), True),
    (errors.PartialDownloadError("cut", bytes_done=1, total=2), True),
    (errors.HTTPStatusError("503", status=503, is_transient=True), True),
    (errors.HTTPStatusError("404", status=404), False),
    (errors.RedirectError("302", status=302, location="/x"), False),
    (errors.ProtocolError("bad Content-Range"), False),
    (errors.TLSError("untrusted"), False),
    (errors.RangeNotSupportedError("gzip"), False),
    (errors.RemoteChangedError("etag"), False),
    (errors.ChecksumMismatchError("x", expected="a", actual="b", algorithm="sha256"), False),
    (errors.UnsafePathError("fifo", path="/x"), False),
    (OSError("disk full"), False),
    (ValueError("bug"), False),
]


@pytest.mark.parametrize(("error", "retryable"), VERDICTS, ids=lambda v: type(v).__name__)
def test_is_retryable(error: BaseException, retryable: bool) -> None:
    assert is_retryable(error) is retryable


def test_retries_none_is_the_faces_default() -> None:
    default = RetryPolicy(attempts=8)
    assert coerce_retries(None, default) is default
    assert coerce_retries(0, default) == RetryPolicy(attempts=1)
    assert coerce_retries(2, default) == RetryPolicy(attempts=3)
    policy = RetryPolicy(attempts=5)
    assert coerce_retries(policy, default) is policy
    for bad in (-1, True, 1.5, "3"):
        with pytest.raises(TypeError):
            coerce_retries(bad, default)  # type: ignore[arg-type]
