"""rangeio.aio: the async faces: AsyncHttpFile and ``open``, RangeStream, ``haul`` and ``download``."""

from rangeio._async.bulk import FetchResult, fetch_many
from rangeio._async.download import download, haul
from rangeio._async.file import AsyncHttpFile, open
from rangeio._async.streams import AsyncRangeResponse as RangeResponse
from rangeio._async.streams import AsyncRangeStream as RangeStream

__all__ = [
    "AsyncHttpFile",
    "FetchResult",
    "RangeResponse",
    "RangeStream",
    "download",
    "fetch_many",
    "haul",
    "open",
]
