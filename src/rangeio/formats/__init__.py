"""Format planners: read archives, images and tables over HTTP ranges, fetching only what they need."""

from rangeio.formats._common import BytesSource, FormatError, RangeSource
from rangeio.formats.conda import CondaInfo, CondaPackage, conda_info, conda_payload
from rangeio.formats.parquet import ParquetPlan
from rangeio.formats.png import PngChunk, PngHeader, PngImage, PngInfo, png_chunks
from rangeio.formats.tar import TarIndex, TarMember
from rangeio.formats.zip import Zip64EndRecord, ZipEndRecord, ZipMember, ZipStream

__all__ = [
    "BytesSource",
    "CondaInfo",
    "CondaPackage",
    "FormatError",
    "ParquetPlan",
    "PngChunk",
    "PngHeader",
    "PngImage",
    "PngInfo",
    "RangeSource",
    "TarIndex",
    "TarMember",
    "Zip64EndRecord",
    "ZipEndRecord",
    "ZipMember",
    "ZipStream",
    "conda_info",
    "conda_payload",
    "png_chunks",
]
