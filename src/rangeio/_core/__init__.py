"""The sans-IO core: pure range arithmetic, header codecs, validation, cache and planning; no I/O."""

from rangeio._core.cache import ByteCache
from rangeio._core.exchange import RangeExchange, ReadBody, Request, Result, Skip, Wait
from rangeio._core.headers import (
    ContentRange,
    RangeSpec,
    fold_headers,
    format_content_range,
    format_range,
    parse_content_range,
    parse_range,
)
from rangeio._core.identity import ETag, Identity
from rangeio._core.planner import AccessPattern, ReadPolicy, opening_specs, plan_read, plan_vectored
from rangeio._core.ranges import ByteRange, RangeSet, coalesce, split
from rangeio._core.redirects import ResolvedUrl, check_url
from rangeio._core.retry import RetryPolicy
from rangeio._core.validate import judge

__all__ = [
    "AccessPattern",
    "ByteCache",
    "ByteRange",
    "ContentRange",
    "ETag",
    "Identity",
    "RangeExchange",
    "RangeSet",
    "RangeSpec",
    "ReadBody",
    "ReadPolicy",
    "Request",
    "ResolvedUrl",
    "Result",
    "RetryPolicy",
    "Skip",
    "Wait",
    "check_url",
    "coalesce",
    "fold_headers",
    "format_content_range",
    "format_range",
    "judge",
    "opening_specs",
    "parse_content_range",
    "parse_range",
    "plan_read",
    "plan_vectored",
    "split",
]
