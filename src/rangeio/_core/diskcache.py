"""The disk cache's policy: the key, the block layout and codec, what may be served, revalidation, LRU.

Pure code: the disk store (``rangeio/_diskcache.py``) does the file I/O and asks this module every
question. The memory ``ByteCache`` stays the first level; the disk is the second.

- **Key.** An entry is the URL (by its SHA-256, so no URL, and no credential in one, is stored)
  plus the file's *cache identity*: a strong ETag, else Last-Modified plus size. A weak ETag or
  no validator makes a file not reusable across opens (nothing is stored), unless the caller
  says the URL is ``immutable``.
- **Blocks.** The file is cut into fixed blocks of BLOCK_SIZE; each block file holds one
  contiguous extent inside its block, with the entry's key and a checksum in its header. A
  block is served only when its header names the identity this open validated and its bytes
  match their checksum: a torn, truncated, foreign or stale file is dropped, never served.
- **Revalidation.** The open's own range request carries ``If-None-Match`` (strong ETag) or
  ``If-Modified-Since`` (Last-Modified only); a 304 means the stored blocks are still the file's,
  anything else is judged by comparing identities (``revalidate()``).
- **Eviction.** LRU by last use over the whole directory, shared by every process using it.

Block file format, version 1 (integers big-endian)::

    offset  size  field
    0       8     BLOCK_MAGIC  b"\\x89RIOBLK\\n"
    8       2     format version (u16), currently 1
    10      8     block index (u64)
    18      4     extent start inside the block (u32)
    22      4     extent length (u32)
    26      16    entry key: BLAKE2b-128 of (URL digest, identity digest)
    42      16    BLAKE2b-128 of the extent's bytes
    58      n     the extent's bytes
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from collections.abc import Iterable, Sequence
from email.utils import parsedate_to_datetime
from enum import Enum

from rangeio._core.cache import Buffer, ByteCache
from rangeio._core.identity import ETag, Identity
from rangeio._core.ranges import ByteRange
from rangeio._core.records import Record

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

# Judgement call: 256 KiB. Small enough that a random read, rounded out to what was fetched,
# wastes little and that one block file is written in one step; large enough that a 1 GiB
# budget is about 4,000 files (a directory any filesystem lists in milliseconds) and that a
# 1 MiB END prefetch is 4 files. The memory cache joins segments up to 64 KiB and a START
# prefetch is 64 KiB, so a block holds several of either. GDAL's /vsicurl/ uses 16 KiB chunks
# (many tiny files on disk); fsspec's blockcache 5 MiB (a small read caches megabytes).
BLOCK_SIZE = 256 * KiB
# Judgement call: 1 GiB. Thousands of files' footers and directories plus their hot blocks, and
# small enough to leave on a laptop's disk unnoticed. pip's and uv's caches are unbounded;
# hctef's and GDAL's defaults are in the tens of MiB, which a few Parquet files fill.
DEFAULT_CACHE_DIR_BYTES = 1 * GiB
# Eviction frees down to this fraction of the budget, so that the next writes do not each pay
# a scan of the directory (the same hysteresis as ccache's cleanup to 90%).
LOW_WATER = 0.9
# A process rescans the directory once it has written this share of the budget since its last
# scan: the directory exceeds its budget by at most this much per process writing at once.
SCAN_SHARE = 32

BLOCK_MAGIC = b"\x89RIOBLK\n"
META_MAGIC = b"\x89RIOMET\n"
VERSION = 1
_BLOCK_HEADER = struct.Struct(">8sHQII16s16s")
BLOCK_HEADER_BYTES = _BLOCK_HEADER.size
_META_HEADER = struct.Struct(">8sHI")
_DIGEST_BYTES = 16
# The meta record holds a URL digest and validators only: anything larger is not ours.
MAX_META_BYTES = 8 * KiB
MAX_VALIDATOR_CHARS = 1024
URL_KEY = re.compile(r"[0-9a-f]{64}")
BLOCK_NAME = re.compile(r"(?P<index>[0-9]{1,19})\.blk")


def _digest(*parts: bytes) -> bytes:
    h = hashlib.blake2b(digest_size=_DIGEST_BYTES)
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.digest()


def url_key(url: str) -> str:
    """The entry's name: SHA-256 of the URL as given (a presigned URL's changing signature makes
    every open a new entry: what identifies it is what the server is asked)."""
    return hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()


# -- the key --------------------------------------------------------------------------------


def cache_identity(identity: Identity, *, immutable: bool, date: str | None) -> Identity | None:
    """The identity blocks of this answer are stored under, or None when nothing of it may be
    reused by a later open.

    A strong ETag names the bytes (RFC 9110 §8.8.3): kept with the size. Else Last-Modified with
    the size, but only when the answer's Date is at least a second later (§8.8.2.2: a date within
    the second the file was last changed is weak; it may change again within that second and keep
    the same date). A weak ETag or no validator: not reusable, unless ``immutable`` (the caller's
    promise), when the identity is kept as it is.
    """
    if identity.size is None:
        return None
    etag = identity.etag
    if etag is not None and etag.usable_as_precondition:
        return Identity(etag, None, identity.size)
    if etag is None and identity.last_modified is not None:
        if _strong_date(identity.last_modified, date):
            return Identity(None, identity.last_modified, identity.size)
    if immutable:
        return identity
    return None


def _strong_date(last_modified: str, date: str | None) -> bool:
    modified = _parse_date(last_modified)
    if modified is None:
        return False
    if date is None:
        # §6.6.1: an origin with a clock must send Date. Judgement call: without one the date is
        # trusted, as every HTTP cache does; nginx and every CDN send it.
        return True
    served = _parse_date(date)
    return served is not None and served - modified >= 1


def _parse_date(value: str) -> float | None:
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def identity_digest(identity: Identity) -> bytes:
    """The one canonical encoding of a cache identity, hashed."""
    etag = identity.etag
    return _digest(
        b"etag" if etag is not None else b"-",
        etag.header_value().encode("utf-8", "surrogatepass") if etag is not None else b"",
        (identity.last_modified or "").encode("utf-8", "surrogatepass"),
        str(identity.size).encode(),
    )


def entry_key(url_digest: str, identity: Identity) -> bytes:
    """What every block of one entry carries: the URL's digest and the identity's, together."""
    return _digest(url_digest.encode(), identity_digest(identity))


# -- revalidation ---------------------------------------------------------------------------


def conditional_headers(stored: Identity) -> dict[str, str]:
    """The precondition the open's range request carries: 304 when ``stored`` is still current.

    ``If-None-Match`` with a strong ETag (§13.1.2); else ``If-Modified-Since`` with the stored
    Last-Modified (§13.1.3; exact-match on nginx, at-or-after on most servers: both mean
    "unchanged" for a date the file had). A 304 carries no body, so an unchanged file costs the
    open one small exchange; any other answer is the open's own answer, judged by revalidate().
    """
    if stored.etag is not None and stored.etag.usable_as_precondition:
        return {"If-None-Match": stored.etag.header_value()}
    if stored.etag is None and stored.last_modified is not None:
        return {"If-Modified-Since": stored.last_modified}
    return {}


class Outcome(Enum):
    UNCHANGED = "unchanged"  # the stored blocks are the file's: serve them
    CHANGED = "changed"  # drop every stored block of the URL; store the new answer's


def revalidate(
    stored: Identity, *, not_modified: bool, answer: Identity, immutable: bool, date: str | None
) -> Outcome:
    """Whether the blocks stored under ``stored`` may be served, given the open's answer.

    A 304 says yes, unless it names another ETag than the one asked about (a confused cache: the
    stored blocks are dropped). A 206 or 200 (a server ignoring the precondition, or a changed
    file) says yes only when its cache identity is exactly the stored one: a missing ETag is not
    taken as "unchanged" here, unlike between two requests of one open (`Identity.conflict_with`),
    because stale bytes across opens are the one failure a disk cache must never have.
    """
    if not_modified:
        if answer.etag is not None and stored.etag is not None:
            return Outcome.UNCHANGED if answer.etag.strong_equals(stored.etag) else Outcome.CHANGED
        return Outcome.UNCHANGED
    current = cache_identity(answer, immutable=immutable, date=date)
    return Outcome.UNCHANGED if current == stored else Outcome.CHANGED


# -- blocks ---------------------------------------------------------------------------------


def block_span(index: int, size: int, block_size: int = BLOCK_SIZE) -> ByteRange:
    """Where block ``index`` lies in a file of ``size`` bytes (the last one may be short)."""
    start = index * block_size
    return ByteRange(min(start, size), min(start + block_size, size))


def blocks_of(want: ByteRange, block_size: int = BLOCK_SIZE) -> range:
    """The indices of the blocks ``want`` touches."""
    if not want:
        return range(0)
    return range(want.start // block_size, (want.stop - 1) // block_size + 1)


def longest_run(span: ByteRange, gaps: Sequence[ByteRange]) -> ByteRange | None:
    """The longest part of ``span`` outside ``gaps`` (sorted, inside ``span``): the extent of a
    block the memory cache holds whole."""
    best: ByteRange | None = None
    pos = span.start
    for gap in [*gaps, ByteRange(span.stop, span.stop)]:
        if gap.start > pos and (best is None or gap.start - pos > best.length):
            best = ByteRange(pos, gap.start)
        pos = max(pos, gap.stop)
    return best


def choose_extent(stored: ByteRange | None, new: ByteRange) -> ByteRange | None:
    """The extent to write for a block holding ``stored`` when ``new`` bytes of it are at hand,
    or None when the stored one already holds them. Touching or overlapping extents are joined;
    of two apart, the longer is kept (a block holds one extent)."""
    if stored is None:
        return new
    if stored.start <= new.start and new.stop <= stored.stop:
        return None
    if new.start <= stored.stop and stored.start <= new.stop:
        return ByteRange(min(stored.start, new.start), max(stored.stop, new.stop))
    return new if new.length > stored.length else None


class Block(Record):
    """One block file's contents: ``data`` sits at ``start`` in the file."""

    __slots__ = ("index", "start", "data")
    index: int
    start: int
    data: bytes

    def __init__(self, index: int, start: int, data: bytes) -> None:
        object.__setattr__(self, "index", index)
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "data", data)

    @property
    def range(self) -> ByteRange:
        return ByteRange(self.start, self.start + len(self.data))


def encode_block(key: bytes, block: Block, block_size: int = BLOCK_SIZE) -> bytes:
    offset = block.start - block.index * block_size
    if offset < 0 or offset + len(block.data) > block_size or not block.data:
        raise ValueError("a block's extent must be non-empty and inside its block")
    header = _BLOCK_HEADER.pack(
        BLOCK_MAGIC, VERSION, block.index, offset, len(block.data), key, _digest(block.data)
    )
    return header + block.data


def decode_block(
    raw: bytes, key: bytes, index: int, size: int, block_size: int = BLOCK_SIZE
) -> Block | str:
    """The block in ``raw`` if it may be served for ``index`` of the entry ``key`` (a file of
    ``size`` bytes), else why not (the caller drops the file)."""
    if len(raw) < BLOCK_HEADER_BYTES:
        return "truncated header"
    magic, version, got_index, offset, length, got_key, checksum = _BLOCK_HEADER.unpack_from(raw)
    if magic != BLOCK_MAGIC:
        return "not a rangeio block"
    if version != VERSION:
        return f"block format version {version}"
    if got_index != index:
        return f"block {got_index} found where block {index} belongs"
    if got_key != key:
        return "block of another URL or version of the file"
    if len(raw) != BLOCK_HEADER_BYTES + length:
        return f"extent of {length} bytes in a file of {len(raw) - BLOCK_HEADER_BYTES}"
    span = block_span(index, size, block_size)
    start = index * block_size + offset
    if length == 0 or start < span.start or start + length > span.stop:
        return "extent outside its block"
    data = raw[BLOCK_HEADER_BYTES:]
    if _digest(data) != checksum:
        return "checksum mismatch"
    return Block(index, start, data)


# -- the entry's record ---------------------------------------------------------------------


class Meta(Record):
    """What an entry's ``meta`` file holds: the URL's digest and the cache identity. Nothing else
    (no URL, no header, no credential)."""

    __slots__ = ("url_digest", "identity")
    url_digest: str
    identity: Identity

    def __init__(self, url_digest: str, identity: Identity) -> None:
        object.__setattr__(self, "url_digest", url_digest)
        object.__setattr__(self, "identity", identity)


def encode_meta(meta: Meta) -> bytes:
    etag = meta.identity.etag
    body = json.dumps(
        {
            "etag": etag.header_value() if etag is not None else None,
            "last_modified": meta.identity.last_modified,
            "size": meta.identity.size,
            "url_sha256": meta.url_digest,
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    head = _META_HEADER.pack(META_MAGIC, VERSION, len(body)) + body
    return head + _digest(head)


def decode_meta(raw: bytes, url_digest: str) -> Meta | str:
    """The record in ``raw`` if it is an intact version-1 record of ``url_digest``, else why not."""
    if len(raw) > MAX_META_BYTES:
        return "record too large"
    if len(raw) < _META_HEADER.size + _DIGEST_BYTES:
        return "truncated record"
    magic, version, length = _META_HEADER.unpack_from(raw)
    if magic != META_MAGIC:
        return "not a rangeio record"
    if version != VERSION:
        return f"record format version {version}"
    end = _META_HEADER.size + length
    if len(raw) != end + _DIGEST_BYTES or _digest(raw[:end]) != raw[end:]:
        return "checksum mismatch"
    try:
        body = json.loads(raw[_META_HEADER.size : end])
        etag_text, last_modified = body["etag"], body["last_modified"]
        size, digest = body["size"], body["url_sha256"]
    except (ValueError, KeyError, TypeError):
        return "malformed record"
    if digest != url_digest:
        return "record of another URL"
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return "malformed size"
    for text in (etag_text, last_modified):
        if text is not None and (not isinstance(text, str) or len(text) > MAX_VALIDATOR_CHARS):
            return "malformed validator"
    etag = ETag.parse(etag_text) if etag_text is not None else None
    return Meta(digest, Identity(etag, last_modified, size))


# -- eviction -------------------------------------------------------------------------------


class Stored(Record):
    """One file of the directory as a scan saw it: ``last_used`` is its mtime (a disk hit
    touches the block it served)."""

    __slots__ = ("name", "size", "last_used")
    name: str
    size: int
    last_used: float

    def __init__(self, name: str, size: int, last_used: float) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "size", size)
        object.__setattr__(self, "last_used", last_used)


def to_evict(files: Iterable[Stored], budget: int) -> list[str]:
    """Which files go, least recently used first, when ``files`` exceed ``budget``: down to
    LOW_WATER of it. Ties go by name, so that two processes evicting at once pick the same."""
    listing = sorted(files, key=lambda f: (f.last_used, f.name))
    total = sum(f.size for f in listing)
    if total <= budget:
        return []
    target = int(budget * LOW_WATER)
    out: list[str] = []
    for f in listing:
        if total <= target:
            break
        out.append(f.name)
        total -= f.size
    return out


def scan_due(written_since_scan: int, budget: int) -> bool:
    """Whether a process has written enough since its last scan to look at the directory again."""
    return written_since_scan * SCAN_SHARE >= budget


# -- the memory cache, as the first level -----------------------------------------------------


class TrackedCache(ByteCache):
    """A ByteCache that remembers which blocks received bytes from the network since the last
    ``take_dirty()``: those are written through to the disk. Bytes read from the disk go in by
    ``insert_clean`` and are not written back."""

    def __init__(self, budget: int) -> None:
        super().__init__(budget)
        self._dirty: set[int] = set()

    def insert(
        self,
        start: int,
        data: Buffer,
        *,
        protect: ByteRange | None = None,
        pin: bool = False,
        hold: bool = False,
    ) -> None:
        self._dirty.update(blocks_of(ByteRange(start, start + len(data))))
        super().insert(start, data, protect=protect, pin=pin, hold=hold)

    def insert_clean(self, start: int, data: Buffer, *, protect: ByteRange | None = None) -> None:
        super().insert(start, data, protect=protect)

    def take_dirty(self) -> set[int]:
        dirty, self._dirty = self._dirty, set()
        return dirty

    def mark_dirty(self, indices: Iterable[int]) -> None:
        self._dirty.update(indices)

    def clear(self) -> None:
        super().clear()
        self._dirty.clear()


def write_through(
    cache: ByteCache, indices: Iterable[int], size: int, known: dict[int, ByteRange], *, whole: bool
) -> tuple[list[Block], list[int]]:
    """The blocks to write for ``indices`` (blocks that received bytes), and those to keep for
    later. Each is the longest run of the block the memory cache holds, unless the disk is known
    to hold it already. With ``whole`` (a sequential reader still streaming into the blocks),
    only complete blocks go now: a block written at every step of a stream would be rewritten
    dozens of times; the rest wait for the stream to move on, or for the file to close."""
    out: list[Block] = []
    later: list[int] = []
    for index in sorted(indices):
        span = block_span(index, size)
        run = longest_run(span, cache.missing(span)) if span else None
        if run is None or choose_extent(known.get(index), run) is None:
            continue
        if whole and run != span:
            later.append(index)
            continue
        data = cache.peek(run)
        if data is not None:
            out.append(Block(index, run.start, data))
    return out, later


class Accumulator:
    """Cuts a stream of validated bytes (a range stream's body, which no memory cache holds)
    into blocks to write through: each complete block as soon as its last byte arrives, the
    part-filled one at ``finish()``. Bytes fed out of order begin a new run; the part-filled
    block of the old run is handed out first."""

    def __init__(self, size: int, block_size: int = BLOCK_SIZE) -> None:
        self._size = size
        self._block_size = block_size
        self._start = 0
        self._buffer = bytearray()

    def feed(self, start: int, data: bytes) -> list[Block]:
        out: list[Block] = []
        if self._buffer and start != self._start + len(self._buffer):
            out.extend(self.finish())
        if not self._buffer:
            self._start = start
        self._buffer += data
        while self._buffer:
            index = self._start // self._block_size
            span = block_span(index, self._size, self._block_size)
            need = span.stop - self._start
            if len(self._buffer) < need:
                break
            out.append(Block(index, self._start, bytes(self._buffer[:need])))
            del self._buffer[:need]
            self._start = span.stop
        return out

    def finish(self) -> list[Block]:
        if not self._buffer:
            return []
        block = Block(self._start // self._block_size, self._start, bytes(self._buffer))
        self._buffer = bytearray()
        return [block]
