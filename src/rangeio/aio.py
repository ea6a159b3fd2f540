"""rangeio.aio: the async random-access file (AsyncHttpFile), ``open``, ``haul`` and ``download``."""

from rangeio._async.download import download, haul
from rangeio._async.file import AsyncHttpFile, open

__all__ = ["AsyncHttpFile", "download", "haul", "open"]
