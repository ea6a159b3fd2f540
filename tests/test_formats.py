"""Format planners on real files from real tools (zipfile, zip, tarfile, tar, pyarrow) over real servers."""

from __future__ import annotations

import io
import json
import random
import shutil
import struct
import subprocess
import sys
import tarfile
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rangeio
from rangeio.formats import BytesSource, FormatError
from rangeio.formats.conda import conda_info
from rangeio.formats.png import SIGNATURE, png_chunks
from rangeio.formats.tar import TarIndex
from rangeio.formats.zip import ZipStream
from rangeio.testing import Faults, FaultServer
from tests.servers.nginx import Nginx

MiB = 1024 * 1024
FAST_RETRY = rangeio.RetryPolicy(attempts=3, backoff=0.01, max_backoff=0.05)


def rand(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


def text(n: int, seed: int = 0) -> bytes:
    """Compressible bytes: words from a small vocabulary."""
    rng = random.Random(seed)
    words = [b"range", b"byte", b"zip", b"header", b"member", b"chunk", b"footer", b"tar"]
    out = bytearray()
    while len(out) < n:
        out += rng.choice(words) + b" "
    return bytes(out[:n])


_counter = iter(range(1_000_000))


def serve(nginx: Nginx, data: bytes, suffix: str = ".bin") -> str:
    """Put ``data`` on nginx under a fresh name and return its URL."""
    return nginx.add_file(f"formats-{next(_counter)}{suffix}", data)


# -- zip ----------------------------------------------------------------------------------

ZIP_METHODS = {
    "stored": zipfile.ZIP_STORED,
    "deflate": zipfile.ZIP_DEFLATED,
    "bzip2": zipfile.ZIP_BZIP2,
    "lzma": zipfile.ZIP_LZMA,
}


def python_zip(method: int, *, big: int = 1536 * 1024) -> bytes:
    """A zip from zipfile: a big member first (so the open's 1 MiB prefetch from the end does
    not cover it), then small ones, a directory, an empty file and an archive comment."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as z:
        z.writestr("big.bin", rand(big, 1))
        z.writestr("text.txt", text(200_000, 2))
        z.writestr("dir/", b"")
        z.writestr("empty.txt", b"")
        z.writestr("nested/deep/data.json", json.dumps({"k": list(range(500))}).encode())
        z.writestr("ünïcode-名前.txt", b"unicode name")
        z.comment = b"an archive comment" * 100
    return buf.getvalue()


@pytest.mark.parametrize("method", list(ZIP_METHODS))
def test_zip_python_methods(nginx: Nginx, method: str) -> None:
    data = python_zip(ZIP_METHODS[method])
    ref = zipfile.ZipFile(io.BytesIO(data))
    with ZipStream(serve(nginx, data, ".zip")) as z:
        assert z.stats.requests == 1  # the open's prefetch holds the whole directory
        assert z.comment == ref.comment
        infos = ref.infolist()
        members = z.members()
        assert [m.name for m in members] == [i.filename for i in infos]
        for m, info in zip(members, infos):
            assert (m.size, m.compressed_size, m.crc32) == (
                info.file_size,
                info.compress_size,
                info.CRC,
            )
            assert m.method == info.compress_type
            assert m.header_offset == info.header_offset
            assert m.is_dir == info.is_dir()
        # Members near the end come from the prefetch: no request.
        for name in ["text.txt", "empty.txt", "nested/deep/data.json", "ünïcode-名前.txt"]:
            assert z.read(name) == ref.read(name)
        assert z.stats.requests == 1
        # The big member: its local header and data in one request, nothing else.
        before = z.stats.bytes_fetched
        big = z.member("big.bin")
        assert z.read("big.bin") == ref.read("big.bin")
        assert z.stats.requests == 2
        assert z.stats.bytes_fetched - before <= big.compressed_size + 30 + len("big.bin")
        with z.open("text.txt") as f:
            parts = iter(lambda: f.read(7777), b"")
            assert b"".join(parts) == ref.read("text.txt")


def test_zip_listing_under_1mib_directory_costs_one_request(nginx: Nginx) -> None:
    """Thousands of members, 8 MB of data, a ~300 KB directory: listing is the open alone
    (ZipStream opens with a 1 MiB suffix, OPEN_PREFETCH); twenty members spread over the archive
    come in one multipart request."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as z:
        for i in range(5000):
            z.writestr(f"members/m{i:05d}.bin", rand(1600, i))
    data = buf.getvalue()
    assert len(data) > 8 * MiB
    ref = zipfile.ZipFile(io.BytesIO(data))
    with ZipStream(serve(nginx, data, ".zip")) as z:
        stats = z.stats
        assert stats is not None
        assert len(z.members()) == 5000
        assert stats.requests == 1
        names = [f"members/m{i:05d}.bin" for i in range(0, 4000, 200)]
        before = stats.bytes_fetched
        assert z.read_many(names) == [ref.read(n) for n in names]
        assert stats.requests == 2
        # Each member's span ends at the next local header: ~1.7 KB each, plus part headers.
        assert stats.bytes_fetched - before < len(names) * (1600 + 100 + 200)
    # A file the caller opened keeps its own prefetch (a zip URL's 16 KiB): the end record
    # says where the directory starts, and the rest of it is one more request.
    with rangeio.open(serve(nginx, data, ".zip")) as f, ZipStream(f) as z:
        assert len(z.members()) == 5000
        assert f.stats.requests == 2
        assert f.stats.bytes_fetched == len(data) - z._cd_start


def test_zip64_python_zipfile(nginx: Nginx) -> None:
    """65,546 members force zipfile to write the zip64 end records; force_zip64 puts zip64
    extras (with a local extra longer than the central one) on some members. Its 3 MB
    directory is past the 1 MiB prefetch: listing costs the open and one request."""
    buf = io.BytesIO()
    payload = text(300_000, 5)
    with zipfile.ZipFile(buf, "w", allowZip64=True) as z:
        with z.open(zipfile.ZipInfo("forced-zip64.txt"), "w", force_zip64=True) as w:
            w.write(payload)
        info = zipfile.ZipInfo("forced-deflate.txt")
        info.compress_type = zipfile.ZIP_DEFLATED
        with z.open(info, "w", force_zip64=True) as w:
            w.write(payload)
        for i in range(65_544):
            z.writestr(zipfile.ZipInfo(f"{i:x}"), b"%d" % i)
    data = buf.getvalue()
    assert data.rfind(b"PK\x06\x06") > 0  # a zip64 end record is there
    ref = zipfile.ZipFile(io.BytesIO(data))
    with ZipStream(serve(nginx, data, ".zip")) as z:
        assert z.stats.requests == 2
        members = z.members()
        assert len(members) == 65_546 == len(ref.infolist())
        assert z.read("forced-zip64.txt") == payload
        assert z.read("forced-deflate.txt") == payload
        assert z.read_many(["ffff", "10000", "0"]) == [b"65535", b"65536", b"0"]


@pytest.fixture(scope="module")
def zip_tool() -> str:
    tool = shutil.which("zip")
    if tool is None:
        pytest.skip("the Info-ZIP `zip` tool is not installed (apt-get install zip)")
    return tool


def cli_zip(tool: str, tmp: Path, args: list[str], *, piped: bool = False) -> bytes:
    src = tmp / "src"
    if not src.exists():
        (src / "sub" / "deeper").mkdir(parents=True)
        (src / "a.txt").write_bytes(text(50_000, 7))
        (src / "random.bin").write_bytes(rand(1_300_000, 8))
        (src / "sub" / "b.txt").write_bytes(b"hello from b\n")
        (src / "sub" / "deeper" / "empty").write_bytes(b"")
    if piped:
        # Writing to a pipe, zip cannot seek back: sizes go in data descriptors.
        files = ["a.txt", "random.bin", "sub/b.txt"]
        proc = subprocess.run([tool, "-q", *args, "-", *files], cwd=src, capture_output=True)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout
    out = tmp / f"out-{next(_counter)}.zip"
    proc = subprocess.run([tool, "-q", "-r", *args, str(out), "."], cwd=src, capture_output=True)
    assert proc.returncode == 0, proc.stderr
    return out.read_bytes()


@pytest.mark.parametrize(
    "args",
    [[], ["-0"], ["-9"], ["-Z", "bzip2"], ["-fz"], ["-fz", "-Z", "bzip2"]],
    ids=["deflate", "stored", "deflate-9", "bzip2", "zip64", "zip64-bzip2"],
)
def test_zip_cli(nginx: Nginx, zip_tool: str, tmp_path: Path, args: list[str]) -> None:
    data = cli_zip(zip_tool, tmp_path, args)
    if "-fz" in args:
        assert data.rfind(b"PK\x06\x06") > 0  # zip64 end record, zip64 extras in entries
    ref = zipfile.ZipFile(io.BytesIO(data))
    with ZipStream(serve(nginx, data, ".zip")) as z:
        assert sorted(z.namelist()) == sorted(ref.namelist())
        contents = z.read_many(z.members())
        assert contents == [ref.read(n) for n in z.namelist()]
        for m in z.members():
            if not m.is_dir:
                with z.open(m) as f:
                    assert f.read() == ref.read(m.name)


def test_zip_cli_piped_data_descriptors(nginx: Nginx, zip_tool: str, tmp_path: Path) -> None:
    data = cli_zip(zip_tool, tmp_path, [], piped=True)
    ref = zipfile.ZipFile(io.BytesIO(data))
    assert all(i.flag_bits & 0x08 for i in ref.infolist())
    with ZipStream(serve(nginx, data, ".zip")) as z:
        assert [z.read(n) for n in z.namelist()] == [ref.read(n) for n in ref.namelist()]


def test_zip_cli_comment_with_a_fake_end_record(
    nginx: Nginx, zip_tool: str, tmp_path: Path
) -> None:
    """A comment holding the end record's signature: zipfile takes the fake one (and fails);
    the record whose comment ends at the end of the file is the real one."""
    data = cli_zip(zip_tool, tmp_path, [])
    path = tmp_path / "commented.zip"
    path.write_bytes(data)
    comment = b"PK\x05\x06 looks like an end record, but is a comment\n" * 50
    proc = subprocess.run([zip_tool, "-q", "-z", str(path)], input=comment, capture_output=True)
    assert proc.returncode == 0, proc.stderr
    data = path.read_bytes()
    with ZipStream(serve(nginx, data, ".zip")) as z:
        # zip stores the comment with CRLF line ends and no final newline.
        assert z.comment == comment.rstrip(b"\n").replace(b"\n", b"\r\n")
        assert z.read("sub/b.txt") == b"hello from b\n"
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(io.BytesIO(data))


def test_zip_streaming_open_is_incremental(nginx: Nginx) -> None:
    """A 6 MB deflated member streamed in small reads: few requests, bounded fetching."""
    payload = text(6 * MiB, 11) + rand(2 * MiB, 12)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("payload", payload)
        z.writestr("tail.txt", b"tail")
    data = buf.getvalue()
    with ZipStream(serve(nginx, data, ".zip")) as z, z.open("payload") as f:
        head = f.read(1000)
        assert head == payload[:1000]
        # One read fetched only the first step of compressed data, not the member.
        assert z.stats.bytes_fetched < 1 * MiB + 300 * 1024
        rest = bytearray()
        while chunk := f.read(65536):
            rest += chunk
        assert head + rest == payload
        assert z.stats.requests <= 12
        assert z.stats.bytes_fetched < len(data) + 64 * 1024


def make_zip_with(entries: list[tuple[str, bytes, int, bytes]]) -> bytes:
    """A zip written by zipfile (stored), then patched: for each (name, content, method,
    stored_bytes) the method, CRC and uncompressed size fields are set to describe
    ``content`` compressed as ``stored_bytes``. For methods no tool here writes (zstd)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, _, _, stored in entries:
            z.writestr(name, stored)
    data = bytearray(buf.getvalue())
    ref = zipfile.ZipFile(io.BytesIO(bytes(data)))
    cd = bytes(data).rfind(b"PK\x05\x06")
    cd_offset = struct.unpack_from("<I", data, cd + 16)[0]
    for (_, content, method, _), info in zip(entries, ref.infolist()):
        crc = zlib.crc32(content)
        local = info.header_offset
        struct.pack_into("<H", data, local + 8, method)
        struct.pack_into("<I", data, local + 14, crc)
        struct.pack_into("<I", data, local + 22, len(content))
        central = data.index(b"PK\x01\x02" + b"", cd_offset)
        while struct.unpack_from("<I", data, central + 42)[0] != info.header_offset:
            central = data.index(b"PK\x01\x02", central + 4)
        struct.pack_into("<H", data, central + 10, method)
        struct.pack_into("<I", data, central + 16, crc)
        struct.pack_into("<I", data, central + 24, len(content))
    return bytes(data)


def test_zip_zstd_method_93(nginx: Nginx, monkeypatch: pytest.MonkeyPatch) -> None:
    zstandard = pytest.importorskip("zstandard")
    content = text(300_000, 3)
    compressed = zstandard.ZstdCompressor().compress(content)
    data = make_zip_with([("z.txt", content, 93, compressed)])
    url = serve(nginx, data, ".zip")
    with ZipStream(url) as z:
        assert z.member("z.txt").method == 93
        assert z.read("z.txt") == content
        with z.open("z.txt") as f:
            assert f.read() == content
        # Without zstandard (and no compression.zstd before Python 3.14), the error names
        # the extra that brings it.
        monkeypatch.setitem(sys.modules, "zstandard", None)
        monkeypatch.setitem(sys.modules, "compression", None)
        with pytest.raises(FormatError, match=r"rangeio\[conda\]"):
            z.read("z.txt")


def test_zip_unknown_method_and_bad_crc(nginx: Nginx) -> None:
    good = b"good content"
    data = bytearray(make_zip_with([("odd.bin", good, 99, good), ("plain.txt", good, 0, good)]))
    # Corrupt the stored member's last content byte: its CRC no longer matches.
    ref = zipfile.ZipFile(io.BytesIO(bytes(data)))
    plain = ref.getinfo("plain.txt")
    data[plain.header_offset + 30 + len("plain.txt") + len(good) - 1] ^= 0xFF
    with ZipStream(serve(nginx, bytes(data), ".zip")) as z:
        with pytest.raises(FormatError, match="method 99"):
            z.read("odd.bin")
        with pytest.raises(FormatError, match="CRC"):
            z.read("plain.txt")
        with pytest.raises(FormatError, match="CRC"), z.open("plain.txt") as f:
            f.read()
        with pytest.raises(KeyError):
            z.read("missing")


def test_zip_bomb_is_bounded() -> None:
    """A member declaring 1 KB that inflates to 50 MB is refused after 1 KB (plus a chunk)."""
    bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
    compressed = bomb.compress(bytes(50 * MiB)) + bomb.flush()
    data = make_zip_with([("bomb", bytes(1000), 8, compressed)])
    with ZipStream(BytesSource(data)) as z, pytest.raises(FormatError, match="more than its"):
        z.read("bomb")


def test_zip_malformed_inputs() -> None:
    data = python_zip(zipfile.ZIP_DEFLATED, big=10_000)
    cd = data.rfind(b"PK\x01\x02")
    cases = {
        "truncated": data[: len(data) // 2],
        "empty": b"",
        "not a zip": rand(5000),
        "bad directory signature": data[:cd] + b"XX" + data[cd + 2 :],
        "prefix cut": data[100:],
    }
    for label, case in cases.items():
        with pytest.raises(FormatError):
            ZipStream(BytesSource(case)).read_many(["big.bin", "text.txt"])
            pytest.fail(label)


def test_zip_prepended_bytes_self_extractor() -> None:
    data = python_zip(zipfile.ZIP_DEFLATED, big=10_000)
    stub = b"#!/bin/sh\necho a self-extractor stub\n" * 100
    with ZipStream(BytesSource(stub + data)) as z:
        ref = zipfile.ZipFile(io.BytesIO(stub + data))
        assert z.read_many(z.namelist()) == [ref.read(n) for n in ref.namelist()]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_zip_fuzz_only_format_errors(data: st.DataObject) -> None:
    original = bytearray(FUZZ_ZIP)
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(original) - 1))
        original[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(original)))
    blob = bytes(original[cut:] if data.draw(st.booleans()) else original[:cut])
    try:
        with ZipStream(BytesSource(blob)) as z:
            for m in z.members()[:5]:
                try:
                    z.read(m)
                    with z.open(m) as f:
                        f.read()
                except FormatError:
                    pass
    except FormatError:
        pass


def _fuzz_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for i, method in enumerate(ZIP_METHODS.values()):
            z.writestr(f"m{i}", text(300, i), compress_type=method)
        z.writestr(zipfile.ZipInfo("d/"), b"")
        z.comment = b"c"
    return buf.getvalue()


FUZZ_ZIP = _fuzz_zip()


# -- zip over a misbehaving server ---------------------------------------------------------


def test_zip_cut_response_resumes(fault_server: FaultServer) -> None:
    data = python_zip(zipfile.ZIP_DEFLATED)
    fault_server.add_file("/a.zip", data)
    ref = zipfile.ZipFile(io.BytesIO(data))
    with ZipStream(fault_server.url("/a.zip"), retries=FAST_RETRY) as z:
        fault_server.faults = Faults(truncate_after=100_000, times=1)
        fault_server.clear_log()
        assert z.read("big.bin") == ref.read("big.bin")
        first, second = (r.range for r in fault_server.requests)
        assert first is not None and second is not None
        # The second request resumes where the first was cut, it does not start over.
        assert int(second[6:].split("-")[0]) == int(first[6:].split("-")[0]) + 100_000


def test_zip_streamed_member_survives_cut_responses(fault_server: FaultServer) -> None:
    payload = text(6 * MiB, 11) + rand(2 * MiB, 12)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("payload", payload)
    fault_server.add_file("/s.zip", buf.getvalue())
    with ZipStream(fault_server.url("/s.zip"), retries=FAST_RETRY) as z, z.open("payload") as f:
        fault_server.faults = Faults(truncate_after=50_000, times=1)
        assert f.read() == payload
        assert z.stats.retries == 1
        # Each cut response was resumed where it stopped, never fetched again from its start.
        assert z.stats.bytes_fetched == len(buf.getvalue())


def test_zip_server_ignoring_ranges_costs_one_request(fault_server: FaultServer) -> None:
    data = python_zip(zipfile.ZIP_BZIP2)
    fault_server.add_file("/a.zip", data)
    fault_server.faults = Faults(ignore_range=True)
    ref = zipfile.ZipFile(io.BytesIO(data))
    with ZipStream(fault_server.url("/a.zip")) as z:
        assert z.read_many(z.namelist()) == [ref.read(n) for n in ref.namelist()]
        assert z.stats.requests == 1


def test_zip_server_refusing_suffix_ranges(fault_server: FaultServer) -> None:
    data = python_zip(zipfile.ZIP_DEFLATED)
    fault_server.add_file("/a.zip", data)
    fault_server.faults = Faults(suffix_501=True)
    with ZipStream(fault_server.url("/a.zip")) as z:
        # The open falls back to a prefix range; the end record then costs one request.
        assert z.stats.requests == 3
        assert z.read("empty.txt") == b""


def test_zip_changed_remote_is_not_a_format_error(fault_server: FaultServer) -> None:
    data = python_zip(zipfile.ZIP_DEFLATED)
    fault_server.add_file("/a.zip", data)
    with ZipStream(fault_server.url("/a.zip")) as z:
        fault_server.replace("/a.zip", data[::-1])
        with pytest.raises(rangeio.RemoteChangedError):
            z.read("big.bin")


# -- tar ----------------------------------------------------------------------------------


def python_tar(fmt: int, **kwargs: Any) -> bytes:
    buf = io.BytesIO()
    long_dir = "very/" + "long-directory-name/" * 6
    with tarfile.open(fileobj=buf, mode="w", format=fmt, **kwargs) as t:
        entries: list[tuple[str, bytes]] = [
            ("short.txt", b"short"),
            (long_dir + "file-in-a-long-path.bin", rand(3000, 1)),
            ("empty", b""),
            ("exact-block.bin", rand(512, 2)),
        ]
        if fmt != tarfile.USTAR_FORMAT:
            entries.append(("n" * 150 + ".txt", b"a name over 100 bytes, no slash to split at"))
            entries.append(("ünïcode/名前.txt", b"unicode"))
        for name, payload in entries:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            info.mtime = 1_700_000_000
            t.addfile(info, io.BytesIO(payload))
        d = tarfile.TarInfo("a-directory")
        d.type = tarfile.DIRTYPE
        t.addfile(d)
        link = tarfile.TarInfo("a-link")
        link.type = tarfile.SYMTYPE
        link.linkname = "target/" + "x" * 120 if fmt != tarfile.USTAR_FORMAT else "short.txt"
        t.addfile(link)
    return buf.getvalue()


def check_against_tarfile(index: TarIndex, data: bytes) -> None:
    ref = tarfile.open(fileobj=io.BytesIO(data))
    theirs = ref.getmembers()
    mine = index.members()
    assert [m.name.rstrip("/") for m in mine] == [t.name for t in theirs]
    for m, t in zip(mine, theirs):
        assert m.type == t.type.decode().replace("\0", "0")  # old-style regular files
        assert m.linkname == t.linkname
        if t.isfile():
            assert m.data_range[0] == t.offset_data
            assert m.size == t.size
            extracted = ref.extractfile(t)
            assert extracted is not None
            assert index.read(m) == extracted.read()


@pytest.mark.parametrize(
    "fmt",
    [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT],
    ids=["ustar", "gnu", "pax"],
)
def test_tar_python_formats(nginx: Nginx, fmt: int) -> None:
    data = python_tar(fmt)
    with TarIndex(serve(nginx, data, ".tar")) as index:
        check_against_tarfile(index, data)
        # The whole archive came with the open's prefetch (from the start, for tar).
        assert index.stats.requests == 1
        long_member = [m for m in index.members() if "file-in-a-long-path" in m.name][0]
        assert long_member.name.startswith("very/long-directory-name/")
        if fmt == tarfile.USTAR_FORMAT:
            # Split between the prefix and name fields.
            assert len(long_member.name) > 100


def test_tar_pax_global_header_is_skipped(nginx: Nginx) -> None:
    data = python_tar(tarfile.PAX_FORMAT, pax_headers={"comment": "global"})
    assert data[156:157] == b"g"
    with TarIndex(serve(nginx, data, ".tar")) as index:
        check_against_tarfile(index, data)
        assert index.members()[0].name == "short.txt"


@pytest.mark.parametrize("fmt", ["gnu", "pax", "ustar", "v7"])
def test_tar_cli(nginx: Nginx, tmp_path: Path, fmt: str) -> None:
    tool = shutil.which("tar")
    if tool is None:
        pytest.skip("the `tar` tool is not installed")
    root = tmp_path / "tree"
    (root / "sub").mkdir(parents=True)
    for i in range(12):
        (root / "sub" / f"file{i}.bin").write_bytes(rand(700 * i + 3, i))
    if fmt in ("gnu", "pax"):
        deep = root / ("d" * 90) / ("e" * 90)
        deep.mkdir(parents=True)
        (deep / ("f" * 120 + ".txt")).write_bytes(b"deep and long")
    (root / "link").symlink_to("sub/file1.bin")
    proc = subprocess.run(
        [tool, f"--format={fmt}", "-cf", "-", "-C", str(root), "."], capture_output=True
    )
    assert proc.returncode == 0, proc.stderr
    data = proc.stdout
    with TarIndex(serve(nginx, data, ".tar")) as index:
        check_against_tarfile(index, data)
        names = index.names()
        assert "./sub/file11.bin" in names
        if fmt in ("gnu", "pax"):
            assert any(n.endswith("f" * 120 + ".txt") for n in names)


def test_tar_small_members_share_requests(nginx: Nginx) -> None:
    """3000 small members (about 5 MB): the walk reads ahead, so a few requests cover them."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        for i in range(3000):
            payload = rand(1000 + i % 700, i)
            info = tarfile.TarInfo(f"small/{i:05d}.bin")
            info.size = len(payload)
            t.addfile(info, io.BytesIO(payload))
    data = buf.getvalue()
    with TarIndex(serve(nginx, data, ".tar")) as index:
        assert len(index.members()) == 3000
        # It reads through in 1 MiB windows (the first is the open's prefetch).
        assert index.stats.requests <= len(data) // MiB + 2
        assert index.stats.bytes_fetched <= len(data) + MiB
        assert index.read("small/02999.bin") == rand(1000 + 2999 % 700, 2999)


def test_tar_big_members_fetch_headers_only(nginx: Nginx) -> None:
    """Eight 1.5 MB members: one small request per header, never the members' data."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for i in range(8):
            payload = rand(1_500_000 + i, i)
            info = tarfile.TarInfo(f"big-ünïcode-{i}.bin")  # PAX header per member
            info.size = len(payload)
            t.addfile(info, io.BytesIO(payload))
    data = buf.getvalue()
    with TarIndex(serve(nginx, data, ".tar"), prefetch_bytes=0) as index:
        assert len(index.members()) == 8
        # The open, the first read-ahead window (64 KiB: sizes are unknown yet), then one
        # request per remaining header (with its PAX records), and the end-of-archive block.
        assert index.stats.requests <= 1 + 1 + 8
        assert index.stats.bytes_fetched < 64 * 1024 + 9 * 1536 + 100
        before = index.stats.requests
        assert index.read("big-ünïcode-3.bin") == rand(1_500_003, 3)
        assert index.stats.requests == before + 1


def write_tar_header(name: str, size_field: bytes, kind: bytes = b"0") -> bytes:
    """A GNU tar header written by hand, for what tarfile writes only past 8 GiB."""
    block = bytearray(512)
    block[0 : len(name)] = name.encode()
    block[100:108] = b"0000644\0"
    block[108:116] = b"0000000\0"
    block[116:124] = b"0000000\0"
    block[124:136] = size_field
    block[136:148] = b"14544212140\0"
    block[156:157] = kind
    block[257:265] = b"ustar  \0"
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def base256(n: int, width: int = 12) -> bytes:
    return b"\x80" + n.to_bytes(width - 1, "big")


def test_tar_base256_size(nginx: Nginx) -> None:
    payload = rand(5000, 4)
    tail = python_tar(tarfile.GNU_FORMAT)
    data = write_tar_header("base256.bin", base256(len(payload))) + payload
    data += bytes(-len(payload) % 512) + tail
    with TarIndex(serve(nginx, data, ".tar")) as index:
        first = index.members()[0]
        assert (first.name, first.size, first.data_range) == ("base256.bin", 5000, (512, 5512))
        assert index.read(first) == payload
        assert index.read("short.txt") == b"short"
    # tarfile agrees on the layout.
    ref = tarfile.open(fileobj=io.BytesIO(data))
    assert ref.getmembers()[0].size == 5000


def first_pax(data: bytes) -> int:
    return next(at for at in range(0, len(data), 512) if data[at + 156 : at + 157] == b"x")


def test_tar_malformed_inputs() -> None:
    good = python_tar(tarfile.PAX_FORMAT)
    bad_checksum = bytearray(good)
    bad_checksum[10] ^= 0x01
    huge = write_tar_header("huge.bin", base256(2**40)) + bytes(2048)
    bad_pax = bytearray(good)
    pax_at = good.index(b"path=")
    bad_pax[pax_at - 3 : pax_at - 1] = b"zz"  # the record length is no longer a number
    # The header checksum of the PAX header does not cover its records: still parsed.
    cases = {
        "bad checksum": bytes(bad_checksum),
        "past the end": huge,
        "cut in a header": good[:700],
        "cut in data": good[: 512 + 100],
        "octal garbage": write_tar_header("x", b"9999\0\0\0\0\0\0\0\0"),
        "bad pax record": bytes(bad_pax),
        "pax without member": good[: first_pax(good) + 1024] + bytes(1024),
    }
    for label, blob in cases.items():
        with pytest.raises(FormatError):
            TarIndex(BytesSource(blob))
            pytest.fail(label)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_tar_fuzz_only_format_errors(data: st.DataObject) -> None:
    blob = bytearray(FUZZ_TAR)
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(blob) - 1))
        blob[pos] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        # Keep headers' checksums right, so that the parser gets past them.
        for at in range(0, len(blob) - 511, 512):
            header = blob[at : at + 512]
            if header[257:262] == b"ustar":
                header[148:156] = b" " * 8
                blob[at + 148 : at + 156] = b"%06o\0 " % sum(header)
    try:
        index = TarIndex(BytesSource(bytes(blob[: data.draw(st.integers(0, len(blob)))])))
        index.read_many([m for m in index.members() if not m.sparse])
    except FormatError:
        pass


FUZZ_TAR = python_tar(tarfile.PAX_FORMAT)[:6144] + bytes(1024)


# -- png ----------------------------------------------------------------------------------


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def make_png(width: int, height: int, *, idat: int = 8192, seed: int = 0) -> bytes:
    """An RGB 8-bit PNG of random pixels, IDAT split every ``idat`` bytes (libpng's default
    is 8 KiB), with a tEXt chunk before the data."""
    rng = random.Random(seed)
    raw = b"".join(b"\0" + rng.randbytes(width * 3) for _ in range(height))
    compressed = zlib.compress(raw, 6)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    out = [SIGNATURE, png_chunk(b"IHDR", ihdr), png_chunk(b"tEXt", b"Comment\0made by a test")]
    out += [png_chunk(b"IDAT", compressed[i : i + idat]) for i in range(0, len(compressed), idat)]
    out.append(png_chunk(b"IEND", b""))
    return b"".join(out)


def idat_pixels(data: bytes) -> bytes:
    """The PNG's image data, inflated: proof that make_png writes a decodable image."""
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        if kind == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    return zlib.decompress(idat)


def test_png_small_is_one_request(nginx: Nginx) -> None:
    data = make_png(200, 150)
    assert len(idat_pixels(data)) == 150 * (1 + 200 * 3)
    # START's own size is 64 KiB (a header's worth); this 90 KB image fits a 1 MiB prefetch.
    with rangeio.open(
        serve(nginx, data, ".png"), prefetch_direction="START", prefetch_bytes=1 << 20
    ) as f:
        info = png_chunks(f)
        assert f.stats.requests == 1
    h = info.header
    assert (h.width, h.height, h.bit_depth, h.color_type, h.interlace) == (200, 150, 8, 2, 0)
    kinds = [c.type for c in info.chunks]
    assert kinds[:2] == ["IHDR", "tEXt"] and kinds[-1] == "IEND"
    assert set(kinds[2:-1]) == {"IDAT"} and len(kinds) > 10
    assert all(c.crc_ok for c in info.chunks)
    assert info.chunks[-1].end == len(data)
    # By URL: the same chunks.
    assert png_chunks(nginx.url(Path(f.url).name)).chunks == info.chunks


def test_png_big_chunks_are_skipped(nginx: Nginx) -> None:
    """A 3.5 MB PNG in 1 MiB IDATs: a few small requests, the pixel data never fetched."""
    data = make_png(1100, 1100, idat=MiB, seed=1)
    assert len(data) > 3 * MiB
    with rangeio.open(serve(nginx, data, ".png"), prefetch_bytes=0) as f:
        info = png_chunks(f)
        idats = info.find("IDAT")
        assert len(idats) == 4
        assert f.stats.requests <= 1 + 1 + len(idats)
        assert f.stats.bytes_fetched < 64 * 1024 + 5 * 64
    assert info.chunks[0].crc_ok is True
    assert info.chunks[1].crc_ok is True  # tEXt came with the first read-ahead
    assert all(c.crc_ok is None for c in idats[1:])
    assert info.chunks[-1].type == "IEND" and info.chunks[-1].crc_ok is True


def test_png_crc_and_structure_errors() -> None:
    good = make_png(20, 20)
    text_at = good.index(b"tEXt")
    bad_text = bytearray(good)
    bad_text[text_at + 6] ^= 0xFF
    info = png_chunks(BytesSource(bytes(bad_text)))
    assert [c.crc_ok for c in info.chunks[:3]] == [True, False, True]
    bad_ihdr = bytearray(good)
    bad_ihdr[20] ^= 0x01
    bad_depth = bytearray(good)
    bad_depth[8 + 8 + 8] = 3  # bit depth 3 is not a PNG bit depth
    bad_depth[29:33] = struct.pack(">I", zlib.crc32(bytes(bad_depth[12:29])))
    cases = {
        "IHDR CRC": bytes(bad_ihdr),
        "bad depth": bytes(bad_depth),
        "no IEND": good[:-12],
        "not a PNG": b"GIF89a" + good[6:],
        "first chunk not IHDR": SIGNATURE + good[good.index(b"tEXt") - 4 :],
        "bad type": good[:37] + b"t3Xt" + good[41:],
        "empty": b"",
    }
    for label, blob in cases.items():
        with pytest.raises(FormatError):
            png_chunks(BytesSource(blob))
            pytest.fail(label)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=64), st.integers(0, 400), st.integers(0, 2000))
def test_png_fuzz_only_format_errors(patch: bytes, at: int, cut: int) -> None:
    blob = bytearray(FUZZ_PNG[:cut] if cut < len(FUZZ_PNG) else FUZZ_PNG)
    blob[at : at + len(patch)] = patch
    try:
        png_chunks(BytesSource(bytes(blob)))
    except FormatError:
        pass


FUZZ_PNG = make_png(8, 8, idat=40)


# -- parquet ------------------------------------------------------------------------------


def parquet_bytes(rows: int, *, row_group_size: int, columns: int = 3) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(rows)
    fields: dict[str, Any] = {
        "id": pa.array(range(rows), pa.int64()),
        "value": pa.array([rng.random() for _ in range(rows)], pa.float64()),
        "name": pa.array([f"row-{rng.randrange(50)}" for _ in range(rows)]),  # dictionary
    }
    for i in range(columns - 3):
        fields[f"extra_{i}"] = pa.array([i] * rows, pa.int32())
    buf = io.BytesIO()
    pq.write_table(pa.table(fields), buf, row_group_size=row_group_size)
    return buf.getvalue()


def test_parquet_plan_and_read(nginx: Nginx) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    from rangeio.formats.parquet import ParquetPlan

    data = parquet_bytes(400_000, row_group_size=100_000)
    assert len(data) > 3 * MiB
    reference = pq.read_table(io.BytesIO(data))
    with ParquetPlan(serve(nginx, data, ".parquet")) as plan:
        assert plan.stats.requests == 1  # the footer came with the open
        assert plan.num_row_groups == 4 and plan.num_rows == 400_000
        assert plan.column_paths() == ["id", "value", "name"]
        ranges = plan.column_chunk_ranges([1], ["value", "name"])
        meta = pq.read_metadata(io.BytesIO(data)).row_group(1)
        value, name = meta.column(1), meta.column(2)
        # pyarrow tries a dictionary for every column (then falls back to plain pages).
        for (start, stop), chunk in zip(ranges, [value, name]):
            assert chunk.has_dictionary_page
            assert start == chunk.dictionary_page_offset < chunk.data_page_offset
            assert stop == start + chunk.total_compressed_size
        before = plan.stats.bytes_fetched
        table = plan.read_columns(1, ["value", "name"])
        assert plan.stats.requests == 2
        assert table.equals(reference.slice(100_000, 100_000).select(["value", "name"]))
        wanted = sum(stop - start for start, stop in ranges)
        assert wanted <= plan.stats.bytes_fetched - before <= wanted + 4096
        # Every column of every row group: ranges that tile the data section.
        everything = plan.column_chunk_ranges()
        assert len(everything) == 12 and everything[0][0] == 4
        assert plan.read_columns(3).equals(reference.slice(300_000))


def test_parquet_big_footer_costs_one_more_request(nginx: Nginx) -> None:
    pytest.importorskip("pyarrow")
    from rangeio.formats.parquet import ParquetPlan

    data = parquet_bytes(2_000, row_group_size=100, columns=60)
    footer = struct.unpack("<I", data[-8:-4])[0]
    assert footer > 100_000
    with rangeio.open(serve(nginx, data, ".parquet"), prefetch_bytes=16 * 1024) as f:
        plan = ParquetPlan(f)
        assert f.stats.requests == 2
        assert f.stats.bytes_fetched == footer + 8
        assert plan.num_row_groups == 20 and len(plan.column_paths()) == 60


def test_parquet_suffix_refused_and_errors(fault_server: FaultServer) -> None:
    pytest.importorskip("pyarrow")
    from rangeio.formats.parquet import ParquetPlan

    data = parquet_bytes(50_000, row_group_size=10_000)
    fault_server.add_file("/t.parquet", data)
    fault_server.add_file("/not.parquet", rand(10_000))
    fault_server.faults = Faults(suffix_501=True)
    with ParquetPlan(fault_server.url("/t.parquet")) as plan:
        assert plan.num_rows == 50_000
    with pytest.raises(FormatError, match="PAR1"):
        ParquetPlan(fault_server.url("/not.parquet"))
    cut = data[:-8] + struct.pack("<I", len(data)) + b"PAR1"
    with pytest.raises(FormatError, match="exceeds"):
        ParquetPlan(BytesSource(cut))
    garbage = rand(500) + struct.pack("<I", 400) + b"PAR1"
    with pytest.raises(FormatError, match="cannot be parsed"):
        ParquetPlan(BytesSource(garbage))


def test_parquet_without_pyarrow_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from rangeio.formats.parquet import ParquetPlan

    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ImportError, match=r"pip install 'rangeio\[parquet\]'"):
        ParquetPlan(BytesSource(b""))


# -- conda --------------------------------------------------------------------------------


def make_conda(pkg_bytes: int) -> tuple[bytes, dict[str, bytes]]:
    """A .conda as conda's tools write it: stored zip, metadata.json first, then the payload
    tarball, the info tarball last (next to the directory)."""
    zstandard = pytest.importorskip("zstandard")

    def tar_zst(files: dict[str, bytes]) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
            for name, payload in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(payload)
                t.addfile(info, io.BytesIO(payload))
        return zstandard.ZstdCompressor(level=3).compress(buf.getvalue())

    index = {"name": "demo", "version": "1.0", "build": "0", "depends": ["python >=3.10"]}
    info_files = {
        "info/index.json": json.dumps(index).encode(),
        "info/paths.json": json.dumps({"paths": [], "paths_version": 1}).encode(),
        "info/about.json": b'{"summary": "a demo"}',
        "info/files": b"lib/demo.py\n",
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("metadata.json", json.dumps({"conda_pkg_format_version": 2}))
        z.writestr("pkg-demo-1.0-0.tar.zst", tar_zst({"lib/demo.py": rand(pkg_bytes, 9)}))
        z.writestr("info-demo-1.0-0.tar.zst", tar_zst(info_files))
    return buf.getvalue(), info_files


def test_conda_info_skips_the_payload(nginx: Nginx) -> None:
    data, info_files = make_conda(3 * MiB)
    url = serve(nginx, data, ".conda")
    pkg = zipfile.ZipFile(io.BytesIO(data)).getinfo("pkg-demo-1.0-0.tar.zst")
    for prefetch in (1 * MiB, 32 * 1024):
        with rangeio.open(url, prefetch_bytes=prefetch) as f:
            info = conda_info(f)
            # The open (directory and info tarball), then metadata.json at the start.
            assert f.stats.requests == 2
            assert f.stats.bytes_fetched < prefetch + 1024
            assert f.stats.bytes_fetched < pkg.compress_size / 2
        assert info.metadata == {"conda_pkg_format_version": 2}
        assert info.info_name == "info-demo-1.0-0.tar.zst"
        assert info.files == info_files
        assert [m.name for m in info.members] == list(info_files)
        assert info.index["name"] == "demo"
    assert conda_info(url).index["version"] == "1.0"


def test_conda_errors(nginx: Nginx, monkeypatch: pytest.MonkeyPatch) -> None:
    data, _ = make_conda(1000)
    not_conda = python_zip(zipfile.ZIP_STORED, big=100)
    with pytest.raises(FormatError, match="metadata.json"):
        conda_info(serve(nginx, not_conda, ".conda"))
    url = serve(nginx, data, ".conda")
    monkeypatch.setitem(sys.modules, "zstandard", None)
    monkeypatch.setitem(sys.modules, "compression", None)
    with pytest.raises(ImportError, match=r"pip install 'rangeio\[conda\]'"):
        conda_info(url)


def test_sources_must_be_urls_or_files() -> None:
    with pytest.raises(TypeError):
        ZipStream(BytesSource(b""), prefetch_bytes=0)
    with pytest.raises(TypeError):
        TarIndex(object())  # type: ignore[arg-type]


def test_module_layout() -> None:
    import rangeio.formats as formats

    assert issubclass(FormatError, rangeio.RangeioError)
    assert issubclass(FormatError, ValueError)
    assert formats.FormatError is FormatError and formats.ZipStream is ZipStream
    # The optional extras are imported on first use, not with the package.
    code = (
        "import sys, rangeio.formats; print('pyarrow' in sys.modules, 'zstandard' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# -- range-streams' codecs, at parity -------------------------------------------------------


def test_zip_end_and_central_records_match_zipfile(nginx: Nginx) -> None:
    data = python_zip(zipfile.ZIP_DEFLATED)
    ref = zipfile.ZipFile(io.BytesIO(data))
    with ZipStream(serve(nginx, data, ".zip")) as z:
        end = z.end_record
        assert end.offset == data.rindex(b"PK\x05\x06") and end.zip64 is None
        assert (end.entries, end.entries_on_disk) == (len(ref.infolist()),) * 2
        assert end.directory_offset == ref.start_dir and end.comment == ref.comment
        assert end.directory_size == end.offset - ref.start_dir
        assert z.directory_range == (ref.start_dir, end.offset) and z.prepended == 0
        for m, info in zip(z.members(), ref.infolist()):
            assert data[m.central_offset : m.central_offset + 4] == b"PK\x01\x02"
            assert (m.create_version, m.create_system, m.extract_version) == (
                info.create_version,
                info.create_system,
                info.extract_version,
            )
            assert m.date_time == info.date_time
            assert (m.internal_attr, m.external_attr) == (info.internal_attr, info.external_attr)
            assert (m.extra, m.comment) == (info.extra, info.comment)
        assert z.stats.requests == 1  # all of it from the open


def test_zip64_end_records() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for i in range(70_000):  # more entries than a 16-bit count holds: zip64 end records
            z.writestr(zipfile.ZipInfo(f"{i}"), b"")
    data = buf.getvalue()
    z64 = ZipStream(BytesSource(data))
    end = z64.end_record
    assert end.entries == 0xFFFF and end.zip64 is not None
    assert end.zip64.entries == 70_000 and end.zip64.offset == data.rindex(b"PK\x06\x06")
    assert z64.directory_range[1] == end.zip64.offset


def test_zip_file_range_follows_the_local_header(nginx: Nginx) -> None:
    """The local header's extra field may differ from the central one (here: zip64 sizes in
    the local header only), so a member's data span comes from its local header: one small
    request for the headers not read yet, none once read; the span can go to a RangeStream."""
    buf = io.BytesIO()
    big = rand(1536 * 1024, 5)
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        with z.open("big.bin", "w", force_zip64=True) as f:
            f.write(big)
        z.writestr("small.txt", text(5000, 6))
        z.writestr(zipfile.ZipInfo("stored.bin"), b"stored bytes", compress_type=zipfile.ZIP_STORED)
    data = buf.getvalue()
    ref = zipfile.ZipFile(io.BytesIO(data))
    url = serve(nginx, data, ".zip")
    with ZipStream(url) as z:
        info = ref.getinfo("big.bin")
        assert z.member("big.bin").extra_length == 0  # the central record has no zip64 extra
        before = (z.stats.requests, z.stats.bytes_fetched)
        start, stop = z.file_range("big.bin")
        assert z.stats.requests == before[0] + 1  # its local header, nothing more
        assert z.stats.bytes_fetched - before[1] < 100
        local_extra = struct.unpack_from("<H", data, info.header_offset + 28)[0]
        assert local_extra == 20  # zipfile wrote the zip64 extra locally
        assert start == info.header_offset + 30 + len("big.bin") + 20
        assert stop - start == info.compress_size
        assert zlib.decompress(data[start:stop], -15) == big
        assert z.file_range("big.bin") == (start, stop)
        assert z.stats.requests == before[0] + 1  # known now: no request
        spans = z.file_ranges(["small.txt", "stored.bin"])  # near the end: the open's prefetch
        assert z.stats.requests == before[0] + 1
        assert data[spans[1][0] : spans[1][1]] == b"stored bytes"
        assert zlib.decompress(data[slice(*spans[0])], -15) == ref.read("small.txt")
    with rangeio.RangeStream(url) as rs:
        rs.add((start, start + 1000), name="big")
        assert rs.read() == data[start : start + 1000]


def test_tar_padded_size(nginx: Nginx) -> None:
    data = python_tar(tarfile.GNU_FORMAT)
    ref = tarfile.open(fileobj=io.BytesIO(data)).getmembers()
    with TarIndex(serve(nginx, data, ".tar")) as index:
        members = index.members()
    for m, t, following in zip(members, ref, [*ref[1:], None]):
        assert m.padded_size % 512 == 0 and 0 <= m.padded_size - m.size < 512
        # The next header starts right after the padded data (the end blocks, for the last).
        next_header = (
            following.offset
            if following is not None
            else data.index(bytes(1024), m.data_range[0] + m.size)
        )
        assert m.data_range[0] + m.padded_size == next_header
        assert m.padded_size == -(-t.size // 512) * 512 if t.isfile() else m.padded_size == 0
    assert {m.padded_size for m in members if m.is_file} >= {0, 512, 3072}


PNG_MODES = {  # PIL mode: (colour type, channels)
    "L": (0, 1),
    "RGB": (2, 3),
    "P": (3, 1),
    "LA": (4, 2),
    "RGBA": (6, 4),
}


def filter_row(kind: int, row: bytes, above: bytes, unit: int) -> bytes:
    """PNG 9.2's filters, forward (the test's own encoder; rangeio only reverses them)."""
    out = bytearray()
    for i, x in enumerate(row):
        a = row[i - unit] if i >= unit else 0
        b = above[i]
        c = above[i - unit] if i >= unit else 0
        if kind == 0:
            pred = 0
        elif kind == 1:
            pred = a
        elif kind == 2:
            pred = b
        elif kind == 3:
            pred = (a + b) // 2
        else:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
        out.append((x - pred) & 0xFF)
    return bytes([kind]) + bytes(out)


def pixels(mode: str, width: int, height: int, seed: int = 0) -> Any:
    """Gradients with noise: every filter has something to predict."""
    import numpy as np

    rng = np.random.default_rng(seed)
    channels = PNG_MODES[mode][1]
    y, x = np.mgrid[0:height, 0:width]
    base = (x * 3 + y * 5)[..., None] + np.arange(channels) * 40
    noisy = base + rng.integers(0, 12, (height, width, channels))
    arr = (noisy % 256).astype(np.uint8)
    return arr[..., 0] if channels == 1 else arr


def filtered_png(mode: str, arr: Any, *, idat: int = 700) -> bytes:
    """A PNG whose rows use filter types 0, 1, 2, 3, 4 in turn, its IDAT split in chunks."""
    colour, channels = PNG_MODES[mode]
    height, width = arr.shape[:2]
    stride = width * channels
    raw, above = [], bytes(stride)
    for y in range(height):
        row = arr[y].tobytes()
        raw.append(filter_row(y % 5, row, above, channels))
        above = row
    compressed = zlib.compress(b"".join(raw), 9)
    out = [
        SIGNATURE,
        png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)),
    ]
    if mode == "P":
        out.append(png_chunk(b"PLTE", bytes(range(256)) * 3))
    out += [png_chunk(b"IDAT", compressed[i : i + idat]) for i in range(0, len(compressed), idat)]
    out.append(png_chunk(b"IEND", b""))
    return b"".join(out)


@pytest.mark.parametrize("mode", list(PNG_MODES))
def test_png_rows_every_filter_match_pil(nginx: Nginx, mode: str) -> None:
    import numpy as np
    from PIL import Image

    from rangeio.formats.png import PngImage

    arr = pixels(mode, 37, 23, seed=len(mode))
    data = filtered_png(mode, arr)
    reference = np.asarray(Image.open(io.BytesIO(data)))
    assert (reference == arr).all()  # PIL agrees the test's encoder wrote this image
    assert {row[0] for row in _raw_rows(data, 1 + arr[0].nbytes)} == {0, 1, 2, 3, 4}
    with PngImage(serve(nginx, data, ".png")) as image:
        assert image.channel_count == PNG_MODES[mode][1]
        assert len(image.info.find("IDAT")) > 1
        rows = list(image.rows())
    assert rows == [reference[y].tobytes() for y in range(arr.shape[0])]


def _raw_rows(data: bytes, line: int) -> list[bytes]:
    raw = idat_pixels(data)
    return [raw[i : i + line] for i in range(0, len(raw), line)]


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
def test_png_rows_of_pil_optimized_files(nginx: Nginx, mode: str) -> None:
    import numpy as np
    from PIL import Image

    from rangeio.formats.png import PngImage

    buf = io.BytesIO()
    Image.fromarray(pixels(mode, 64, 40, seed=3)).save(buf, "PNG", optimize=True)
    data = buf.getvalue()
    reference = np.asarray(Image.open(io.BytesIO(data)))
    with PngImage(serve(nginx, data, ".png")) as image:
        assert [r for r in image.rows()] == [reference[y].tobytes() for y in range(40)]


def test_png_first_rows_cost_only_their_bytes(nginx: Nginx) -> None:
    """A 4 MB image in 1 MiB IDATs: the walk skips the pixel data, and the first 10 rows
    fetch little more than their own compressed bytes."""
    import numpy as np
    from PIL import Image

    from rangeio.formats.png import PngImage

    data = make_png(1200, 1200, idat=MiB, seed=4)
    with PngImage(serve(nginx, data, ".png"), prefetch_bytes=0) as image:
        walked = image.stats.bytes_fetched
        rows = list(image.rows(10))
        fetched = image.stats.bytes_fetched - walked
        assert image.header.channel_count == 3
    reference = np.asarray(Image.open(io.BytesIO(data)))
    assert rows == [reference[y].tobytes() for y in range(10)]
    assert fetched < len(data) // 8, fetched


def test_png_rows_refuse_corrupt_data() -> None:
    from rangeio.formats.png import PngImage

    arr = pixels("RGB", 10, 10)
    good = filtered_png("RGB", arr, idat=50)
    assert len(list(PngImage(BytesSource(good)).rows())) == 10

    def rebuilt(raw: bytes, *, interlace: int = 0, height: int = 10) -> bytes:
        ihdr = struct.pack(">IIBBBBB", 10, height, 8, 2, 0, 0, interlace)
        return b"".join(
            [SIGNATURE, png_chunk(b"IHDR", ihdr), png_chunk(b"IDAT", raw), png_chunk(b"IEND", b"")]
        )

    pixels_raw = idat_pixels(good)
    bad_filter = bytearray(pixels_raw)
    bad_filter[31 * 3] = 7  # row 3's filter type
    idat_at = good.index(b"IDAT")
    bad_crc = bytearray(good)
    bad_crc[idat_at + 10] ^= 0xFF
    cases = {
        "filter type 7": rebuilt(zlib.compress(bytes(bad_filter))),
        "cut zlib stream": rebuilt(zlib.compress(pixels_raw)[:-30]),
        "rows short": rebuilt(zlib.compress(pixels_raw[:-31])),
        "rows over": rebuilt(zlib.compress(pixels_raw + pixels_raw[:31])),
        "not zlib": rebuilt(b"\x00" * 200),
        "IDAT CRC": bytes(bad_crc),
        "interlaced": rebuilt(zlib.compress(pixels_raw), interlace=1),
    }
    for label, blob in cases.items():
        with pytest.raises(FormatError):
            list(PngImage(BytesSource(blob)).rows())
            pytest.fail(label)
    # Rows before a fault are still handed out.
    assert len(list(PngImage(BytesSource(cases["filter type 7"])).rows(3))) == 3


def test_conda_payload_lists_the_pkg_tarball(nginx: Nginx) -> None:
    from rangeio.formats.conda import conda_payload

    zstandard = pytest.importorskip("zstandard")
    files = {f"lib/python3/site-packages/m{i}.py": rand(i * 900 + 1, i) for i in range(40)}
    files["share/" + "long-" * 40 + "name.txt"] = b"a name over 100 bytes"
    files["share/big.bin"] = rand(2 * MiB, 99)
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, payload in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            info.mode = 0o755
            t.addfile(info, io.BytesIO(payload))
        link = tarfile.TarInfo("bin/demo")
        link.type, link.linkname = tarfile.SYMTYPE, "../lib/python3/site-packages/m1.py"
        t.addfile(link)
    pkg = zstandard.ZstdCompressor(level=3).compress(tar.getvalue())
    conda, _ = make_conda(10)
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(conda)) as src, zipfile.ZipFile(buf, "w") as z:
        z.writestr("metadata.json", src.read("metadata.json"))
        z.writestr("pkg-demo-1.0-0.tar.zst", pkg)
        z.writestr("info-demo-1.0-0.tar.zst", src.read("info-demo-1.0-0.tar.zst"))
    data = buf.getvalue()
    ref = tarfile.open(fileobj=io.BytesIO(tar.getvalue())).getmembers()
    with rangeio.open(serve(nginx, data, ".conda")) as f:
        members = conda_payload(f)
        # The payload is streamed once: its compressed bytes and little more, few requests.
        assert f.stats.bytes_fetched < len(data) + 256 * 1024
        # Today 6: the open, the member's first step, then the sequential ramp to a stream.
        assert f.stats.requests <= 8, f.stats.requests
    assert [m.name for m in members] == [t.name for t in ref]
    assert [(m.size, m.mode, m.linkname) for m in members] == [
        (t.size, t.mode, t.linkname) for t in ref
    ]
    assert [m.data_range[0] for m in members if m.is_file] == [
        t.offset_data for t in ref if t.isfile()
    ]
    # A corrupt payload is a FormatError (the stored member's CRC-32, or zstd's own checks).
    broken = bytearray(data)
    at = data.index(pkg) + len(pkg) // 2
    broken[at : at + 8] = b"\xff" * 8
    with pytest.raises(FormatError):
        conda_payload(BytesSource(bytes(broken)))


def test_png_rows_of_16_bit_and_1_bit_images(nginx: Nginx) -> None:
    """Samples wider than a byte (big-endian, filter unit 2) and narrower (packed bits)."""
    import numpy as np
    from PIL import Image

    from rangeio.formats.png import PngImage

    wide = (pixels("L", 30, 12, seed=8).astype(np.uint16) * 257 + 3).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(wide).save(buf, "PNG")
    with PngImage(serve(nginx, buf.getvalue(), ".png")) as image:
        assert (image.header.bit_depth, image.header.filter_unit) == (16, 2)
        rows = list(image.rows())
    reference = np.asarray(Image.open(io.BytesIO(buf.getvalue())))
    assert rows == [reference[y].astype(">u2").tobytes() for y in range(12)]

    bits = pixels("L", 29, 9, seed=9) > 128
    buf = io.BytesIO()
    Image.fromarray(bits).save(buf, "PNG")
    with PngImage(serve(nginx, buf.getvalue(), ".png")) as image:
        assert (image.header.bit_depth, image.header.row_bytes) == (1, 4)
        rows = list(image.rows())
    reference = np.asarray(Image.open(io.BytesIO(buf.getvalue())))
    assert rows == [np.packbits(reference[y]).tobytes() for y in range(9)]


FUZZ_ROWS_PNG = filtered_png("RGB", pixels("RGB", 6, 5), idat=30)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=32), st.integers(0, len(FUZZ_ROWS_PNG)), st.integers(0, 600))
def test_png_rows_fuzz_only_format_errors(patch: bytes, at: int, cut: int) -> None:
    from rangeio.formats.png import PngImage

    blob = bytearray(FUZZ_ROWS_PNG[:cut] if cut < len(FUZZ_ROWS_PNG) else FUZZ_ROWS_PNG)
    blob[at : at + len(patch)] = patch
    try:
        rows = list(PngImage(BytesSource(bytes(blob))).rows())
    except FormatError:
        return
    assert all(len(r) == 18 for r in rows)
