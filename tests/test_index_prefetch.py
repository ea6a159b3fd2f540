"""The open's END prefetch fits the file: a zip's directory and a Parquet footer, counted at the server."""

from __future__ import annotations

import io
import random
import struct
import zipfile
from typing import Any

import pytest

from rangeio._core.prefetch import ZIP_END_PREFETCH
from rangeio.testing import FaultServer
from tests.adapters import Opener


class Seekable:
    """The file as zipfile and pyarrow take it (the async facade has no ``seekable``)."""

    def __init__(self, f: Any) -> None:
        self._f = f
        self.closed = False

    def read(self, n: int = -1) -> bytes:
        return self._f.read(n)  # type: ignore[no-any-return]

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.seek(offset, whence)  # type: ignore[no-any-return]

    def tell(self) -> int:
        return self._f.tell()  # type: ignore[no-any-return]

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True


def ranges(server: FaultServer, path: str) -> list[str | None]:
    return [r.range for r in server.requests if r.path == path]


def wheel(modules: int) -> tuple[bytes, bytes]:
    """A wheel as ``wheel`` writes it (dist-info last), and its METADATA."""
    rng = random.Random(12)
    metadata = b"Metadata-Version: 2.1\nName: pkg\nVersion: 1.0\n" + b"Long text. " * 400
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for i in range(modules):
            z.writestr(f"pkg/module_{i:04d}.py", rng.randbytes(rng.randrange(100, 2000)))
        z.writestr("pkg-1.0.dist-info/METADATA", metadata)
        z.writestr("pkg-1.0.dist-info/RECORD", "\n".join(f"pkg/m{i}" for i in range(modules)))
    return buf.getvalue(), metadata


def test_a_wheel_metadata_costs_the_open_the_directory_and_the_member(
    opener: Opener, fault_server: FaultServer
) -> None:
    """600 modules: the directory (~40 KB) is past the 16 KiB suffix. The end record in it says
    where the directory starts; the rest of it is one request, METADATA (just before it) one
    more, and no byte is fetched twice or before the member (fsspec: 5 requests, 1 MiB: 25x
    the bytes)."""
    data, metadata = wheel(600)
    fault_server.add_file("/pkg-1.0-py3-none-any.whl", data)
    with zipfile.ZipFile(io.BytesIO(data)) as ref:
        cd_start = int(ref.start_dir)
        member = ref.getinfo("pkg-1.0.dist-info/METADATA").header_offset
    assert len(data) - cd_start > 2 * ZIP_END_PREFETCH
    tail_start = len(data) - ZIP_END_PREFETCH
    with opener(fault_server.url("/pkg-1.0-py3-none-any.whl")) as f:
        with zipfile.ZipFile(Seekable(f)) as z:  # type: ignore[arg-type]
            assert len(z.namelist()) == 602
            assert ranges(fault_server, "/pkg-1.0-py3-none-any.whl") == [
                f"bytes=-{ZIP_END_PREFETCH}",
                f"bytes={cd_start}-{tail_start - 1}",
            ]
            assert z.read("pkg-1.0.dist-info/METADATA") == metadata
        got = ranges(fault_server, "/pkg-1.0-py3-none-any.whl")
        assert got[2] == f"bytes={member}-" + got[2].split("-")[1]  # type: ignore[union-attr]
        if not opener.is_async:
            # The buffered file reads the local header, name and data in one; the async file
            # has no buffer, so zipfile's 30-byte header read is a request of its own.
            assert len(got) == 3
        # Every byte from the member to the end once, none before it.
        assert f.stats.bytes_fetched == len(data) - member


def test_a_small_zip_is_listed_by_the_open_alone(opener: Opener, fault_server: FaultServer) -> None:
    data, _ = wheel(40)
    fault_server.add_file("/small.whl", data)
    with opener(fault_server.url("/small.whl")) as f, zipfile.ZipFile(Seekable(f)) as z:  # type: ignore[arg-type]
        assert len(z.namelist()) == 42
    assert ranges(fault_server, "/small.whl") == [f"bytes=-{ZIP_END_PREFETCH}"]


def test_a_directory_walked_entry_by_entry_is_fetched_in_one_request(
    opener: Opener, fault_server: FaultServer
) -> None:
    """A reader that parses the directory one 46-byte header at a time (as streaming zip
    readers do) gets all of it with its first read there, not a request per read-ahead."""
    data, _ = wheel(600)
    fault_server.add_file("/walk.zip", data)
    with zipfile.ZipFile(io.BytesIO(data)) as ref:
        cd_start, names = int(ref.start_dir), ref.namelist()
    with opener(fault_server.url("/walk.zip")) as f:
        f.seek(cd_start)
        walked = []
        for _ in names:
            head = f.read(46)
            name_len, extra_len, comment_len = struct.unpack("<HHH", head[28:34])
            walked.append(f.read(name_len).decode())
            f.read(extra_len + comment_len)
        assert walked == names
        assert f.stats.requests == 2
    assert ranges(fault_server, "/walk.zip")[1] == (
        f"bytes={cd_start}-{len(data) - ZIP_END_PREFETCH - 1}"
    )


def parquet(columns: int, rows: int) -> bytes:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rng = random.Random(3)
    table = pa.table({f"c{i:03d}": [rng.random() for _ in range(rows)] for i in range(columns)})
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=max(1, rows // 4))
    return buf.getvalue()


def test_a_parquet_footer_comes_with_the_open(opener: Opener, fault_server: FaultServer) -> None:
    """A 2.4 MB Parquet file: pyarrow reads its schema and row groups from the 1 MiB suffix."""
    pq = pytest.importorskip("pyarrow.parquet")
    data = parquet(3, 100_000)
    assert len(data) > 2 * 1024 * 1024
    fault_server.add_file("/t.parquet", data)
    with opener(fault_server.url("/t.parquet")) as f:
        meta = pq.read_metadata(Seekable(f))
        assert meta.num_rows == 100_000 and meta.num_row_groups == 4
    assert ranges(fault_server, "/t.parquet") == ["bytes=-1048576"]


def test_a_parquet_footer_past_the_prefetch_is_one_more_request(
    opener: Opener, fault_server: FaultServer
) -> None:
    """The footer length in the prefetched tail says where the footer starts: its first read
    (here a reader decoding it 4 KiB at a time) fetches the rest of it whole."""
    pq = pytest.importorskip("pyarrow.parquet")
    data = parquet(300, 40)
    footer = int.from_bytes(data[-8:-4], "little")
    assert footer > 8 * 4096
    fault_server.add_file("/wide.parquet", data)
    with opener(fault_server.url("/wide.parquet"), prefetch_bytes=4096) as f:
        f.seek(-8, io.SEEK_END)
        assert f.read(8)[4:] == b"PAR1"
        f.seek(len(data) - 8 - footer)
        pieces = [f.read(min(4096, len(data) - 8 - f.tell())) for _ in range(footer // 4096 + 1)]
        assert b"".join(pieces) == data[-8 - footer : -8]
        assert pq.read_metadata(Seekable(f)).num_columns == 300
    assert ranges(fault_server, "/wide.parquet") == [
        "bytes=-4096",
        f"bytes={len(data) - 8 - footer}-{len(data) - 4096 - 1}",
    ]
