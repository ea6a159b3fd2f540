"""The disk cache's store: block and record files under ``cache_dir``, safe across processes and crashes.

Every decision (key, what may be served, what to evict) is asked of ``_core/diskcache.py``; this
module only moves bytes. Layout (``docs/disk-cache.md`` lists what is stored)::

    <cache_dir>/CACHEDIR.TAG            written when rangeio creates the directory
    <cache_dir>/v1/.lock                flock'ed by the process evicting (others skip eviction)
    <cache_dir>/v1/.trash/              files and entries being deleted (rename, then unlink)
    <cache_dir>/v1/<sha256 of URL>/meta the entry's record: URL digest and cache identity
    <cache_dir>/v1/<sha256 of URL>/<index>.blk   one block's extent, keyed and checksummed

- Crash safety: every file is written whole to a temporary name in its own directory and
  renamed over its place (POSIX rename is atomic), and every block is checked against its
  checksum and key when read. A SIGKILL leaves at worst a temporary file (removed by a later
  scan); a torn write after a power loss fails its checksum. So no fsync is paid: the cache can
  always be fetched again, and a block that is not intact is never served.
- Many processes: writers never share a file (each writes its own temporary and renames), so a
  reader sees an old whole file or a new whole one. Blocks of another version written late by a
  process that opened the file before it changed carry another key and are refused.
- Eviction renames a file into ``.trash`` and unlinks it: a process that already opened the
  block reads it to the end, one that had not gets a miss.
- Any OSError (a full or read-only disk, a directory removed under us) makes the cache miss,
  never the read fail.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from rangeio._core import diskcache as policy
from rangeio._core.diskcache import Block, Meta
from rangeio._core.identity import Identity

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: evictions may then run two at once (harmless)
    fcntl = None  # type: ignore[assignment]

# Never through a symbolic link planted at a block's name (POSIX; elsewhere 0).
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
FORMAT_DIR = "v1"
META_NAME = "meta"
TMP_PREFIX = ".tmp."
TRASH = ".trash"
LOCK = ".lock"
# A temporary file this old belongs to a writer that died (a block is written in milliseconds).
STALE_TMP_SECONDS = 600.0
CACHEDIR_TAG = (
    b"Signature: 8a477f597d28d172789f06886806bc55\n"
    b"# This file is a cache directory tag created by rangeio.\n"
    b"# For information about cache directory tags see https://bford.info/cachedir/\n"
)

T = TypeVar("T")


def _quiet(default: Any) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """The decorated method returns ``default`` on any OSError: the cache misses, reads go on."""

    def wrap(function: Callable[..., T]) -> Callable[..., T]:
        def run(*args: Any, **kwargs: Any) -> T:
            try:
                return function(*args, **kwargs)
            except OSError:
                return default  # type: ignore[no-any-return]

        run.__name__ = function.__name__
        run.__doc__ = function.__doc__
        return run

    return wrap


@dataclass(frozen=True, slots=True)
class Info:
    entries: int
    blocks: int
    bytes: int


class DiskStore:
    """One cache directory. Methods are blocking steps, run through a runner's ``Blocking`` op."""

    def __init__(self, root: str | os.PathLike[str], budget: int) -> None:
        self.root = Path(root)
        self.base = self.root / FORMAT_DIR
        self.budget = budget
        self._written = 0

    # -- directory --------------------------------------------------------------------------

    def ensure(self) -> bool:
        """Create the directory (0700) if needed; False when it cannot be used."""
        try:
            if not self.root.exists():
                self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
                self._write_new(self.root / "CACHEDIR.TAG", CACHEDIR_TAG)
            self.base.mkdir(mode=0o700, exist_ok=True)
            (self.base / TRASH).mkdir(mode=0o700, exist_ok=True)
            return True
        except OSError:
            return False

    def _entry(self, url_digest: str) -> Path:
        return self.base / url_digest

    def _write_new(self, path: Path, data: bytes) -> None:
        """Write ``data`` to ``path`` whole: a temporary in the same directory, then a rename."""
        tmp = path.parent / f"{TMP_PREFIX}{os.getpid()}.{secrets.token_hex(6)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except BaseException:
            os.close(fd)
            _unlink(tmp)
            raise
        os.close(fd)
        try:
            os.replace(tmp, path)  # atomic, over an old file too (POSIX rename)
        except BaseException:
            _unlink(tmp)
            raise

    def _discard(self, path: Path) -> None:
        """Rename ``path`` (a file or an entry directory) into the trash, then delete it there:
        the name is gone atomically, and a reader holding the file open keeps its bytes."""
        gone = self.base / TRASH / f"{path.name}.{os.getpid()}.{secrets.token_hex(6)}"
        try:
            os.rename(path, gone)
        except FileNotFoundError:
            return
        if gone.is_dir():
            shutil.rmtree(gone, ignore_errors=True)
        else:
            _unlink(gone)

    # -- records ----------------------------------------------------------------------------

    @_quiet(None)
    def lookup(self, url_digest: str) -> Identity | None:
        """The cache identity stored for the URL, or None. A damaged record drops the entry."""
        path = self._entry(url_digest) / META_NAME
        try:
            raw = _read_bounded(path, policy.MAX_META_BYTES + 1)
        except FileNotFoundError:
            return None
        meta = policy.decode_meta(raw, url_digest)
        if isinstance(meta, str):
            self._discard(self._entry(url_digest))
            return None
        os.utime(path)  # the entry was used: eviction keeps its record
        return meta.identity

    @_quiet(False)
    def adopt(self, url_digest: str, identity: Identity) -> bool:
        """Make the entry the URL's under ``identity``: kept as it is when its record already
        says so, else every block of the old version goes before the new record is written."""
        entry = self._entry(url_digest)
        try:
            raw = _read_bounded(entry / META_NAME, policy.MAX_META_BYTES + 1)
            meta = policy.decode_meta(raw, url_digest)
            if not isinstance(meta, str) and meta.identity == identity:
                return True
        except FileNotFoundError:
            pass
        self._discard(entry)
        entry.mkdir(mode=0o700, exist_ok=True)
        self._write_new(entry / META_NAME, policy.encode_meta(Meta(url_digest, identity)))
        return True

    @_quiet(None)
    def drop(self, url_digest: str) -> None:
        self._discard(self._entry(url_digest))

    # -- blocks -----------------------------------------------------------------------------

    @_quiet([])
    def read(self, url_digest: str, key: bytes, indices: list[int], size: int) -> list[Block]:
        """The intact blocks among ``indices`` of the entry ``key``; a damaged one is dropped."""
        entry = self._entry(url_digest)
        found: list[Block] = []
        for index in indices:
            path = entry / f"{index}.blk"
            try:
                fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
            except FileNotFoundError:
                continue
            try:
                raw = _read_fd(fd, policy.BLOCK_HEADER_BYTES + policy.BLOCK_SIZE + 1)
                block = policy.decode_block(raw, key, index, size)
                if isinstance(block, str):
                    # Only the file we read goes: a writer may have renamed a good one in since.
                    if os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
                        self._discard(path)
                    continue
                os.utime(fd)  # LRU: last used now
                found.append(block)
            finally:
                os.close(fd)
        return found

    @_quiet(None)
    def write(self, url_digest: str, key: bytes, blocks: list[Block], size: int) -> None:
        """Store ``blocks`` (validated bytes of the entry ``key``), each joined with the extent
        already stored where they touch; then evict if this process wrote enough since its last
        look at the directory."""
        entry = self._entry(url_digest)
        if not entry.is_dir():
            return  # the entry was dropped (the file changed, or evicted): not ours to revive
        for block in blocks:
            path = entry / f"{block.index}.blk"
            old: Block | None = None
            try:
                raw = _read_bounded(path, policy.BLOCK_HEADER_BYTES + policy.BLOCK_SIZE + 1)
                decoded = policy.decode_block(raw, key, block.index, size)
                old = None if isinstance(decoded, str) else decoded
            except FileNotFoundError:
                pass
            extent = policy.choose_extent(old.range if old is not None else None, block.range)
            if extent is None:
                continue
            data = _compose(extent, block, old)
            self._write_new(path, policy.encode_block(key, Block(block.index, extent.start, data)))
            self._written += len(data)
        if policy.scan_due(self._written, self.budget):
            self.evict()

    # -- eviction and tooling ---------------------------------------------------------------

    @_quiet(None)
    def evict(self) -> None:
        """Bring the directory under its budget, least recently used first. One process at a
        time evicts (flock); the others skip, since its pass frees room for them too."""
        self._written = 0
        with self._locked() as held:
            if not held:
                return
            files, _ = self._scan()
            chosen = policy.to_evict(files, self.budget)
            # An entry whose record goes goes whole: its blocks cannot be served without it.
            gone = {n.partition("/")[0] for n in chosen if n.endswith("/" + META_NAME)}
            for entry_name in gone:
                self._discard(self.base / entry_name)
            for name in chosen:
                if name.partition("/")[0] not in gone:
                    self._discard(self.base / name)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[bool]:
        if fcntl is None:
            yield True
            return
        fd = os.open(self.base / LOCK, os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    yield False
                    return
                raise
            yield True
        finally:
            os.close(fd)

    def _scan(self) -> tuple[list[policy.Stored], list[str]]:
        """Every file of every entry, as ``entry/name``; temporaries of dead writers, foreign
        files inside entries, and the trash are cleaned on the way."""
        now = time.time()
        files: list[policy.Stored] = []
        entries: list[str] = []
        with os.scandir(self.base) as top:
            for item in top:
                if item.name == TRASH and item.is_dir(follow_symlinks=False):
                    self._empty_trash(Path(item.path))
                    continue
                if not policy.URL_KEY.fullmatch(item.name):
                    continue  # not ours (the lock, or a file someone put here): left alone
                if not item.is_dir(follow_symlinks=False):
                    self._discard(Path(item.path))
                    continue
                entries.append(item.name)
                mine: list[policy.Stored] = []
                with os.scandir(item.path) as inner:
                    for f in inner:
                        st = f.stat(follow_symlinks=False)
                        ours = f.name == META_NAME or policy.BLOCK_NAME.fullmatch(f.name)
                        if f.name.startswith(TMP_PREFIX):
                            if now - st.st_mtime > STALE_TMP_SECONDS:
                                _unlink(Path(f.path))
                            continue
                        if not ours or not f.is_file(follow_symlinks=False):
                            self._discard(Path(f.path))
                            continue
                        mine.append(policy.Stored(f"{item.name}/{f.name}", st.st_size, st.st_mtime))
                # The record counts as used when any block was: it goes after its blocks.
                newest = max((f.last_used for f in mine), default=0.0)
                files.extend(
                    policy.Stored(f.name, f.size, newest) if f.name.endswith(META_NAME) else f
                    for f in mine
                )
        return files, entries

    def _empty_trash(self, trash: Path) -> None:
        with os.scandir(trash) as items:
            for item in items:
                if item.is_dir(follow_symlinks=False):
                    shutil.rmtree(item.path, ignore_errors=True)
                else:
                    _unlink(Path(item.path))

    def info(self) -> Info:
        files, entries = self._scan() if self.base.is_dir() else ([], [])
        blocks = sum(1 for f in files if f.name.endswith(".blk"))
        return Info(len(entries), blocks, sum(f.size for f in files))

    def clear(self, older_than: float | None = None) -> int:
        """Delete entries (all, or those not used for ``older_than`` seconds); returns the
        bytes freed. Only rangeio's own files under ``v1/`` are touched."""
        if not self.base.is_dir():
            return 0
        with self._locked():
            files, entries = self._scan()
            now = time.time()
            freed = 0
            for entry in entries:
                mine = [f for f in files if f.name.startswith(entry + "/")]
                if older_than is None or all(now - f.last_used > older_than for f in mine):
                    freed += sum(f.size for f in mine)
                    self._discard(self.base / entry)
            return freed


def _compose(extent: Any, new: Block, old: Block | None) -> bytes:
    """The bytes of ``extent``, from ``new`` where it has them and ``old`` for the rest."""
    if old is None or (extent.start == new.start and extent.stop == new.range.stop):
        return new.data
    out = bytearray(extent.length)
    out[old.start - extent.start : old.range.stop - extent.start] = old.data
    out[new.start - extent.start : new.range.stop - extent.start] = new.data
    return bytes(out)


def _read_bounded(path: Path, limit: int) -> bytes:
    fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    try:
        return _read_fd(fd, limit)
    finally:
        os.close(fd)


def _read_fd(fd: int, limit: int) -> bytes:
    """At most ``limit`` bytes of ``fd`` (a file larger than any valid one is read only so far)."""
    chunks: list[bytes] = []
    left = limit
    while left > 0:
        chunk = os.read(fd, left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
