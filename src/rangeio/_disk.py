"""Durable file operations for downloads: positional writes, fsyncs, atomic replace, locking."""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
from pathlib import Path
from typing import Any

try:  # POSIX advisory locks; on other systems downloads run unlocked.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

from rangeio._core import control
from rangeio._core.download import Assessment, assess, tails_to_check
from rangeio.errors import DownloadLockedError

READ_CHUNK = 1024 * 1024


def open_rw(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)


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


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves either the old or the new content:
    a unique temp name, fsync, rename, fsync of the directory."""
    temp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
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


def read_small(path: Path, limit: int) -> bytes | None:
    """The file's bytes if it exists and is at most ``limit`` long (a bigger one is refused
    before it is read: a control record is small)."""
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except FileNotFoundError:
        return None
    return data


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


def file_size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None


def remove(path: Path) -> None:
    _unlink_quietly(path)


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class DownloadLock:
    """An exclusive advisory lock on ``<dest>.part.lock``: a second process downloading to the
    same destination fails at once with DownloadLockedError instead of interleaving writes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise DownloadLockedError(
                    f"another process is downloading to {self.path.with_suffix('')}"
                ) from None
        self._fd = fd

    def release(self, *, remove_file: bool = False) -> None:
        if self._fd is None:
            return
        if remove_file:
            # Only after the destination is in place: a process that locks a fresh lock file
            # from here on finds the download finished.
            _unlink_quietly(self.path)
        os.close(self._fd)
        self._fd = None


class PartFiles:
    """The sidecars of a download to ``dest``: ``<dest>.part`` (data), ``<dest>.part.ctrl``
    (control record) and ``<dest>.part.lock``. Beside the destination, so the final rename never
    crosses filesystems. Every method is one blocking step, run by a runner's Blocking op."""

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        self.part = dest.with_name(dest.name + ".part")
        self.ctrl = dest.with_name(dest.name + ".part.ctrl")
        self.lock = DownloadLock(dest.with_name(dest.name + ".part.lock"))

    def unlock(self, finished: bool) -> None:
        """Release the destination's lock; its file goes too once there is nothing left to
        protect (the download finished, or never wrote a byte)."""
        self.lock.release(remove_file=finished or not self.part.exists())

    def inspect(self, url: str) -> tuple[Assessment, dict[int, bytes]]:
        """Read what is on disk and let the core decide what it is worth."""
        record: control.ControlRecord | None = None
        record_error: str | None = None
        try:
            raw = read_small(self.ctrl, control.MAX_RECORD_BYTES)
        except OSError as exc:
            raw, record_error = None, f"unreadable: {exc}"
        if raw is not None:
            try:
                record = control.decode(raw)
            except control.ControlRecordError as exc:
                record_error = str(exc)
        part_size = file_size(self.part)
        tails: dict[int, bytes] = {}
        if record is not None and part_size is not None:
            fd = os.open(self.part, os.O_RDONLY)
            try:
                for start, span in tails_to_check(record):
                    tails[start] = pread_all(fd, span.start, span.length)
            finally:
                os.close(fd)
        verdict = assess(url, record, record_error, part_size, self.dest.exists(), tails)
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
        return open_rw(self.part)

    def checkpoint(self, fd: int, record: control.ControlRecord) -> None:
        """Data first, then the record that covers it; a failing fdatasync raises before the
        record is written, so a checkpoint never claims bytes the disk may not have. Nothing
        to do for a record that may not be written at all (``control.fit``)."""
        stored = control.fit(record).record
        if stored is None:
            return
        datasync(fd)
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
        leaves a finished destination, which the next attempt recognises as done)."""
        os.replace(self.part, self.dest)
        fsync_dir(self.dest.parent)
        remove(self.ctrl)

    def finish_done(self) -> tuple[int, str]:
        """The destination is already complete: drop stale sidecars, report size and SHA-256."""
        remove(self.ctrl)
        fd = os.open(self.dest, os.O_RDONLY)
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
