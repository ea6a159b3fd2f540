"""Format planners: read archives, images and tables over HTTP ranges, fetching only what they need."""

from rangeio.formats._common import BytesSource, FormatError, RangeSource
from rangeio.formats.conda import CondaInfo, conda_info
from rangeio.formats.parquet import ParquetPlan
from rangeio.formats.png import PngChunk, PngHeader, PngInfo, png_chunks
from rangeio.formats.tar import TarIndex, TarMember
from rangeio.formats.zip import ZipMember, ZipStream

__all__ = [
    "BytesSource",
    "CondaInfo",
    "FormatError",
    "ParquetPlan",
    "PngChunk",
    "PngHeader",
    "PngInfo",
    "RangeSource",
    "TarIndex",
    "TarMember",
    "ZipMember",
    "ZipStream",
    "conda_info",
    "png_chunks",
]
