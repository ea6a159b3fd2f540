"""rangeio: HTTP byte ranges done right: random-access files, range streams, crash-safe downloads."""

from rangeio._core.download import DownloadPolicy
from rangeio._core.headers import RangeSpec
from rangeio._core.options import Timeout
from rangeio._core.ranges import ByteRange, RangeSet
from rangeio._core.retry import RetryPolicy
from rangeio._core.stall import LowSpeed
from rangeio._core.stats import Stats
from rangeio._engine.download import DownloadResult, HaulResult
from rangeio._engine.streams import RangeOverlapError, SingleRequestError
from rangeio._sync.download import download, haul
from rangeio._sync.file import HttpFile, open
from rangeio._sync.streams import RangeResponse, RangeStream
from rangeio.errors import (
    ChecksumMismatchError,
    DownloadLockedError,
    ForkError,
    HeaderParseError,
    HTTPStatusError,
    NetworkError,
    NetworkTimeoutError,
    PartialDownloadError,
    ProtocolError,
    RangeioError,
    RangeNotSupportedError,
    RemoteChangedError,
    TLSError,
    UnsafePathError,
    UrlError,
)

__version__ = "0.1.0"

__all__ = [
    "ChecksumMismatchError",
    "DownloadLockedError",
    "DownloadPolicy",
    "DownloadResult",
    "ForkError",
    "HaulResult",
    "PartialDownloadError",
    "RangeOverlapError",
    "RangeResponse",
    "RangeStream",
    "SingleRequestError",
    "download",
    "haul",
    "ByteRange",
    "HTTPStatusError",
    "HeaderParseError",
    "HttpFile",
    "LowSpeed",
    "NetworkError",
    "NetworkTimeoutError",
    "ProtocolError",
    "RangeNotSupportedError",
    "RangeSet",
    "RangeSpec",
    "RangeioError",
    "RemoteChangedError",
    "RetryPolicy",
    "Stats",
    "UnsafePathError",
    "TLSError",
    "Timeout",
    "UrlError",
    "open",
]
