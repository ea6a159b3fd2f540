"""FileOptions: every option is checked once, where the options are made; bad values raise."""

from __future__ import annotations

from typing import Any

import pytest

import rangeio
from rangeio._core.diskcache import BLOCK_SIZE
from rangeio._core.options import FileOptions, Timeout, concurrency_limits


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"prefetch_bytes": -1}, ValueError),
        ({"prefetch_direction": "sideways"}, ValueError),
        ({"cache_bytes": -1}, ValueError),
        ({"multipart": "yes"}, ValueError),
        ({"max_concurrency": 0}, ValueError),
        ({"verify": 3}, TypeError),
        ({"verify": ""}, ValueError),
        ({"cache_dir": 3}, TypeError),
        ({"cache_dir": ""}, ValueError),
        ({"cache_dir_bytes": True}, TypeError),
        ({"cache_dir_bytes": "1G"}, TypeError),
        ({"cache_dir_bytes": BLOCK_SIZE - 1}, ValueError),
        ({"immutable": "yes"}, TypeError),
        ({"retries": -1}, TypeError),
        ({"retries": True}, TypeError),
        ({"retries": 1.5}, TypeError),
        ({"timeout": 0}, ValueError),
        ({"minimum_range_request_bytes": 0}, ValueError),
        ({"no_such_option": 1}, TypeError),
    ],
)
def test_a_bad_value_raises_when_the_options_are_made(
    options: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        FileOptions.from_kwargs(**options)


def test_the_defaults_pass_their_own_check() -> None:
    FileOptions().check()
    assert FileOptions.from_kwargs() == FileOptions()


@pytest.mark.parametrize(
    ("value", "attempts"), [(0, 1), (3, 4), (rangeio.RetryPolicy(attempts=7), 7)]
)
def test_retries_count_retries_after_the_first_attempt(value: Any, attempts: int) -> None:
    assert FileOptions.from_kwargs(retries=value).retries.attempts == attempts


def test_retries_none_is_the_files_default() -> None:
    # None means "not given", as timeout=None does (tests/core/test_retry_decision.py).
    assert FileOptions.from_kwargs(retries=None).retries == FileOptions().retries


def test_a_number_or_a_pair_sets_the_timeouts_and_the_head_timeout_follows_the_read() -> None:
    assert FileOptions.from_kwargs(timeout=5).timeout == Timeout(5.0, 5.0, head=5.0)
    assert FileOptions.from_kwargs(timeout=(2, 7)).timeout == Timeout(2.0, 7.0, head=7.0)
    assert FileOptions.from_kwargs(timeout=None).timeout == Timeout()


def test_planner_knobs_go_to_the_read_policy_and_headers_are_copied() -> None:
    given = {"X-A": "1"}
    made = FileOptions.from_kwargs(gap_fill_bytes=5, headers=given)
    assert made.policy.gap_fill_bytes == 5
    given["X-B"] = "2"
    assert dict(made.headers) == {"X-A": "1"}
    assert FileOptions.from_kwargs(headers=None).headers == {}


def test_good_values_are_accepted() -> None:
    FileOptions.from_kwargs(
        prefetch_bytes=0,
        prefetch_direction="start",
        cache_bytes=0,
        multipart=False,
        max_concurrency=1,
        verify="/etc/ssl/ca.pem",
        cache_dir="/tmp/x",
        cache_dir_bytes=BLOCK_SIZE,
        immutable=True,
    )


def test_concurrency_limits() -> None:
    assert concurrency_limits(None) == (16, 8)
    assert concurrency_limits(3) == (3, 3)
