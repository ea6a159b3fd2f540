"""rangeio.aio.formats: the format planners on AsyncHttpFile (zip, tar, png, parquet, conda).

Each module has ``open(url_or_file, **options)``, used as ``async with`` (or awaited), and runs
the programs of its ``rangeio.formats`` twin with the async runner: the format logic is the
same code. Each module loads on first use.
"""

from rangeio._lazy import lazy_names

_LAZY = {
    "conda": "rangeio._async.formats.conda",
    "parquet": "rangeio._async.formats.parquet",
    "png": "rangeio._async.formats.png",
    "tar": "rangeio._async.formats.tar",
    "zip": "rangeio._async.formats.zip",
}

TYPE_CHECKING = False  # not typing's: see rangeio/__init__.py
if not TYPE_CHECKING:
    __getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
else:
    from rangeio._async.formats import conda, parquet, png, tar, zip

__all__ = ["conda", "parquet", "png", "tar", "zip"]
