"""Where the open's prefetch goes and how much it takes: from the URL, then from the first answer."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from rangeio._core.records import Record

KiB = 1024
MiB = 1024 * KiB

START = "START"
END = "END"
AUTO = "AUTO"
DIRECTIONS = frozenset({AUTO, START, END})

# The suffix a columnar file gets (Parquet, ORC, Arrow), and any file whose URL names no format:
# a Parquet footer or an Arrow IPC footer is usually well under 1 MiB, even for wide tables, and
# one round trip then brings all of it (fsspec's default block is 5 MiB; 1 MiB was rangeio's
# default before "auto"). pyarrow reads the last 64 KiB first, so a suffix under that would cost
# it a second request at once; the bytes above 64 KiB are the last row group's data, which a
# query reading a column usually reads (the readers benchmark's pandas read_parquet: 8 requests
# with 1 MiB, 9 with 64 KiB, fsspec 8). A footer longer than the suffix is fetched whole by the
# first read that touches it (``index_hint``).
END_PREFETCH = 1 * MiB

# The suffix a zip-based file gets (.zip, .whl, .jar, ...): its readers (zipfile, pip's lazy
# wheel) read the 22-byte end record, then the whole central directory where that record says,
# then the members they want. A suffix that holds the directory saves one request; one that is
# longer brings bytes before the directory that nobody asked for (a 1 MiB suffix read 25 times
# what fsspec read for a wheel's METADATA). 16 KiB is GDAL's /vsicurl/ first read, what
# /vsizip/ opens a remote zip with (pip's lazy wheel fetches its last 10 KiB first). It holds
# the end records (22 bytes, 98 with zip64's) and the directory of a ~200-member archive (an
# entry is 46 bytes plus its name); past that, the end record says where the directory starts
# and the first read there fetches the rest of it whole (``index_hint``): two requests, and not
# a byte before the directory. (``rangeio.formats.zip.ZipStream`` reads the directory as soon as
# it opens and asks for a larger suffix itself.)
ZIP_END_PREFETCH = 16 * KiB

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

# Extensions whose index (or everything a reader needs first) sits at the end of the file:
# zip and the formats built on it (ZIP_END_PREFETCH) ...
ZIP_EXTENSIONS = frozenset(
    {
        ".zip", ".whl", ".jar", ".war", ".apk", ".egg", ".nupkg", ".conda", ".docx", ".xlsx",
        ".pptx", ".odt", ".ods", ".epub", ".kmz",
    }
)  # fmt: skip
# ... and columnar files with a footer (END_PREFETCH).
END_EXTENSIONS = ZIP_EXTENSIONS | frozenset(
    {".parquet", ".pq", ".parq", ".orc", ".arrow", ".feather", ".ipc"}
)

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


class Prefetch(Record):
    """What the open request asks for: ``size`` bytes from the ``direction`` end of the file."""

    __slots__ = ("direction", "size")
    direction: str
    size: int

    def __init__(self, direction: str, size: int) -> None:
        object.__setattr__(self, "direction", direction)
        object.__setattr__(self, "size", size)


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

    ``size`` None is the size that suits the direction and the format (``default_size``); a
    number the user gave is kept. Either is cut to a quarter of ``cache_bytes`` when there is a cache
    (PREFETCH_CACHE_SHARE): bytes prefetched beyond what it holds are evicted before they are
    read (a 1 MiB tail in a 2 MiB cache was fetched again by a whole-file read).
    """
    wanted = direction.upper()
    if wanted not in DIRECTIONS:
        raise ValueError(f"prefetch_direction must be 'auto', 'END' or 'START', not {direction!r}")
    if wanted == AUTO:
        wanted = direction_for_url(url) or END
    if size is None:
        size = default_size(url, wanted)
    if cache_bytes:
        size = min(size, cache_bytes // PREFETCH_CACHE_SHARE)
    return Prefetch(wanted, max(size, 0))


def default_size(url: str, direction: str) -> int:
    """The prefetch that suits ``direction`` (START or END) for the format ``url`` names:
    ZIP_END_PREFETCH from the end of a zip-based file, END_PREFETCH from the end of any other
    (a columnar file, or one the URL does not name); from the start HDF5_PREFETCH for HDF5
    and netCDF-4, START_PREFETCH for the rest."""
    ext = url_extension(url)
    if direction == START:
        return HDF5_PREFETCH if ext in HDF5_EXTENSIONS else START_PREFETCH
    return ZIP_END_PREFETCH if ext in ZIP_EXTENSIONS else END_PREFETCH


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
    prefetched: Prefetch,
    learned: str | None,
    file_size: int,
    size: int | None,
    tail: bytes | None = None,
    cache_bytes: int | None = None,
    max_request_bytes: int | None = None,
) -> tuple[int, int] | None:
    """The span ``[start, stop)`` the first read that touches it should fetch whole: the part
    of the file's index the open's prefetch did not bring. None when there is none to fetch.

    - The prefetch brought the file's ``tail`` (its last ``len(tail)`` bytes): the index is where
      that tail says (``index_start``: a zip's central directory, a Parquet or Arrow footer),
      and the part before the tail is the span, one request where the reader's own reads might
      take several (a reader walking the directory entry by entry). There is no span when it
      would be longer than a quarter of ``cache_bytes`` (PREFETCH_CACHE_SHARE: the cache could
      not keep it until read) or than one request may be (``max_request_bytes``, the read
      policy's): the reader's own reads are then planned as any other.
    - A START prefetch found a zip or Parquet file by its magic bytes (``learned`` END): its
      index is in the last ``size`` bytes (END_PREFETCH when None), and the reader's first look
      there (the 22-byte end record, the 8-byte footer length) would otherwise cost one
      request and the index itself another.

    A header-first file found in an END prefetch needs nothing: its reader starts at byte 0,
    and a read there is planned like any other.
    """
    if tail is not None:
        tail_start = file_size - len(tail)
        start = index_start(tail, file_size)
        if start is None or start >= tail_start:
            return None
        length = tail_start - start
        if cache_bytes is not None and length > cache_bytes // PREFETCH_CACHE_SHARE:
            return None
        if max_request_bytes is not None and length > max_request_bytes:
            return None
        return (start, tail_start)
    if learned != END or prefetched.direction != START:
        return None
    want = END_PREFETCH if size is None else size
    start = max(file_size - want, prefetched.size)
    if start >= file_size:
        return None
    return (start, file_size)


# What the last bytes of a file say of where its index starts (APPNOTE.TXT 4.3.14-16 for zip;
# Parquet's and Arrow IPC's file layouts): offsets and lengths are little-endian.
_EOCD_SIGNATURE = b"PK\x05\x06"
_EOCD_SIZE = 22  # then a comment of at most 65535 bytes
_ZIP64_LOCATOR_SIGNATURE = b"PK\x06\x07"
_ZIP64_LOCATOR_SIZE = 20
_ZIP64_EOCD_SIGNATURE = b"PK\x06\x06"
_ZIP64_EOCD_SIZE = 56  # before its extensible data
_CENTRAL_ENTRY_SIZE = 46  # a directory entry before its name, extra field and comment
_PARQUET_MAGICS = (b"PAR1", b"PARE")  # plain and encrypted footers
_ARROW_MAGIC = b"ARROW1"


def index_start(tail: bytes, file_size: int) -> int | None:
    """Where the index of the file whose last bytes are ``tail`` starts: a Parquet footer
    (``<footer><u32 length>PAR1``), an Arrow IPC footer (``<footer><i32 length>ARROW1``) or a
    zip's central directory (the end record's directory size, counted back from the record:
    bytes prepended to the archive, as in self-extractors, shift the offset it states). None
    when the tail holds no such record, or a record that contradicts the file's size."""
    start: int | None
    if tail[-4:] in _PARQUET_MAGICS and len(tail) >= 8:
        start = file_size - 8 - _u32(tail, len(tail) - 8)
    elif tail.endswith(_ARROW_MAGIC) and len(tail) >= 10:
        start = file_size - 10 - _u32(tail, len(tail) - 10)
    else:
        found = _zip_directory_start(tail)
        start = None if found is None else file_size - len(tail) + found
    return start if start is not None and start >= 0 else None


def _zip_directory_start(tail: bytes) -> int | None:
    """Where a zip's central directory starts, counted from the start of ``tail`` (negative:
    before it), or None without a sound end record in ``tail``."""
    eocd = find_zip_end_record(tail)
    if eocd is None:
        return None
    directory_end, entries, directory_size = eocd, _u16(tail, eocd + 10), _u32(tail, eocd + 12)
    locator = eocd - _ZIP64_LOCATOR_SIZE
    if locator >= 0 and tail[locator : locator + 4] == _ZIP64_LOCATOR_SIGNATURE:
        # zip64: the sizes are in the zip64 end record, which normally ends at the locator.
        record = locator - _ZIP64_EOCD_SIZE
        if record < 0 or tail[record : record + 4] != _ZIP64_EOCD_SIGNATURE:
            return None  # not in the tail (extensible data, or a short tail): nothing known
        directory_end, entries = record, _u64(tail, record + 32)
        directory_size = _u64(tail, record + 40)
    if entries * _CENTRAL_ENTRY_SIZE > directory_size:
        return None  # more entries than the directory holds: not an end record after all
    return directory_end - directory_size


def find_zip_end_record(tail: bytes, *, exact_only: bool = True) -> int | None:
    """Where the zip end of central directory record starts in ``tail`` (the file's last
    bytes), or None. The record is looked for from the end; the one whose comment ends exactly
    at the end of the file wins, else (unless ``exact_only``) the last one whose comment fits:
    bytes were appended after the archive. The one place a zip end record is found: the open's
    index hint here, and ``formats/zip.py``."""
    # A comment is at most 65535 bytes: an exact record starts no further back than this.
    floor = max(0, len(tail) - _EOCD_SIZE - 0xFFFF) if exact_only else 0
    fallback = None
    pos = tail.rfind(_EOCD_SIGNATURE, floor)
    while pos >= 0:
        if pos + _EOCD_SIZE <= len(tail):
            end = pos + _EOCD_SIZE + _u16(tail, pos + 20)
            if end == len(tail):
                return pos
            if end < len(tail) and fallback is None:
                fallback = pos
        pos = tail.rfind(_EOCD_SIGNATURE, floor, pos)
    return None if exact_only else fallback


def _u16(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 2], "little")


def _u32(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 4], "little")


def _u64(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 8], "little")
