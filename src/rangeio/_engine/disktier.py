"""DiskTier: a RemoteFile's second cache level, on disk (``cache_dir``), as steps of its programs.

The policy is `_core/diskcache.py`; the files are `_diskcache.py` (run through Blocking ops, so
the async shell never blocks its loop). RemoteFile calls it from four places only: ``open``
(look up the entry, revalidate with the open's own request or, with ``immutable``, open from
the directory alone), ``read_missing`` / ``read_ranges`` (``load()`` before planning a fetch,
``flush()`` after it: bytes fetched are written through), and ``close_cursor`` (a last flush).
Range streams (`_engine/streams.py`), which keep no memory cache, read runs of blocks straight
from the disk (``read_run()``) and write their bodies through an ``Accumulator``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rangeio._core import diskcache as policy
from rangeio._core.diskcache import Outcome, TrackedCache
from rangeio._core.exchange import Result
from rangeio._core.identity import Identity
from rangeio._core.planner import opening_specs
from rangeio._core.ranges import ByteRange
from rangeio._engine.ops import Blocking, Program

if TYPE_CHECKING:
    from rangeio._core.options import FileOptions
    from rangeio._diskcache import DiskStore
    from rangeio._engine.remote import RemoteFile

ENVIRONMENT = "RANGEIO_CACHE_DIR"
# A range stream takes at most this many blocks from the disk at a time (2 MiB): it holds them
# in memory until read, and has no cache budget to bound them otherwise.
STREAM_RUN_BLOCKS = 8

# One store per directory and budget in a process, so that its count of bytes written since
# the last scan (when to evict) covers every file of the process.
_STORES: dict[tuple[str, int], DiskStore] = {}
_STORES_LOCK = threading.Lock()


def cache_dir_of(options: FileOptions) -> str | None:
    """The directory to use: the option, else ``RANGEIO_CACHE_DIR``, else none."""
    root: Any = options.cache_dir
    if root is None:
        root = os.environ.get(ENVIRONMENT) or None
    return None if root is None else os.path.expanduser(os.fspath(root))


def store_for(root: str, budget: int) -> DiskStore:
    # The directory's files load with the first file that uses one, not with every open.
    from rangeio._diskcache import DiskStore

    with _STORES_LOCK:
        store = _STORES.get((root, budget))
        if store is None:
            store = _STORES[(root, budget)] = DiskStore(root, budget)
        return store


class DiskTier:
    """What one RemoteFile knows of its entry in the directory."""

    def __init__(self, store: DiskStore, url: str, immutable: bool) -> None:
        self.store = store
        self.url_digest = policy.url_key(url)
        self.immutable = immutable
        # The record found at open, and the entry key of the version this open validated
        # (None: nothing of this file is read from or written to the disk).
        self.stored: Identity | None = None
        self.key: bytes | None = None
        # Blocks known to be on disk with their extent (read or written by us), and blocks
        # known to be absent (looked for and not found): neither is asked of the disk again.
        self._known: dict[int, ByteRange] = {}
        self._absent: set[int] = set()
        self._deferred: set[int] = set()
        # An unpickled file (`RemoteFile.revived`) makes no open: its entry is found by the
        # identity it carries, at its first use of the disk (`_adopt_pinned`).
        self.pin_pending = False

    @classmethod
    def for_options(cls, url: str, options: FileOptions) -> DiskTier | None:
        root = cache_dir_of(options)
        if root is None:
            return None
        return cls(store_for(root, options.cache_dir_bytes), url, options.immutable)

    # -- open -------------------------------------------------------------------------------

    def lookup(self, remote: RemoteFile) -> Program[dict[str, str] | None]:
        """Find the entry. Returns the conditional headers for the open's request (None: no
        entry, or ``immutable`` with one: then ``opened_from_disk()`` opens without a request)."""
        usable = yield Blocking(self.store.ensure)
        if not usable:
            return None
        self.stored = yield Blocking(self.store.lookup, (self.url_digest,))
        if self.stored is None or self.immutable:
            return None
        headers = policy.conditional_headers(self.stored)
        if headers:
            remote.stats.revalidations += 1
        return headers or None

    def opened_from_disk(self, remote: RemoteFile) -> Program[Result | None]:
        """With ``immutable`` and an entry: the open's answer, made from the directory alone."""
        if not self.immutable or self.stored is None:
            return None
        return (yield from self._stored_answer(remote, self.stored))

    def not_modified(self, remote: RemoteFile, answer: Result) -> Program[Result | None]:
        """The open's request got a 304: its answer made from the stored entry, or None when the
        304 contradicts the record (it is dropped and the open asks again, unconditionally)."""
        stored = self.stored
        assert stored is not None
        outcome = policy.revalidate(
            stored, not_modified=True, answer=answer.identity, immutable=False, date=None
        )
        if outcome is Outcome.CHANGED:
            yield Blocking(self.store.drop, (self.url_digest,))
            self.stored = None
            return None
        made = yield from self._stored_answer(remote, stored)
        return Result(
            made.data,
            made.range,
            made.total,
            made.identity,
            full=False,
            unsatisfiable=False,
            url=answer.url,
        )

    def _stored_answer(self, remote: RemoteFile, stored: Identity) -> Program[Result]:
        """What the open's prefetch would have brought, from the blocks on disk (as much of it
        as they hold whole; the rest is fetched when read)."""
        size = stored.size or 0
        self.key = policy.entry_key(self.url_digest, stored)
        spec = opening_specs(remote.prefetch.size, remote.prefetch.direction)[0]
        span = spec.resolve(size) if size else None
        data = b""
        if span is not None:
            yield from self._load(remote, [span], size)
            data = remote.cache.peek(span) or b""
        if not data:
            span = ByteRange(0, 0)
        assert span is not None
        return Result(data, span, size, stored, full=False, unsatisfiable=False, url=remote.target)

    def answered(self, remote: RemoteFile, answer: Result) -> Program[None]:
        """The open's request got the file's bytes (a first open, a changed file, or a server
        that ignores preconditions): keep the stored blocks if it is the same version, else
        drop them and start an entry for this one (if it may be reused at all)."""
        kept = yield from self._take_version(remote, answer.date, drop_unusable=True)
        if kept:
            yield from self.flush(remote)

    def _adopt_pinned(self, remote: RemoteFile) -> Program[None]:
        """A file unpickled here, its identity pinned where it was opened: its entry is that
        version's. Blocks another process stored of the same version are served (the entry key
        holds the identity, so never another version's); a changed file still raises at the
        first request, as without a disk cache (docs/distributed.md)."""
        self.pin_pending = False
        usable = yield Blocking(self.store.ensure)
        if not usable:
            return
        self.stored = yield Blocking(self.store.lookup, (self.url_digest,))
        yield from self._take_version(remote, None, drop_unusable=False)

    def _take_version(
        self, remote: RemoteFile, date: str | None, *, drop_unusable: bool
    ) -> Program[bool]:
        """Make ``remote.identity`` this file's entry (the stored one if it is the same
        version); False when that version may not be kept (then, with ``drop_unusable``, the
        stored blocks of another version are dropped)."""
        assert remote.identity is not None
        current = policy.cache_identity(remote.identity, immutable=self.immutable, date=date)
        if current is None:
            if drop_unusable and self.stored is not None:
                yield Blocking(self.store.drop, (self.url_digest,))
                self.stored = None
            return False
        if self.stored is not None:
            outcome = policy.revalidate(
                self.stored,
                not_modified=False,
                answer=remote.identity,
                immutable=self.immutable,
                date=date,
            )
            if outcome is Outcome.UNCHANGED:
                current = self.stored
        if current != self.stored:
            adopted = yield Blocking(self.store.adopt, (self.url_digest, current))
            if not adopted:
                return False
            self.stored = current
        self.key = policy.entry_key(self.url_digest, current)
        return True

    # -- reads ------------------------------------------------------------------------------

    def load(self, remote: RemoteFile, *wants: ByteRange) -> Program[None]:
        """Before a fetch: bring the blocks of ``wants`` the disk holds into the memory cache
        (one Blocking step for all of them)."""
        if self.pin_pending:
            yield from self._adopt_pinned(remote)
        if self.key is not None:
            yield from self._load(remote, wants, remote.size)

    def _load(self, remote: RemoteFile, wants: Sequence[ByteRange], size: int) -> Program[None]:
        assert self.key is not None
        with remote._lock:
            cache = remote.cache
            indices = sorted(
                {
                    i
                    for want in wants
                    for i in policy.blocks_of(want)
                    if i not in self._absent and self._may_help(cache, i, want, size)
                }
            )
        if not indices:
            return
        blocks = yield Blocking(self.store.read, (self.url_digest, self.key, indices, size))
        with remote._lock:
            found = set()
            cache = remote.cache
            for block in blocks:
                found.add(block.index)
                self._known[block.index] = block.range
                if isinstance(cache, TrackedCache):
                    # Protected like the read's own bytes: the read copies them out next.
                    protect = next((w for w in wants if w.overlaps(block.range)), None)
                    cache.insert_clean(block.start, block.data, protect=protect)
            self._absent.update(i for i in indices if i not in found)
            remote.stats.disk_hits += len(blocks)

    def _may_help(self, cache: Any, index: int, want: ByteRange, size: int) -> bool:
        """Whether block ``index`` may hold bytes of ``want`` the memory cache lacks: not when
        they are all cached, nor when the extent we know it holds lies elsewhere."""
        part = policy.block_span(index, size).intersection(want)
        gaps = cache.missing(part) if part is not None else []
        known = self._known.get(index)
        return bool(gaps) and (known is None or any(known.overlaps(g) for g in gaps))

    def flush(self, remote: RemoteFile, *, streaming: bool = False) -> Program[None]:
        """After a fetch: write the blocks that received bytes through to the disk."""
        if self.pin_pending:
            yield from self._adopt_pinned(remote)
        with remote._lock:
            cache = remote.cache
            if not isinstance(cache, TrackedCache):
                return
            dirty = cache.take_dirty() | self._deferred
            if self.key is None:
                self._deferred = set()
                return  # nothing of this file is kept (a weak ETag, say): forget the marks
            blocks, later = policy.write_through(
                cache, dirty, remote.size, self._known, whole=streaming
            )
            self._deferred = set(later)
            for block in blocks:
                self._absent.discard(block.index)
                self._known[block.index] = block.range
        if blocks:
            yield Blocking(self.store.write, (self.url_digest, self.key, blocks, remote.size))

    # -- range streams (no memory cache) ----------------------------------------------------

    def read_run(self, remote: RemoteFile, want: ByteRange) -> Program[bytes]:
        """The bytes of ``want`` the disk holds from its first byte on, up to the first hole
        (at most STREAM_RUN_BLOCKS blocks at a time); b"" when it holds none."""
        if self.pin_pending:
            yield from self._adopt_pinned(remote)
        if self.key is None or not want:
            return b""
        size = remote.size
        with remote._lock:
            indices: list[int] = []
            for i in policy.blocks_of(want)[:STREAM_RUN_BLOCKS]:
                if i in self._absent:
                    break
                indices.append(i)
        if not indices:
            return b""
        blocks = yield Blocking(self.store.read, (self.url_digest, self.key, indices, size))
        by_index = {b.index: b for b in blocks}
        out = bytearray()
        pos = want.start
        used = 0
        for i in indices:
            block = by_index.get(i)
            if block is None or not block.start <= pos < block.range.stop:
                break
            stop = min(block.range.stop, want.stop)
            out += block.data[pos - block.start : stop - block.start]
            pos = stop
            used += 1
            if pos >= want.stop or block.range.stop < policy.block_span(i, size).stop:
                break
        with remote._lock:
            self._absent.update(i for i in indices if i not in by_index)
            for block in blocks:
                self._known[block.index] = block.range
            remote.stats.disk_hits += used
        return bytes(out)

    def accumulator(self, remote: RemoteFile) -> policy.Accumulator | None:
        """What a range response feeds its body to, for writing through; None: no disk entry."""
        return policy.Accumulator(remote.size) if self.key is not None else None

    def write(self, remote: RemoteFile, blocks: list[policy.Block]) -> Program[None]:
        """Write ``blocks`` (validated bytes of the version this open validated) through."""
        if self.key is None or not blocks:
            return
        with remote._lock:
            for block in blocks:
                self._absent.discard(block.index)
        yield Blocking(self.store.write, (self.url_digest, self.key, blocks, remote.size))
