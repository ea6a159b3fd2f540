"""Durable file operations for downloads: positional writes, fsyncs, atomic replace, locking;
every path of a download opened without following a symlink or blocking on a FIFO."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import queue
import re
import secrets
import stat
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

try:  # POSIX advisory locks; on other systems downloads run unlocked.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

from rangeio._core import control
from rangeio._core.download import (
    MISSING,
    Assessment,
    Entry,
    assess,
    rule_on_entry,
    tails_to_check,
)
from rangeio.errors import DownloadLockedError, UnsafePathError

log = logging.getLogger("rangeio.download")

READ_CHUNK = 1024 * 1024

# O_NOFOLLOW: a symlink at the path fails the open (ELOOP) instead of being followed, even with
# O_CREAT (a dangling link is not created through). O_NONBLOCK: opening a FIFO never waits for
# the other end. Both exist on every POSIX system; elsewhere (Windows) they are 0.
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | _NONBLOCK
# What an open refused by those flags (or a directory opened for writing) fails with: ELOOP for
# a symlink (EMLINK on FreeBSD, EFTYPE on NetBSD), EISDIR, ENXIO for a FIFO with no reader.
_REFUSED_OPEN = {errno.ELOOP, errno.EMLINK, errno.EISDIR, errno.ENXIO, getattr(errno, "EFTYPE", -1)}


def entry_of(st: os.stat_result, directory_device: int) -> Entry:
    """The core's view of a stat result (from lstat, or fstat of an open file)."""
    mode = st.st_mode
    if stat.S_ISREG(mode):
        kind = "file"
    elif stat.S_ISLNK(mode):
        kind = "symlink"
    elif stat.S_ISDIR(mode):
        kind = "directory"
    elif stat.S_ISFIFO(mode):
        kind = "fifo"
    else:
        kind = "other"
    return Entry(kind, st.st_nlink, st.st_dev == directory_device)


def lookup(path: Path) -> Entry:
    """What is at ``path`` itself (a symlink is reported as one, never followed)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return MISSING
    return entry_of(st, _directory_device(path))


def _directory_device(path: Path) -> int:
    return os.stat(path.parent).st_dev


def safe_open(path: Path, flags: int, role: str, mode: int = 0o644) -> int:
    """THE way every path of a download is opened: never through a symlink, never blocking on a
    FIFO, and only if what was opened is what ``rule_on_entry`` lets ``role`` use (a lone regular
    file on the directory's filesystem). Anything else closes the descriptor again and raises
    UnsafePathError: a descriptor that is returned is one to close, and no other leaks.
    O_TRUNC is not taken: it would cut a hard-linked file before the check; truncate after."""
    if flags & os.O_TRUNC:
        raise ValueError("safe_open: truncate after the checks (os.ftruncate), not with O_TRUNC")
    try:
        fd = os.open(path, flags | _NOFOLLOW, mode)
    except OSError as exc:
        if exc.errno in _REFUSED_OPEN:
            raise _unsafe(path, f"it is not a regular file ({exc.strerror})") from exc
        raise
    try:
        found = entry_of(os.fstat(fd), _directory_device(path))
        if rule_on_entry(role, found) != "use":
            raise _unsafe(path, f"it is a {_describe(found)}")
        if _NONBLOCK:
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _describe(entry: Entry) -> str:
    if entry.kind == "file" and entry.links > 1:
        return f"file with {entry.links} hard links"
    if not entry.same_device:
        return f"{entry.kind} on another filesystem"
    return entry.kind


def _unsafe(path: Path, why: str) -> UnsafePathError:
    return UnsafePathError(f"refusing to use {path}: {why}", path=str(path))


def settle(path: Path, role: str) -> Entry:
    """Make ``path`` safe for ``role`` before it is used: refuse (UnsafePathError) or replace
    (unlink the name, never what it points to) what the core says must not be used. Returns
    what is there now (MISSING once replaced). Opens still go through ``safe_open``, so a file
    swapped in after this check is refused, not written through."""
    entry = lookup(path)
    verdict = rule_on_entry(role, entry)
    if verdict == "refuse":
        raise _unsafe(path, f"it is a {_describe(entry)}")
    if verdict == "replace" and role != "dest":
        log.warning("removing %s: a %s is not a download's %s file", path, _describe(entry), role)
        _unlink_quietly(path)
        return MISSING
    return entry


def open_rw(path: Path) -> int:
    return safe_open(path, os.O_RDWR | os.O_CREAT, "part")


def open_new_part(path: Path) -> int:
    """An empty ``.part`` at ``path`` for writing, whatever was planted there (``settle``)."""
    settle(path, "part")
    fd = open_rw(path)
    try:
        os.ftruncate(fd, 0)
    except BaseException:
        os.close(fd)
        raise
    return fd


def pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    """Write all of ``data`` at ``offset``: a short write (disk full, signals) is retried for the
    rest, and a failed one raises; never reports success for bytes not written."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        if written <= 0:
            raise OSError(errno.EIO, "write made no progress")
        view = view[written:]
        offset += written


def pread_all(fd: int, offset: int, length: int) -> bytes:
    out = bytearray()
    while len(out) < length:
        chunk = os.pread(fd, min(READ_CHUNK, length - len(out)), offset + len(out))
        if not chunk:
            break
        out += chunk
    return bytes(out)


def datasync(fd: int) -> None:
    """Make written data durable (fdatasync where it exists: metadata like mtime can wait)."""
    sync = getattr(os, "fdatasync", os.fsync)
    sync(fd)


def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink in ``directory`` durable (POSIX: fsync the directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        # Some filesystems refuse fsync on directories; nothing more can be done there.
        if exc.errno not in (errno.EINVAL, errno.EBADF, errno.EISDIR):
            raise
    finally:
        os.close(fd)


# A temporary record file is ``<name>.<pid>.<8 hex>.tmp``; only names of exactly that form are
# ever removed as stale.
_TEMP = re.compile(r"\.[0-9]+\.[0-9a-f]{8}\.tmp")
# A fresh random name that is taken anyway (planted there) is tried again, a few times.
_TEMP_ATTEMPTS = 4


def temp_path(path: Path) -> Path:
    """A new temporary name beside ``path``: unpredictable, so nobody can plant a file there."""
    return path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def is_temp_of(name: str, path: Path) -> bool:
    prefix = path.name
    return name.startswith(prefix) and _TEMP.fullmatch(name, len(prefix)) is not None


def remove_stale_temps(path: Path) -> None:
    """Remove the temporary files of ``path`` that a crash inside ``atomic_write`` left behind.
    Run under the download's lock, so none of them is being written; a directory of that name
    is not rangeio's and is left alone."""
    with os.scandir(path.parent) as entries:
        stale = [e.name for e in entries if is_temp_of(e.name, path)]
    for name in stale:
        temp = path.with_name(name)
        if rule_on_entry("temp", lookup(temp)) != "refuse":
            _unlink_quietly(temp)


def _create_temp(path: Path) -> tuple[Path, int]:
    for _ in range(_TEMP_ATTEMPTS):
        temp = temp_path(path)
        try:
            return temp, safe_open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, "temp")
        except (FileExistsError, UnsafePathError):
            continue  # taken (and not by us: the name was new): another name
    raise _unsafe(path, f"{_TEMP_ATTEMPTS} fresh temporary names beside it were all taken")


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves either the old or the new content:
    a unique temp name (created, never reused: O_EXCL), fsync, rename, fsync of the directory.
    The rename replaces whatever name is at ``path``; it never writes through it."""
    temp, fd = _create_temp(path)
    try:
        pwrite_all(fd, data, 0)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        _unlink_quietly(temp)
        raise
    os.close(fd)
    try:
        os.replace(temp, path)
    except BaseException:
        _unlink_quietly(temp)
        raise
    fsync_dir(path.parent)


def read_small(path: Path, limit: int, role: str) -> bytes | None:
    """The file's first ``limit + 1`` bytes if it exists (a caller refuses more than ``limit``
    before parsing: a control record is small)."""
    try:
        fd = safe_open(path, os.O_RDONLY, role)
    except FileNotFoundError:
        return None
    try:
        return pread_all(fd, 0, limit + 1)
    finally:
        os.close(fd)


def preallocate(fd: int, size: int) -> None:
    """Reserve ``size`` bytes where the filesystem supports it, so a full disk fails early."""
    allocate = getattr(os, "posix_fallocate", None)
    if allocate is None or size <= 0:
        return
    try:
        allocate(fd, 0, size)
    except OSError as exc:
        # tmpfs and others may refuse; preallocation is an optimisation, not a requirement.
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise


def remove(path: Path) -> None:
    _unlink_quietly(path)


def _unlink_quietly(path: Path) -> None:
    """Remove the name ``path`` (unlink never follows a symlink). A directory is not removed."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except IsADirectoryError as exc:
        raise _unsafe(path, "it is a directory") from exc


# A lock file replaced between our open and our flock (its holder finished and removed it) is
# opened again; a few times, since each replacement is a whole download finishing.
_LOCK_ATTEMPTS = 8


class DownloadLock:
    """An exclusive advisory lock on ``<dest>.part.lock``: a second process downloading to the
    same destination fails at once with DownloadLockedError instead of interleaving writes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        for _ in range(_LOCK_ATTEMPTS):
            settle(self.path, "lock")
            fd = safe_open(self.path, os.O_RDWR | os.O_CREAT, "lock")
            try:
                if fcntl is not None:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        raise DownloadLockedError(
                            f"another process is downloading to {self.path.with_suffix('')}"
                        ) from None
                # A holder removes the file once its download is done; a lock on a file no
                # longer at the path protects nothing, so take the one that is there now.
                if _still_at(fd, self.path):
                    self._fd = fd
                    return
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)
        raise DownloadLockedError(f"{self.path} keeps being replaced")

    def release(self, *, remove_file: bool = False) -> None:
        if self._fd is None:
            return
        if remove_file:
            # Only after the destination is in place: a process that locks a fresh lock file
            # from here on finds the download finished.
            _unlink_quietly(self.path)
        os.close(self._fd)
        self._fd = None


def _still_at(fd: int, path: Path) -> bool:
    try:
        there = os.lstat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (there.st_dev, there.st_ino) == (mine.st_dev, mine.st_ino)


class PartFiles:
    """The sidecars of a download to ``dest``: ``<dest>.part`` (data), ``<dest>.part.ctrl``
    (control record, written through temporary ``<dest>.part.ctrl.<pid>.<hex>.tmp`` files) and
    ``<dest>.part.lock``. Beside the destination, so the final rename never crosses
    filesystems. Every method is one blocking step, run by a runner's Blocking op; every open
    is a ``safe_open``, so none of them writes through a symlink or waits on a FIFO."""

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        self.part = dest.with_name(dest.name + ".part")
        self.ctrl = dest.with_name(dest.name + ".part.ctrl")
        self.lock = DownloadLock(dest.with_name(dest.name + ".part.lock"))

    def unlock(self, finished: bool) -> None:
        """Release the destination's lock; its file goes too once there is nothing left to
        protect (the download finished, or never wrote a byte)."""
        self.lock.release(remove_file=finished or not os.path.lexists(self.part))

    def inspect(self, url: str | Sequence[str]) -> tuple[Assessment, dict[int, bytes]]:
        """Make every path safe (``settle``), read what is on disk, and let the core decide
        what it is worth. Stale temporary record files go first."""
        remove_stale_temps(self.ctrl)
        dest = settle(self.dest, "dest")
        part = settle(self.part, "part")
        settle(self.ctrl, "ctrl")
        record: control.ControlRecord | None = None
        record_error: str | None = None
        try:
            raw = read_small(self.ctrl, control.MAX_RECORD_BYTES, "ctrl")
        except OSError as exc:
            raw, record_error = None, f"unreadable: {exc}"
        if raw is not None:
            try:
                record = control.decode(raw)
            except control.ControlRecordError as exc:
                record_error = str(exc)
        part_size: int | None = None
        tails: dict[int, bytes] = {}
        if part.kind != "missing":
            fd = safe_open(self.part, os.O_RDONLY, "part")
            try:
                part_size = os.fstat(fd).st_size
                if record is not None:
                    for start, span in tails_to_check(record):
                        tails[start] = pread_all(fd, span.start, span.length)
            finally:
                os.close(fd)
        dest_is_file = rule_on_entry("dest", dest) == "use"
        verdict = assess(url, record, record_error, part_size, dest_is_file, tails)
        return verdict, tails

    def discard(self) -> None:
        """Forget old progress: the record first, so a crash never leaves it over other bytes."""
        remove(self.ctrl)
        remove(self.part)
        fsync_dir(self.dest.parent)

    def begin(self, record: control.ControlRecord, total: int | None) -> int:
        """Start writing from byte 0 for ``record``'s version. The record (cursor 0) is made
        durable before any byte is written, so no crash can leave an old cursor over new bytes.
        A record the format cannot hold (``control.fit``) is written without what it cannot
        hold, or not at all: then any old one goes first, and the download cannot resume."""
        stored = control.fit(record).record
        if stored is not None:
            atomic_write(self.ctrl, control.encode(stored))
        else:
            remove(self.ctrl)
            fsync_dir(self.dest.parent)
        fd = open_rw(self.part)
        try:
            os.ftruncate(fd, 0)
            if total:
                preallocate(fd, total)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def reopen(self) -> int:
        """The ``.part`` a resume continues. Never created here: a resume trusts bytes that are
        on disk, and a new empty file would hold none of them."""
        return safe_open(self.part, os.O_RDWR, "part")

    def checkpoint(self, part: PartFile, record: control.ControlRecord) -> None:
        """Data first, then the record that covers it: the writes asked for are settled, then
        fdatasync'ed; a failing write or fdatasync raises before the record is written, so a
        checkpoint never claims bytes the disk may not have. Nothing to do for a record that
        may not be written at all (``control.fit``)."""
        stored = control.fit(record).record
        if stored is None:
            return
        part.settle()
        datasync(part.fd)
        atomic_write(self.ctrl, control.encode(stored))

    def finish(
        self, fd: int, total: int, algorithms: tuple[str, ...], known: dict[str, str] | None
    ) -> dict[str, str]:
        """Make the data durable, trim any preallocation, and hash the whole file (unless the
        hashes were computed as the bytes arrived: then no second pass over the disk)."""
        datasync(fd)
        os.ftruncate(fd, total)
        if known is not None and set(algorithms) <= set(known):
            return known
        return hash_file(fd, total, algorithms)

    def commit(self) -> None:
        """Move the verified file into place; then the sidecars go (a crash between the two
        leaves a finished destination, which the next attempt recognises as done). The rename
        replaces whatever name is at ``dest`` (a symlink too) and never writes through it."""
        os.replace(self.part, self.dest)
        fsync_dir(self.dest.parent)
        remove(self.ctrl)

    def finish_done(self) -> tuple[int, str]:
        """The destination looks complete: drop the stale record, report the destination's size
        and SHA-256 (the caller checks them against what was asked for)."""
        remove(self.ctrl)
        fd = safe_open(self.dest, os.O_RDONLY, "dest")
        try:
            size = os.fstat(fd).st_size
            return size, hash_file(fd, size, ("sha256",))["sha256"]
        finally:
            os.close(fd)


def hash_file(fd: int, length: int, algorithms: tuple[str, ...]) -> dict[str, str]:
    hashers = new_hashers(algorithms)
    hash_into(hashers, fd, length)
    return {name: hasher.hexdigest() for name, hasher in hashers.items()}


def new_hashers(algorithms: tuple[str, ...]) -> dict[str, Any]:
    return {name: hashlib.new(name) for name in algorithms}


def hash_into(hashers: dict[str, Any], fd: int, length: int, start: int = 0) -> None:
    """Feed bytes [start, length) of ``fd`` to every hasher."""
    offset = start
    while offset < length:
        chunk = os.pread(fd, min(READ_CHUNK, length - offset), offset)
        if not chunk:
            raise OSError(errno.EIO, f"file ended at {offset} of {length} bytes")
        for hasher in hashers.values():
            hasher.update(chunk)
        offset += len(chunk)


def close_fd(fd: int) -> None:
    os.close(fd)


# -- the receive side: buffers bodies are read into, the thread behind the writes --------------

MiB = 1024 * 1024
# Judgement calls, measured on loopback (benchmarks/download/breakdown.py, ARCHITECTURE.md):
# one socket read fills what has arrived (64 KiB to ~3 MiB here), so a buffer larger than 1 MiB
# only helps a receiver that fell behind; 4 of them give the hash thread ~4 MiB of slack (~3 ms
# at hashlib's 1.3 GB/s) before the receiver waits for it. curl reads 100 KiB at a time by
# default, aria2 16 KiB; both copy, this receives in place.
RECEIVE_BUFFER_BYTES = 1 * MiB
RECEIVE_BUFFERS = 4
# Someone else's chunks (bytes a client handed over) a thread may have waiting: the receive
# waits beyond that, so memory stays bounded (as with our buffers) however slow the disk is.
_BACKLOG = RECEIVE_BUFFERS
# A buffer with less room than this left is swapped for the next one: reads stay large.
_MIN_SPACE = 256 * 1024
# Write-back of written bytes is started once this many are pending (sync_file_range below),
# so that a checkpoint's fdatasync and the final fsync find little left to write. The same
# order as the checkpoint interval (8 MiB) divided in a few, so the disk is never idle.
WRITEBACK_BYTES = 4 * MiB

_SYNC_FILE_RANGE_WRITE = 2  # <linux/fs.h>: start write-out of dirty pages, do not wait
_sync_file_range: Any = None
_sync_file_range_loaded = False


def _load_sync_file_range() -> Any:
    """libc's sync_file_range through ctypes (Linux only; None elsewhere, or if missing).
    ctypes releases the GIL for the call."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    function.restype = ctypes.c_int
    return function


def start_writeback(fd: int, offset: int, length: int) -> bool:
    """Ask the kernel to start writing ``[offset, offset + length)`` of ``fd`` to disk now,
    without waiting for it (Linux ``sync_file_range(SYNC_FILE_RANGE_WRITE)``). Durability
    still comes from fdatasync alone: this only moves its work earlier. False where the call
    is missing or refused (another system, a filesystem without it): nothing else changes."""
    global _sync_file_range, _sync_file_range_loaded
    if not _sync_file_range_loaded:
        _sync_file_range, _sync_file_range_loaded = _load_sync_file_range(), True
    function = _sync_file_range
    if function is None or length <= 0:
        return False
    return bool(function(fd, offset, length, _SYNC_FILE_RANGE_WRITE) == 0)


_HASH, _WRITE, _WRITEBACK = 0, 1, 2


class _Behind:
    """Work that follows ``PartFile.write`` on a thread of its own, in the order it was asked
    for: writing (pwrite), feeding the hashers (hashlib releases the GIL for buffers over 2047
    bytes), or starting write-back. PartFile has one for each, so none waits for another: the
    receive goes on while a pwrite copies into the page cache, a hash runs, or a full disk
    queue holds sync_file_range. The thread starts with the first task.

    ``done`` counts tasks finished, so a buffer handed over as task ``n`` may be reused once
    ``done >= n`` (``wait_for``). Every wait is for work a live thread is doing (a local pwrite
    or a hash: bounded as the same call made in line would be). A failing task is kept in
    ``failure`` and the tasks after it are skipped (a write after a failed one is never made:
    nothing claims it)."""

    _POLL = 1.0  # a wait rechecks that the thread lives this often

    def __init__(self, fd: int, hashers: dict[str, Any] | None, name: str) -> None:
        self._fd = fd
        self._name = name
        self.hashers = hashers
        self._tasks: queue.SimpleQueue[tuple[int, Any, int, int] | None] = queue.SimpleQueue()
        self._changed = threading.Condition(threading.Lock())
        self.queued = 0
        self.done = 0
        self.failure: BaseException | None = None
        self.writeback = True  # until sync_file_range is found missing or refused
        self._thread: threading.Thread | None = None

    def hash(self, data: Any) -> int:
        """Queue ``data`` for the hashers (it must stay unchanged until the task is done);
        returns the task's number."""
        return self._put((_HASH, data, 0, 0))

    def write(self, data: Any, offset: int) -> int:
        """Queue a pwrite of ``data`` at ``offset`` (unchanged until done); the task's number."""
        return self._put((_WRITE, data, offset, 0))

    def start_writeback(self, offset: int, length: int, after: tuple[_Behind, int]) -> None:
        """Queue a write-back of ``[offset, offset + length)`` once task ``after[1]`` of the
        thread ``after[0]`` (the write of those bytes) is done: before it there is nothing
        dirty there to write back."""
        if self.writeback:
            self._put((_WRITEBACK, after, offset, length))

    def stop_hashing(self) -> None:
        """Hashes are no longer wanted (bytes came out of order): queued data is skipped."""
        self.hashers = None

    def _put(self, task: tuple[int, Any, int, int]) -> int:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        self.queued += 1
        self._tasks.put(task)
        return self.queued

    def _run(self) -> None:
        while (task := self._tasks.get()) is not None:
            kind, data, offset, length = task
            try:
                if self.failure is not None:
                    pass
                elif kind == _WRITE:
                    pwrite_all(self._fd, data, offset)
                elif kind == _HASH:
                    hashers = self.hashers
                    if hashers is not None:
                        for hasher in hashers.values():
                            hasher.update(data)
                else:
                    writer, written = data
                    writer.wait_for(written)
                    if self.writeback:  # not closed meanwhile
                        self.writeback = start_writeback(self._fd, offset, length)
            except BaseException as exc:  # kept for the waiter; the tasks still count as done
                self.failure = exc
            with self._changed:
                self.done += 1
                self._changed.notify_all()

    def wait_for(self, task: int) -> None:
        """Until task number ``task`` is done."""
        if self.done >= task:
            return
        with self._changed:
            while self.done < task:
                if self._thread is None or not self._thread.is_alive():
                    raise self.failure or RuntimeError(f"{self._name}: the thread ended")
                self._changed.wait(self._POLL)

    def settle(self) -> None:
        """Until every task queued so far is done; raises the failure of one that failed."""
        self.wait_for(self.queued)
        if self.failure is not None:
            raise self.failure

    def close(self, *, finish: bool = False) -> None:
        """The thread ends once the tasks queued before this are done; hashes and write-back
        are skipped (the file may be closed by then). ``finish``: wait for them to be done (the
        writes: no pwrite may reach a descriptor closed, or reused, after this)."""
        self.hashers = None
        self.writeback = False
        if self._thread is not None:
            self._tasks.put(None)
            if finish:
                self._thread.join()


class PartFile:
    """A download's open ``.part``; closing twice is harmless (error paths and normal ends meet).

    Bodies are received into its buffers (``space``) and written from them: no bytes object
    per chunk. The pwrite runs on a thread of its own (``_Behind``), so the next chunk is
    received while this one is copied into the page cache; ``settle`` waits for the writes
    asked for so far, and every step that relies on them being there calls it first (a
    checkpoint's fdatasync, the hashes at the end, close). For a download that arrives in
    order it also hashes the bytes on another thread, so the whole-file SHA-256 needs no
    second pass over the disk; a third starts the kernel's write-back of what was written
    (``start_writeback``). A buffer is received into again only once its write and its hash
    are done."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._open = True
        self._hashers: dict[str, Any] | None = None
        self._hashed = 0
        self._behind: _Behind | None = None
        self._writer: _Behind | None = None
        self._writeback: _Behind | None = None
        self._buffers = [bytearray(RECEIVE_BUFFER_BYTES) for _ in range(RECEIVE_BUFFERS)]
        self._views = [memoryview(buffer) for buffer in self._buffers]
        self._last_task = [0] * RECEIVE_BUFFERS  # the last hash task that reads each buffer
        self._last_write = [0] * RECEIVE_BUFFERS  # the last write task that reads each buffer
        self._current = 0
        self._filled = 0
        self._hash_from = 0  # where the current buffer's bytes not yet handed to the hash begin
        self._unflushed_from: int | None = None  # where written bytes not yet kicked begin
        self._unflushed_to = 0

    def start_hashing(self, algorithms: tuple[str, ...], prefix: int) -> None:
        """Hash bytes [0, prefix) already on disk; later in-order writes continue the hash."""
        self.settle()
        hashers = new_hashers(algorithms)
        hash_into(hashers, self.fd, prefix)
        self._hashers, self._hashed = hashers, prefix
        self._hash_from = self._filled
        self._behind_thread().hashers = hashers

    def space(self) -> memoryview:
        """Where to receive the next chunk: the free rest of the current buffer. The chunk
        given to ``write`` is then a prefix of it (the runner's ``into[:n]``), or any other
        bytes-like object (a client that hands bytes over, a piece copied out)."""
        return self._views[self._current][self._filled :]

    def write(self, chunk: bytes | memoryview, offset: int) -> None:
        """Write ``chunk`` at ``offset`` (on the write thread: done by the next ``settle``); a
        write that failed before is raised here, and nothing after it is written."""
        writer = self._writer
        if writer is None:
            writer = self._writer = _Behind(self.fd, None, "rangeio-write")
        if writer.failure is not None:
            raise writer.failure
        ours = isinstance(chunk, memoryview) and chunk.obj is self._buffers[self._current]
        if not ours and not isinstance(chunk, bytes):
            chunk = bytes(chunk)  # someone else's buffer may change once we return
        task = writer.write(chunk, offset)
        if ours:
            self._last_write[self._current] = task
        else:
            writer.wait_for(task - _BACKLOG)
        if self._hashers is not None:
            if offset != self._hashed:
                self._hashers = None  # out of order: hash the file at the end instead
                self._behind_thread().stop_hashing()
            elif not ours:
                # Someone else's bytes (copied above unless immutable), after what our buffer
                # holds: the hash thread takes both in file order.
                self._hash_pending()
                behind = self._behind_thread()
                behind.wait_for(behind.hash(chunk) - _BACKLOG)
            # Our buffer's bytes go to the hash thread a whole buffer at a time
            # (_hash_pending): one task per buffer, not one per socket read.
            self._hashed += len(chunk)
        if ours:
            self._filled += len(chunk)
        self._note_written(offset, len(chunk))
        if ours and RECEIVE_BUFFER_BYTES - self._filled < _MIN_SPACE:
            self._next_buffer()

    def _hash_pending(self) -> None:
        """Hand what the current buffer received since the last hand-over to the hash thread;
        the buffer is received into again only once that task is done."""
        start, self._hash_from = self._hash_from, self._filled
        if self._hashers is not None and self._filled > start:
            task = self._behind_thread().hash(self._views[self._current][start : self._filled])
            self._last_task[self._current] = task

    def _note_written(self, offset: int, length: int) -> None:
        """Start write-back of what was written, once WRITEBACK_BYTES of it are pending."""
        end = offset + length
        if self._unflushed_from is None or offset != self._unflushed_to:
            if self._unflushed_from is not None:
                self._flush_behind()
            self._unflushed_from = offset
        self._unflushed_to = end
        if end - self._unflushed_from >= WRITEBACK_BYTES:
            self._flush_behind()

    def _flush_behind(self) -> None:
        start, self._unflushed_from = self._unflushed_from, None
        if start is None:
            return
        if self._writeback is None:
            # A thread of its own: sync_file_range may block while the disk's queue is full,
            # and the hash thread (which the receive waits for) must not wait with it.
            self._writeback = _Behind(self.fd, None, "rangeio-writeback")
        assert self._writer is not None  # the bytes to write back were written through it
        self._writeback.start_writeback(
            start, self._unflushed_to - start, (self._writer, self._writer.queued)
        )

    def _next_buffer(self) -> None:
        self._hash_pending()
        self._current = (self._current + 1) % RECEIVE_BUFFERS
        self._filled = self._hash_from = 0
        if self._writer is not None:
            self._writer.wait_for(self._last_write[self._current])
        if self._behind is not None:
            self._behind.wait_for(self._last_task[self._current])

    def settle(self) -> None:
        """Until every write asked for so far is in the page cache; raises the OSError of one
        that failed (then nothing may claim those bytes)."""
        if self._writer is not None:
            self._writer.settle()

    def _behind_thread(self) -> _Behind:
        if self._behind is None:
            self._behind = _Behind(self.fd, self._hashers, "rangeio-hash")
        return self._behind

    def adopt_hash(self, hashers: dict[str, Any], hashed: int) -> None:
        """Hashes of bytes [0, hashed) computed elsewhere (the parallel prefix hasher)."""
        self._hashers, self._hashed = hashers, hashed
        if self._behind is not None:
            self._behind.close()  # nothing of this file's own hashing is wanted now
            self._behind = None

    def hashes(self, total: int) -> dict[str, str] | None:
        """The hashes of bytes [0, total) if every one of them was hashed in order (waits for
        the hash thread to finish them); None if the file must be hashed from disk (also
        if hashing failed on the thread: then the disk pass says what the bytes are). The
        writes are settled first, so the file holds every byte once this returns."""
        self.settle()
        if self._hashers is None or self._hashed != total:
            return None
        self._hash_pending()
        behind = self._behind
        if behind is not None:
            behind.wait_for(behind.queued)
            if behind.failure is not None:
                log.warning(
                    "hashing beside the download failed (%s): hashing the file", behind.failure
                )
                return None
        return {name: hasher.hexdigest() for name, hasher in self._hashers.items()}

    def close(self) -> None:
        """Close the descriptor once the writes asked for are done (their failure, if any,
        is not raised here: whoever needed them settled first, or is unwinding already)."""
        if self._open:
            self._open = False
            for thread in (self._behind, self._writeback):
                if thread is not None:
                    thread.close()
            if self._writer is not None:
                self._writer.close(finish=True)
            close_fd(self.fd)
