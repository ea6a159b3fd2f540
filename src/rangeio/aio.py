"""rangeio.aio: the async faces: AsyncHttpFile and ``open``, RangeStream, ``haul``, ``download``, formats."""

from rangeio._lazy import lazy_names

# Each name loads on first use (PEP 562), as in `rangeio`: `rangeio.aio.open` loads asyncio and
# the async file's shell, `download` the download engine, `fetch_many` the bulk planner, `formats`
# the format planners (each of its modules on first use too).
_LAZY = {
    "AsyncHttpFile": "rangeio._async.file:AsyncHttpFile",
    "FetchResult": "rangeio._async.bulk:FetchResult",
    "RangeResponse": "rangeio._async.streams:AsyncRangeResponse",
    "RangeStream": "rangeio._async.streams:AsyncRangeStream",
    "download": "rangeio._async.download:download",
    "fetch_many": "rangeio._async.bulk:fetch_many",
    "formats": "rangeio._async.formats",
    "haul": "rangeio._async.download:haul",
    "open": "rangeio._async.file:open",
    "probe": "rangeio._async.probe:probe",
    "set_client_factory": "rangeio._clients:set_async_client_factory",
}

TYPE_CHECKING = False  # not typing's: see rangeio/__init__.py
if not TYPE_CHECKING:
    __getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
else:
    from rangeio._async import formats as formats
    from rangeio._async.bulk import FetchResult, fetch_many
    from rangeio._async.download import download, haul
    from rangeio._async.file import AsyncHttpFile, open
    from rangeio._async.probe import probe
    from rangeio._async.streams import AsyncRangeResponse as RangeResponse
    from rangeio._async.streams import AsyncRangeStream as RangeStream
    from rangeio._clients import set_async_client_factory as set_client_factory

__all__ = [
    "AsyncHttpFile",
    "FetchResult",
    "RangeResponse",
    "RangeStream",
    "download",
    "fetch_many",
    "haul",
    "open",
    "probe",
    "set_client_factory",
]
