"""rangeio.aio: the async faces: AsyncHttpFile and ``open``, RangeStream, ``haul`` and ``download``."""

from rangeio._async.download import download, haul
from rangeio._async.file import AsyncHttpFile, open
from rangeio._async.streams import AsyncRangeStream as RangeStream

__all__ = ["AsyncHttpFile", "RangeStream", "download", "haul", "open"]
