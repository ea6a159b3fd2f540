"""rangeio: HTTP byte ranges done right: random-access files, range streams, crash-safe downloads."""

from rangeio._lazy import lazy_names
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
    RedirectError,
    RemoteChangedError,
    TLSError,
    UnsafePathError,
    UrlError,
)

# Everything but the errors loads on first use (PEP 562): `import rangeio` costs a few
# milliseconds, `rangeio.open` loads the file's engine and core (not urllib3: the first open
# does), `rangeio.download` the download engine and its disk layer, `rangeio.aio` asyncio and
# the async shell. So the CLI's start-up, a worker that only downloads and one that only reads
# each pay for what they use. The errors stay eager: they are small, and `except
# rangeio.NetworkError` must not import anything. `tests/test_lazy_imports.py` holds the line.
_LAZY = {
    "ByteRange": "rangeio._core.ranges:ByteRange",
    "DownloadPolicy": "rangeio._core.download:DownloadPolicy",
    "DownloadResult": "rangeio._engine.download:DownloadResult",
    "DownloadState": "rangeio._core.download:DownloadState",
    "HaulResult": "rangeio._engine.download:HaulResult",
    "HttpFile": "rangeio._sync.file:HttpFile",
    "LowSpeed": "rangeio._core.stall:LowSpeed",
    "ProbeResult": "rangeio._core.probe:ProbeResult",
    "RangeOverlapError": "rangeio._engine.streams:RangeOverlapError",
    "RangeResponse": "rangeio._sync.streams:RangeResponse",
    "SingleRequestError": "rangeio._engine.streams:SingleRequestError",
    "RangeSet": "rangeio._core.ranges:RangeSet",
    "RangeSpec": "rangeio._core.headers:RangeSpec",
    "RangeStream": "rangeio._sync.streams:RangeStream",
    "RetryPolicy": "rangeio._core.retry:RetryPolicy",
    "ScalingPolicy": "rangeio._core.scaling:ScalingPolicy",
    "Stats": "rangeio._core.stats:Stats",
    "Timeout": "rangeio._core.options:Timeout",
    "download": "rangeio._sync.download:download",
    "haul": "rangeio._sync.download:haul",
    "open": "rangeio._sync.file:open",
    "probe": "rangeio._sync.probe:probe",
    "set_client_factory": "rangeio._clients:set_client_factory",
    # Submodules, so that `import rangeio; rangeio.aio.open(...)` works.
    "aio": "rangeio.aio",
    "formats": "rangeio.formats",
}

# Not `from typing import TYPE_CHECKING`: typing (with re, enum, functools) would triple the
# cost of this import. Type checkers treat the name itself as true: they see the imports
# below, and no module __getattr__ (so a misspelt `rangeio.opne` stays a type error).
TYPE_CHECKING = False
if not TYPE_CHECKING:
    __getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
else:
    from rangeio import aio as aio  # submodules: not in __all__, so `import *` stays light
    from rangeio import formats as formats
    from rangeio._clients import set_client_factory
    from rangeio._core.download import DownloadPolicy, DownloadState
    from rangeio._core.headers import RangeSpec
    from rangeio._core.options import Timeout
    from rangeio._core.probe import ProbeResult
    from rangeio._core.ranges import ByteRange, RangeSet
    from rangeio._core.retry import RetryPolicy
    from rangeio._core.scaling import ScalingPolicy
    from rangeio._core.stall import LowSpeed
    from rangeio._core.stats import Stats
    from rangeio._engine.download import DownloadResult, HaulResult
    from rangeio._engine.streams import RangeOverlapError, SingleRequestError
    from rangeio._sync.download import download, haul
    from rangeio._sync.file import HttpFile, open
    from rangeio._sync.probe import probe
    from rangeio._sync.streams import RangeResponse, RangeStream

__version__ = "0.1.0"

__all__ = [
    "ChecksumMismatchError",
    "DownloadLockedError",
    "DownloadPolicy",
    "DownloadResult",
    "DownloadState",
    "ForkError",
    "HaulResult",
    "PartialDownloadError",
    "ProbeResult",
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
    "RedirectError",
    "RangeSet",
    "RangeSpec",
    "RangeioError",
    "RemoteChangedError",
    "RetryPolicy",
    "ScalingPolicy",
    "Stats",
    "UnsafePathError",
    "TLSError",
    "Timeout",
    "UrlError",
    "open",
    "probe",
    "set_client_factory",
]
