"""hctef's ``HttpFile`` on rangeio: ``from rangeio.compat.hctef import HttpFile``.

As hctef's, constructing the file makes no request and ``with`` (or ``open()``) opens it: this
is rangeio's lazy file (``rangeio.open(url, lazy=True)``), whose first read also opens it.
"""

from __future__ import annotations

from typing import Any, Literal

from rangeio._sync.file import HttpFile as _HttpFile
from rangeio.compat.hctef.exceptions import (
    HctefError,
    HctefNetworkError,
    HctefUrlError,
    RangeRequestsUnsupportedError,
)


class HttpFile(_HttpFile):
    """hctef's signature and defaults (8 KiB minimum request, 1 MiB prefetched from the END);
    everything else is ``rangeio.HttpFile``."""

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
            lazy=True,
            minimum_range_request_bytes=minimum_range_request_bytes,
            prefetch_bytes=prefetch_bytes,
            prefetch_direction=prefetch_direction,
            **options,
        )

    def __enter__(self) -> HttpFile:
        self.open()
        return self


__version__ = "0.1.1"  # the hctef release whose API this mirrors

__all__ = [
    "HctefError",
    "HctefNetworkError",
    "HctefUrlError",
    "HttpFile",
    "RangeRequestsUnsupportedError",
]
