"""The files the benchmark serves, generated deterministically, and the loopback servers."""

from __future__ import annotations

import io
import random
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from proxy import ProxyProcess

REPO = Path(__file__).resolve().parent.parent
SEED = 20240601
MiB = 1024 * 1024
KiB = 1024


@dataclass(frozen=True)
class Sizes:
    """How big the generated files are; ``--quick`` shrinks everything."""

    big_bytes: int = 64 * MiB
    zip_members: int = 5000
    parquet_row_groups: int = 8
    parquet_rows_per_group: int = 125_000
    random_reads: int = 200
    random_read_bytes: int = 4 * KiB
    sequential_piece: int = 1 * MiB
    sequential_repeats: int = 7
    read64_calls: int = 1_000_000
    read64_seconds: float = 3.0  # time cap for slow libraries

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            big_bytes=8 * MiB,
            zip_members=1000,
            parquet_row_groups=4,
            parquet_rows_per_group=25_000,
            random_reads=50,
            sequential_repeats=1,
            read64_calls=200_000,
            read64_seconds=0.5,
        )


@dataclass
class ZipFixture:
    data: bytes
    names: list[str]
    member: str
    member_data: bytes


@dataclass
class ParquetFixture:
    data: bytes
    row_group: int
    columns: list[str]
    expected: object  # pyarrow.Table of that row group's columns
    num_row_groups: int


@dataclass
class Fixtures:
    sizes: Sizes
    big: bytes = b""
    zip: ZipFixture | None = None
    parquet: ParquetFixture | None = None
    urls: dict[str, str] = field(default_factory=dict)


def make_big(size: int) -> bytes:
    return random.Random(SEED).randbytes(size)


def make_zip(members: int) -> ZipFixture:
    """Many small deflated members (1-3 KiB of hex text each), like a dataset of small files."""
    rng = random.Random(SEED + 1)
    buf = io.BytesIO()
    names: list[str] = []
    contents: dict[str, bytes] = {}
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for i in range(members):
            name = f"data/{i // 100:03d}/member-{i:05d}.txt"
            body = rng.randbytes(rng.randint(512, 1536)).hex().encode()
            zf.writestr(name, body)
            names.append(name)
            contents[name] = body
    # A member a third of the way in: far from the central directory at the end.
    member = names[members // 3]
    return ZipFixture(buf.getvalue(), names, member, contents[member])


def make_parquet(row_groups: int, rows_per_group: int) -> ParquetFixture:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(SEED + 2)
    n = row_groups * rows_per_group
    table = pa.table(
        {
            "id": pa.array(range(n), type=pa.int64()),
            "value": pa.array([rng.random() for _ in range(n)], type=pa.float64()),
            "label": pa.array([f"label-{rng.randrange(1 << 30):x}" for _ in range(n)]),
            "count": pa.array([rng.randrange(1 << 31) for _ in range(n)], type=pa.int32()),
        }
    )
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=rows_per_group)
    row_group = row_groups // 3  # neither the first nor near the footer
    columns = ["id", "value"]
    expected = table.slice(row_group * rows_per_group, rows_per_group).select(columns)
    return ParquetFixture(buf.getvalue(), row_group, columns, expected, row_groups)


def load_nginx_class() -> type:
    """tests/servers/nginx.py, imported from the repo's tests folder."""
    tests = str(REPO / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    from servers.nginx import Nginx

    return Nginx


class Servers:
    """nginx on loopback serving the fixtures, behind the delaying proxy."""

    def __init__(self, fixtures: Fixtures, delay_ms: float) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="rangeio-bench-")
        files = {"big.bin": fixtures.big}
        if fixtures.zip is not None:
            files["many.zip"] = fixtures.zip.data
        if fixtures.parquet is not None:
            files["table.parquet"] = fixtures.parquet.data
        try:
            self.nginx = load_nginx_class()(Path(self.tmp.name))
            for name, data in files.items():
                self.nginx.add_file(name, data)
            self.nginx.start()
        except BaseException:
            self.tmp.cleanup()
            raise
        try:
            self.proxy = ProxyProcess(self.nginx.port, delay_ms)
        except BaseException:
            self.nginx.stop()
            self.tmp.cleanup()
            raise
        for name in files:
            fixtures.urls[name] = f"{self.proxy.origin}/{name}"

    def close(self) -> None:
        try:
            self.proxy.close()
        finally:
            self.nginx.stop()
            self.tmp.cleanup()


@contextmanager
def served_behind_proxy(
    files: dict[str, bytes], delay_ms: float, *, prefix: str = "rangeio-bench-"
) -> Iterator[ProxyProcess]:
    """nginx serving ``files`` from a temp folder, behind the delaying, counting proxy; both
    stopped (and the folder removed) on exit. URLs are ``f"{proxy.origin}/{name}"``."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        nginx = load_nginx_class()(Path(tmp))
        for name, data in files.items():
            (nginx.www / name).write_bytes(data)
        nginx.start()
        try:
            proxy = ProxyProcess(nginx.port, delay_ms)
            try:
                yield proxy
            finally:
                proxy.close()
        finally:
            nginx.stop()
