"""rangeio.aio: the async random-access file (AsyncHttpFile) and its ``open``."""

from rangeio._async.file import AsyncHttpFile, open

__all__ = ["AsyncHttpFile", "open"]
