"""Where the open's prefetch goes and how much it takes: from the URL, then from the first answer."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

KiB = 1024
MiB = 1024 * KiB

START = "START"
END = "END"
AUTO = "AUTO"
DIRECTIONS = frozenset({AUTO, START, END})

# The suffix a format with its index at the end gets: a Parquet footer, a zip central directory
# or an Arrow IPC footer is usually well under 1 MiB, even for wide tables or archives of
# thousands of members, and one round trip then brings all of it (fsspec's default block is
# 5 MiB; 1 MiB was rangeio's default before "auto" and keeps its one-request footer reads).
END_PREFETCH = 1 * MiB

# The prefix a header-first format gets. GDAL's /vsicurl/ reads 16 KiB first and grows from
# there; 64 KiB holds what the formats that come here keep first: a TIFF/COG header and its
# first IFDs (GDAL's COG driver puts every IFD before the tile data), a PNG's chunks before
# its image data, a JPEG's EXIF (one APP1 segment is at most 64 KiB), an npy header, an HDF5
# superblock and its root group, a CSV's header and first rows, the first tar headers. More
# would be wasted on the small index these formats have: the read that needs the data then
# grows its own read-ahead. At 20 ms RTT and 100 Mbit/s, 64 KiB costs 5 ms over an empty request.
START_PREFETCH = 64 * KiB

# The prefix an HDF5 file (netCDF-4 is one) gets. HDF5 keeps its metadata (object headers, B-tree
# nodes, heaps) in small blocks spread through the file, allocated as objects are written, so a
# file whose groups and small datasets were written first has most of it in its first MiBs, and
# h5py's walk of it makes hundreds of 4 KiB reads there, back and forth. Fetching that region in
# one go is what makes fsspec's walks cheap (its first 5 MiB block); the HDF Group's advice for
# cloud reads (paged aggregation) likewise reads metadata in pages of MiBs. 2 MiB holds the
# metadata of the benchmark's 240-object file and costs 160 ms at 100 Mbit/s where a walk of
# small reads would cost a round trip each.
HDF5_PREFETCH = 2 * MiB
HDF5_EXTENSIONS = frozenset({".h5", ".hdf5", ".hdf", ".he5", ".nc", ".nc4"})

# Extensions whose index (or everything a reader needs first) sits at the end of the file.
END_EXTENSIONS = frozenset(
    {
        # zip and the formats built on it
        ".zip", ".whl", ".jar", ".war", ".apk", ".egg", ".nupkg", ".conda", ".docx", ".xlsx",
        ".pptx", ".odt", ".ods", ".epub", ".kmz",
        # columnar files with a footer
        ".parquet", ".pq", ".parq", ".orc", ".arrow", ".feather", ".ipc",
    }
)  # fmt: skip

# Extensions whose header comes first: reading starts at byte 0.
START_EXTENSIONS = frozenset(
    {
        # images (TIFF and COG, PNG, JPEG and the rest)
        ".tif", ".tiff", ".cog", ".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp",
        # text tables and lines
        ".csv", ".tsv", ".txt", ".jsonl", ".ndjson",
        # arrays and scientific files (HDF5 and netCDF keep their superblock at the start)
        ".npy", ".h5", ".hdf5", ".hdf", ".he5", ".nc", ".nc4", ".fits", ".las", ".laz",
        ".safetensors", ".gguf", ".pmtiles",
        # archives and streams read from the start
        ".tar", ".tgz", ".gz", ".bz2", ".zst",
    }
)  # fmt: skip

# Content-Type (the media type, without parameters) of formats with an index at the end...
END_MEDIA_TYPES = frozenset(
    {
        "application/zip",
        "application/x-zip-compressed",
        "application/java-archive",
        "application/vnd.apache.parquet",
        "application/x-parquet",
        "application/vnd.apache.arrow.file",
    }
)
# ... and of header-first ones.
START_MEDIA_TYPES = frozenset(
    {
        "image/tiff",
        "image/tiff; application=geotiff",
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "text/csv",
        "text/tab-separated-values",
        "application/x-hdf5",
        "application/x-hdf",
        "application/x-netcdf",
        "application/x-tar",
        "application/x-npy",
    }
)

# Magic bytes at offset 0 (or, for tar, 257) and what they say about where the index is.
HEAD_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"PK\x03\x04", END),  # zip: local headers first, central directory at the end
    (0, b"PK\x05\x06", END),  # an empty zip: only its end record
    (0, b"PAR1", END),  # Parquet: the footer holds the schema and every chunk's offset
    (0, b"ARROW1", END),  # Arrow IPC file: footer at the end
    (0, b"ORC", END),  # ORC: postscript and footer at the end
    (0, b"II*\x00", START),  # TIFF, little-endian
    (0, b"MM\x00*", START),  # TIFF, big-endian
    (0, b"II+\x00", START),  # BigTIFF
    (0, b"MM\x00+", START),
    (0, b"\x89PNG\r\n\x1a\n", START),
    (0, b"\xff\xd8\xff", START),  # JPEG
    (0, b"\x93NUMPY", START),
    (0, b"\x89HDF\r\n\x1a\n", START),  # HDF5 with its superblock at the start
    (0, b"CDF\x01", START),  # netCDF classic
    (0, b"CDF\x02", START),
    (0, b"\x1f\x8b", START),  # gzip: a stream, read from the start
    (257, b"ustar", START),  # tar (POSIX and GNU)
)
# Magic bytes at the very end of a file.
TAIL_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"PAR1", END),
    (b"ARROW1", END),
)


# The prefetch takes at most this share of the cache: until read, it stays cached beside the read
# in progress (up to half the cache, see _engine/remote.py) and what a stream brings past that
# read; a prefetch evicted before it is read would be fetched twice.
PREFETCH_CACHE_SHARE = 4


@dataclass(frozen=True, slots=True)
class Prefetch:
    """What the open request asks for: ``size`` bytes from the ``direction`` end of the file."""

    direction: str
    size: int


def url_extension(url: str) -> str:
    """The lowercased extension of the URL's last path segment ("" without one); the query
    (a presigned URL's signature) and the fragment are not part of it."""
    path = unquote(urlsplit(url).path)
    name = path.rsplit("/", 1)[-1].lower()
    dot = name.rfind(".")
    return name[dot:] if dot > 0 else ""


def direction_for_url(url: str) -> str | None:
    """START or END when the URL's extension names a format, else None."""
    ext = url_extension(url)
    if ext in END_EXTENSIONS:
        return END
    if ext in START_EXTENSIONS:
        return START
    return None


def choose_prefetch(
    url: str, direction: str, size: int | None, cache_bytes: int | None = None
) -> Prefetch:
    """The open's prefetch for ``url``: ``direction`` AUTO picks by the extension.

    A URL that names no format is prefetched from the END, as before "auto": the formats with an
    index at the end pay a round trip for every missed footer (zip, Parquet, Arrow), a
    header-first format pays the same single round trip for its header either way, and files
    behind extension-less URLs (object stores, download endpoints) are as often one as the other.

    ``size`` None is the size that suits the direction (END_PREFETCH or START_PREFETCH); a number
    the user gave is kept. Either is cut to a quarter of ``cache_bytes`` when there is a cache
    (PREFETCH_CACHE_SHARE): bytes prefetched beyond what it holds are evicted before they are
    read (a 1 MiB tail in a 2 MiB cache was fetched again by a whole-file read).
    """
    wanted = direction.upper()
    if wanted not in DIRECTIONS:
        raise ValueError(f"prefetch_direction must be 'auto', 'END' or 'START', not {direction!r}")
    if wanted == AUTO:
        wanted = direction_for_url(url) or END
    if size is None:
        if wanted == END:
            size = END_PREFETCH
        elif url_extension(url) in HDF5_EXTENSIONS:
            size = HDF5_PREFETCH
        else:
            size = START_PREFETCH
    if cache_bytes:
        size = min(size, cache_bytes // PREFETCH_CACHE_SHARE)
    return Prefetch(wanted, max(size, 0))


def media_type(content_type: str | None) -> str:
    """The media type of a Content-Type value, lowercased, without parameters."""
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def direction_from_answer(
    content_type: str | None, head: bytes | None, tail: bytes | None
) -> str | None:
    """Where the file's index is, from the first answer: the magic bytes (``head``, the first
    bytes of the file, or ``tail``, its last ones, whichever the prefetch brought) and, failing
    those, its Content-Type. None when nothing tells (a generic ``application/octet-stream``)."""
    if head:
        for offset, magic, where in HEAD_MAGIC:
            if head[offset : offset + len(magic)] == magic:
                return where
    if tail:
        for magic, where in TAIL_MAGIC:
            if tail.endswith(magic):
                return where
    kind = media_type(content_type)
    if kind in END_MEDIA_TYPES:
        return END
    if kind in START_MEDIA_TYPES or kind.startswith("image/tiff"):
        return START
    return None


def index_hint(
    prefetched: Prefetch, learned: str | None, file_size: int, size: int | None
) -> tuple[int, int] | None:
    """The span ``[start, stop)`` the first read that touches it should fetch whole, when the
    first answer showed the open prefetched the wrong end: a zip or Parquet file found by its
    magic bytes in a START prefetch keeps its index in the last END_PREFETCH bytes (or the
    user's ``size``), and the reader's first look there (the 22-byte end record, the 8-byte
    footer length) would otherwise cost one request and the index itself another. None when
    the prefetch was right, or covered the file.

    A header-first file found in an END prefetch needs nothing: its reader starts at byte 0,
    and a read there is planned like any other.
    """
    if learned != END or prefetched.direction != START:
        return None
    want = END_PREFETCH if size is None else size
    start = max(file_size - want, prefetched.size)
    if start >= file_size:
        return None
    return (start, file_size)
