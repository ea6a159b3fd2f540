"""hctef.aio's ``AsyncHttpFile`` on rangeio: ``from rangeio.compat.hctef.aio import AsyncHttpFile``."""

from __future__ import annotations

from typing import Any, Literal

from rangeio._async.file import AsyncHttpFile as _AsyncHttpFile


class AsyncHttpFile(_AsyncHttpFile):
    """hctef's signature and defaults; ``async with`` (or ``await open()``) opens it, ``clone()``
    gives an independent cursor sharing the session and cache. Everything else is
    ``rangeio.aio.AsyncHttpFile``."""

    def __init__(
        self,
        url: str,
        minimum_range_request_bytes: int = 8192,
        prefetch_bytes: int = 1048576,
        prefetch_direction: Literal["START", "END"] = "END",
        **options: Any,
    ) -> None:
        super().__init__(
            url,
            minimum_range_request_bytes=minimum_range_request_bytes,
            prefetch_bytes=prefetch_bytes,
            prefetch_direction=prefetch_direction,
            **options,
        )


__all__ = ["AsyncHttpFile"]
