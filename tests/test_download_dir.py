"""The download directory against a hostile local user: whatever is planted at ``dest``,
``.part``, ``.part.ctrl``, ``.part.lock`` or a temporary record file (a symlink out of the
directory, a dangling one, a FIFO, a hard link, a directory), a download writes nothing outside
the directory, never hangs, and either succeeds or raises UnsafePathError. Also: an existing
``dest`` is checked against ``sha256=``, no descriptor leaks on a failing call, and a crash's
stale temporary record files are removed."""

from __future__ import annotations

import asyncio
import base64
import fcntl
import gc
import hashlib
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import rangeio
import rangeio.aio
from rangeio import _disk
from rangeio._core import control
from rangeio._core.download import Entry, rule_on_entry
from rangeio._disk import PartFiles, safe_open
from rangeio.testing import Faults, FaultServer
from tests.adapters import ALL_ADAPTERS, Opener, opener_for
from tests.test_cli import rangeio_cli

SMALL = "/small.bin"
DATA = "/data.bin"
VICTIM = b"precious bytes outside the download directory\n"
# A call that hangs on a FIFO is caught by this bound instead of hanging the suite.
BOUND = 10.0

KINDS = ["symlink", "dangling", "fifo", "hardlink", "directory"]
ROLES = ["dest", "part", "ctrl", "lock", "temp"]
# (role, kind) -> what the download does: "ok" (succeeds, the planted thing replaced or
# ignored) or "refused" (UnsafePathError, the planted thing left as it was).
REFUSED = {
    ("dest", "fifo"),
    ("dest", "directory"),
    ("part", "directory"),
    ("ctrl", "directory"),
    ("lock", "directory"),
}
# A temporary record name planted where the next atomic write will first look (the test
# makes the first random token predictable; a real attacker cannot know it).
TOKEN = "deadbeef"


@pytest.fixture(params=["urllib3", "aiohttp"])
def face(request: pytest.FixtureRequest) -> Iterator[Opener]:
    """A sync and an async adapter: the main matrix runs over both."""
    yield from opener_for(request.param)


@pytest.fixture(params=ALL_ADAPTERS)
def every_opener(request: pytest.FixtureRequest) -> Iterator[Opener]:
    yield from opener_for(request.param)


class Scene:
    """A download directory ``dl`` beside an ``outside`` directory holding a victim file."""

    def __init__(self, root: Path) -> None:
        self.dl = root / "dl"
        self.outside = root / "outside"
        self.dl.mkdir()
        self.outside.mkdir()
        self.victim = self.outside / "victim"
        self.victim.write_bytes(VICTIM)
        self.ghost = self.outside / "ghost"  # a dangling symlink's target: must never appear
        self.dest = self.dl / "small.bin"
        self.files = PartFiles(self.dest)

    def path_of(self, role: str) -> Path:
        if role == "dest":
            return self.dest
        if role == "part":
            return self.files.part
        if role == "ctrl":
            return self.files.ctrl
        if role == "lock":
            return self.files.lock.path
        return self.files.ctrl.with_name(f"{self.files.ctrl.name}.{os.getpid()}.{TOKEN}.tmp")

    def plant(self, role: str, kind: str) -> Path:
        path = self.path_of(role)
        if kind == "symlink":
            path.symlink_to(self.victim)
        elif kind == "dangling":
            path.symlink_to(self.ghost)
        elif kind == "fifo":
            os.mkfifo(path)
        elif kind == "hardlink":
            os.link(self.victim, path)
        else:
            path.mkdir()
            (path / "keep").write_bytes(b"someone's")
        return path

    def outside_now(self) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted(self.outside.iterdir())}


def cursor_zero_record(url: str, total: int) -> bytes:
    """A valid record for ``url`` with nothing durable: a resume trusts the ``.part`` as is."""
    return control.encode(
        control.ControlRecord(url=url, total=total, segments=(control.Segment(0, 0, total),))
    )


def bounded(call: Callable[[], Any], fifos: list[Path]) -> Any:
    """Run ``call`` in a thread, at most BOUND seconds; a call blocked opening a FIFO is freed
    (a writer opens the FIFO) and the test fails."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(BOUND)
    if thread.is_alive():
        for fifo in fifos:
            if fifo.exists():
                os.close(os.open(fifo, os.O_RDWR | os.O_NONBLOCK))
        thread.join(BOUND)
        pytest.fail(f"the download blocked for {BOUND}s (on a FIFO)")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def fetch(opener: Opener, how: str, url: str, dest: Path, **options: Any) -> Any:
    if how == "haul":
        return opener.haul(url, dest, **options)
    return opener.download(url, dest, retries=0, **options)


def patch_first_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first temporary record name is predictable (TOKEN), the next ones random."""
    real = _disk.secrets.token_hex
    first = [TOKEN]

    def token_hex(n: int) -> str:
        return first.pop() if first else real(n)

    monkeypatch.setattr(_disk.secrets, "token_hex", token_hex)


@pytest.mark.parametrize("how", ["haul", "download"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("role", ROLES)
def test_planted_path(
    role: str,
    kind: str,
    how: str,
    face: Opener,
    fault_server: FaultServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scene = Scene(tmp_path)
    data = fault_server.get_file(SMALL)
    url = fault_server.url(SMALL)
    planted = scene.plant(role, kind)
    if role == "part":
        # With a valid cursor-0 record the .part is trusted as it is: the dangerous case.
        scene.files.ctrl.write_bytes(cursor_zero_record(url, len(data)))
    if role == "temp":
        patch_first_token(monkeypatch)
    before = scene.outside_now()
    fifos = [planted] if kind == "fifo" else []
    sha = hashlib.sha256(data).hexdigest()

    if (role, kind) in REFUSED:
        with pytest.raises(rangeio.UnsafePathError) as info:
            bounded(lambda: fetch(face, how, url, scene.dest, sha256=sha), fifos)
        assert info.value.path == str(planted)
        assert isinstance(info.value, OSError)
        # Left exactly as it was: never removed, never written into.
        mode = os.lstat(planted).st_mode
        assert stat.S_ISFIFO(mode) if kind == "fifo" else stat.S_ISDIR(mode)
        if kind == "directory":
            assert sorted(p.name for p in planted.iterdir()) == ["keep"]
            assert (planted / "keep").read_bytes() == b"someone's"
    else:
        result = bounded(lambda: fetch(face, how, url, scene.dest, sha256=sha), fifos)
        assert result.sha256 == sha and result.size == len(data)
        assert not scene.dest.is_symlink() and scene.dest.read_bytes() == data
        left = sorted(p.name for p in scene.dl.iterdir())
        # Nothing of rangeio's is left; a planted directory is someone's and stays.
        kept = [planted.name] if kind == "directory" else []
        assert left == sorted(["small.bin", *kept])
    # Nothing outside the directory changed, byte for byte, and nothing new appeared there.
    assert scene.outside_now() == before
    assert not os.path.lexists(scene.ghost)


@pytest.mark.parametrize("how", ["haul", "download"])
def test_symlinked_part_with_cursor_zero_record_every_adapter(
    how: str, every_opener: Opener, fault_server: FaultServer, tmp_path: Path
) -> None:
    """The issue's case: a symlink at ``.part`` plus a cursor-0 record once made the download
    truncate and overwrite the link's target, then rename the link onto ``dest``."""
    scene = Scene(tmp_path)
    data = fault_server.get_file(DATA)
    url = fault_server.url(DATA)
    scene.plant("part", "symlink")
    scene.files.ctrl.write_bytes(cursor_zero_record(url, len(data)))
    result = fetch(every_opener, how, url, scene.dest)
    assert scene.victim.read_bytes() == VICTIM
    assert not scene.dest.is_symlink() and scene.dest.read_bytes() == data
    assert result.bytes_reused == 0 and result.bytes_transferred == len(data)


def test_parallel_download_never_writes_through_a_hard_linked_part(
    face: Opener, fault_server: FaultServer, tmp_path: Path
) -> None:
    scene = Scene(tmp_path)
    data = fault_server.get_file(DATA)
    url = fault_server.url(DATA)
    scene.plant("part", "hardlink")
    scene.files.ctrl.write_bytes(cursor_zero_record(url, len(data)))
    policy = rangeio.DownloadPolicy(min_segment_bytes=256 * 1024)
    face.download(url, scene.dest, connections=3, policy=policy)
    assert scene.victim.read_bytes() == VICTIM and scene.dest.read_bytes() == data


def test_cli_get_never_writes_through_a_planted_part(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    scene = Scene(tmp_path)
    url = fault_server.url(SMALL)
    data = fault_server.get_file(SMALL)
    scene.plant("part", "symlink")
    scene.files.ctrl.write_bytes(cursor_zero_record(url, len(data)))
    done = rangeio_cli("get", url, "-o", str(scene.dest), cwd=tmp_path, timeout=BOUND)
    assert done.returncode == 0, done.stderr
    assert scene.victim.read_bytes() == VICTIM and scene.dest.read_bytes() == data

    # A directory at .part is refused with a typed error (exit 1), and left alone.
    other = scene.dl / "other.bin"
    (scene.dl / "other.bin.part").mkdir()
    refused = rangeio_cli("get", url, "-o", str(other), cwd=tmp_path, timeout=BOUND)
    assert refused.returncode == 1
    assert b"refusing to use" in refused.stderr and b"other.bin.part" in refused.stderr
    assert (scene.dl / "other.bin.part").is_dir() and not other.exists()


# -- the helper itself -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["symlink", "dangling", "fifo", "hardlink", "directory"])
def test_safe_open_refuses_without_following_or_blocking(kind: str, tmp_path: Path) -> None:
    """What ``settle`` did not see (a file swapped in after the check) is refused by the open
    itself: the race is a typed error, never a write through."""
    scene = Scene(tmp_path)
    path = scene.plant("part", kind)
    flags = os.O_WRONLY | os.O_CREAT if kind != "fifo" else os.O_RDONLY
    with pytest.raises(rangeio.UnsafePathError):
        bounded(lambda: safe_open(path, flags, "part"), [path] if kind == "fifo" else [])
    assert scene.outside_now() == {"victim": VICTIM} and not os.path.lexists(scene.ghost)


@pytest.mark.parametrize(
    ("role", "entry", "verdict"),
    [
        ("part", Entry("missing"), "absent"),
        ("part", Entry("file"), "use"),
        ("part", Entry("file", links=2), "replace"),
        ("part", Entry("symlink"), "replace"),
        ("lock", Entry("fifo"), "replace"),
        ("ctrl", Entry("other"), "replace"),
        ("temp", Entry("directory"), "refuse"),
        ("part", Entry("file", same_device=False), "refuse"),
        ("dest", Entry("file", links=3), "use"),
        ("dest", Entry("symlink"), "replace"),
        ("dest", Entry("fifo"), "refuse"),
        ("dest", Entry("other"), "refuse"),
        ("dest", Entry("directory"), "refuse"),
    ],
)
def test_rule_on_entry(role: str, entry: Entry, verdict: str) -> None:
    assert rule_on_entry(role, entry) == verdict


# -- an existing destination ----------------------------------------------------------------


@pytest.mark.parametrize("connections", [1, 2])
def test_existing_dest_matching_sha256_is_reused(
    connections: int, face: Opener, fault_server: FaultServer, tmp_path: Path
) -> None:
    data = fault_server.get_file(SMALL)
    dest = tmp_path / "small.bin"
    dest.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    result = face.download(fault_server.url(SMALL), dest, sha256=sha, connections=connections)
    assert (result.requests, result.bytes_transferred, result.bytes_reused) == (0, 0, len(data))
    assert result.sha256 == sha and fault_server.requests == []


@pytest.mark.parametrize("how", ["haul", "download", "parallel"])
def test_existing_dest_not_matching_sha256_is_downloaded_again(
    how: str, face: Opener, fault_server: FaultServer, tmp_path: Path
) -> None:
    """A dest that does not hash to sha256= is never returned: it is fetched again (and the
    server's digest checked too), replacing dest only once the new file verifies."""
    data = fault_server.get_file(SMALL)
    url = fault_server.url(SMALL)
    dest = tmp_path / "small.bin"
    dest.write_bytes(b"an older version")
    sha = hashlib.sha256(data).hexdigest()
    fault_server.faults = Faults(extra_headers=(("Repr-Digest", _repr_digest(data)),))
    if how == "haul":
        result = face.haul(url, dest, sha256=sha)
    else:
        result = face.download(url, dest, sha256=sha, connections=2 if how == "parallel" else 1)
    assert dest.read_bytes() == data and result.sha256 == sha
    assert result.bytes_reused == 0 and result.bytes_transferred == len(data)
    assert result.requests >= 1


@pytest.mark.parametrize("server_digest", ["wrong", "none"])
def test_existing_dest_is_never_returned_when_nothing_verifies(
    server_digest: str, face: Opener, fault_server: FaultServer, tmp_path: Path
) -> None:
    """sha256= matches neither the old dest nor what the server sends (or the server's own
    digest is wrong): ChecksumMismatchError, and dest keeps its old bytes."""
    data = fault_server.get_file(SMALL)
    url = fault_server.url(SMALL)
    dest = tmp_path / "small.bin"
    dest.write_bytes(b"an older version")
    if server_digest == "wrong":
        sha = hashlib.sha256(data).hexdigest()
        fault_server.faults = Faults(extra_headers=(("Repr-Digest", _repr_digest(b"other")),))
    else:
        sha = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(rangeio.ChecksumMismatchError):
        face.download(url, dest, sha256=sha, retries=0)
    assert dest.read_bytes() == b"an older version"


def _repr_digest(data: bytes) -> str:
    return "sha-256=:" + base64.b64encode(hashlib.sha256(data).digest()).decode() + ":"


# -- descriptors -------------------------------------------------------------------------------


def open_fds() -> int:
    gc.collect()
    return len(os.listdir("/proc/self/fd"))


def settled_fds(baseline: int) -> int:
    """The count once the in-process server has closed its side of finished connections
    (polled, bounded): only what the downloads themselves left open remains."""
    deadline = time.monotonic() + 5
    count = open_fds()
    while count > baseline and time.monotonic() < deadline:
        time.sleep(0.01)
        count = open_fds()
    return count


class FailingCalls:
    """Several kinds of failing download call, each to a fresh destination."""

    def __init__(self, server: FaultServer, root: Path) -> None:
        self.server = server
        self.root = root
        self.n = 0
        self.locked = root / "locked.bin"
        (root / "fifo.bin").unlink(missing_ok=True)
        os.mkfifo(root / "fifo.bin")

    def next(self) -> tuple[str, Path, dict[str, Any], type[BaseException]]:
        """(url, dest, options, expected error) of the next failing call."""
        self.n += 1
        dest = self.root / f"out{self.n}.bin"
        kind = self.n % 6
        if kind == 0:  # a malformed Digest header once .part is open
            self.server.faults = Faults(extra_headers=(("Digest", "sha-256=!!not-base64"),))
            return self.server.url(DATA), dest, {}, rangeio.HeaderParseError
        self.server.faults = Faults()
        if kind == 1:
            return self.server.url("/missing.bin"), dest, {}, rangeio.HTTPStatusError
        if kind == 2:  # a body cut short, no retries
            self.server.faults = Faults(truncate_after=100_000)
            return self.server.url(DATA), dest, {}, rangeio.PartialDownloadError
        if kind == 3:  # the lock held by another downloader
            return self.server.url(SMALL), self.locked, {}, rangeio.DownloadLockedError
        if kind == 4:  # a directory at .part
            dest.with_name(dest.name + ".part").mkdir()
            return self.server.url(SMALL), dest, {}, rangeio.UnsafePathError
        return self.server.url(SMALL), self.root / "fifo.bin", {}, rangeio.UnsafePathError


def test_no_descriptor_leaks_sync(fault_server: FaultServer, tmp_path: Path) -> None:
    calls = FailingCalls(fault_server, tmp_path)
    holder = PartFiles(calls.locked).lock
    holder.acquire()
    try:
        rangeio.download(fault_server.url(SMALL), tmp_path / "warm.bin")  # imports, pools
        baseline = open_fds()
        for i in range(50):
            url, dest, options, error = calls.next()
            with pytest.raises(error):
                if i % 2:
                    rangeio.haul(url, dest=dest, **options)
                else:
                    rangeio.download(url, dest, retries=0, **options)
        assert settled_fds(baseline) <= baseline
    finally:
        holder.release()


def test_no_descriptor_leaks_async(fault_server: FaultServer, tmp_path: Path) -> None:
    calls = FailingCalls(fault_server, tmp_path)
    holder = PartFiles(calls.locked).lock
    holder.acquire()

    async def main() -> int:
        await rangeio.aio.download(fault_server.url(SMALL), tmp_path / "warm.bin")
        baseline = open_fds()
        for i in range(50):
            url, dest, options, error = calls.next()
            with pytest.raises(error):
                if i % 2:
                    await rangeio.aio.haul(url, dest=dest, **options)
                else:
                    await rangeio.aio.download(url, dest, retries=0, **options)
        return baseline

    try:
        baseline = asyncio.run(main())
        # The loop's own descriptors are gone with it, so the count can only have dropped.
        assert settled_fds(baseline) <= baseline
    finally:
        holder.release()


# -- stale temporary record files ---------------------------------------------------------------


def crash_leftovers(ctrl: Path) -> list[Path]:
    """What a crash inside atomic_write leaves: temp files of other (dead) processes."""
    stale = [
        ctrl.with_name(f"{ctrl.name}.4242.0badc0de.tmp"),
        ctrl.with_name(f"{ctrl.name}.{os.getpid()}.12345678.tmp"),
    ]
    for path in stale:
        path.write_bytes(b"\x89RIOCTL\n half a record")
    return stale


@pytest.mark.parametrize("how", ["haul", "download"])
def test_stale_temp_records_are_removed(
    how: str, face: Opener, fault_server: FaultServer, tmp_path: Path
) -> None:
    data = fault_server.get_file(DATA)
    url = fault_server.url(DATA)
    dest = tmp_path / "out.bin"
    files = PartFiles(dest)
    # Names that only look alike are someone else's and stay.
    unrelated = [
        tmp_path / "out.bin.part.ctrl.notes.tmp",
        tmp_path / "other.bin.part.ctrl.4242.0badc0de.tmp",
        tmp_path / "out.bin.part.ctrl.4242.0badc0de.tmp.bak",
    ]
    for path in unrelated:
        path.write_bytes(b"mine")
    stale = crash_leftovers(files.ctrl)
    # A first attempt that is cut: the next one must resume, and clean up.
    fault_server.faults = Faults(truncate_after=1_000_000, times=1)
    with pytest.raises(rangeio.PartialDownloadError):
        fetch(face, how, url, dest, policy=rangeio.DownloadPolicy(checkpoint_bytes=256 * 1024))
    assert not any(p.exists() for p in stale)
    stale = crash_leftovers(files.ctrl)
    result = fetch(face, how, url, dest)
    assert dest.read_bytes() == data and result.bytes_reused > 0
    assert not any(p.exists() for p in stale)
    assert all(p.read_bytes() == b"mine" for p in unrelated)


def test_lock_file_removed_by_its_finishing_holder_is_taken_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A holder that finishes removes the lock file; a process that opened the old file just
    before must not count a lock on that removed file as the lock."""
    dest = tmp_path / "out.bin"
    first, second = PartFiles(dest).lock, PartFiles(dest).lock
    first.acquire()
    real_flock = fcntl.flock
    calls: list[int] = []

    def flock_after_the_holder_finished(fd: int, op: int) -> None:
        if not calls:
            calls.append(fd)
            first.release(remove_file=True)  # the holder finishes between our open and flock
        real_flock(fd, op)

    monkeypatch.setattr(_disk.fcntl, "flock", flock_after_the_holder_finished)
    second.acquire()
    try:
        # The lock is held on the file at the path now, so another downloader is refused.
        assert second.path.exists() and len(calls) == 1
        with pytest.raises(rangeio.DownloadLockedError):
            PartFiles(dest).lock.acquire()
    finally:
        second.release(remove_file=True)


def test_cli_zip_get_never_writes_through_a_planted_part(tmp_path: Path) -> None:
    """``rangeio zip get -o`` keeps its own ``.part``: opened the same safe way."""
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("member.txt", b"from the archive\n")
    scene = Scene(tmp_path)
    out = scene.dl / "member.txt"
    Path(str(out) + ".part").symlink_to(scene.victim)
    with FaultServer({"/a.zip": buf.getvalue()}) as server:
        done = rangeio_cli(
            "zip", "get", server.url("/a.zip"), "member.txt", "-o", str(out), cwd=tmp_path
        )
    assert done.returncode == 0, done.stderr
    assert scene.victim.read_bytes() == VICTIM and out.read_bytes() == b"from the archive\n"
