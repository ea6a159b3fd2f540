"""hctef.exceptions' names for rangeio's errors (the same classes, so each catches what it says)."""

from __future__ import annotations

from rangeio.errors import NetworkError as HctefNetworkError
from rangeio.errors import RangeioError as HctefError
from rangeio.errors import RangeNotSupportedError as RangeRequestsUnsupportedError
from rangeio.errors import UrlError as HctefUrlError

__all__ = ["HctefError", "HctefNetworkError", "HctefUrlError", "RangeRequestsUnsupportedError"]
