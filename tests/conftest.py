"""Shared fixtures: the real servers (nginx, the fault server), sample files, and every adapter."""

from __future__ import annotations

import io
import random
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rangeio.testing import FaultServer
from tests.adapters import ALL_ADAPTERS, SYNC_ADAPTERS, Opener, opener_for, sync_client
from tests.servers.nginx import Nginx


def make_bytes(n: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(n)


def make_zip(members: int = 300) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for i in range(members):
            z.writestr(f"dir/member-{i:05d}.txt", f"member {i}\n".encode() * (i % 7 + 1))
    return buf.getvalue()


def make_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for i in range(20):
            payload = make_bytes(1000 + i * 517, seed=i)
            info = tarfile.TarInfo(f"files/f{i}.bin")
            info.size = len(payload)
            t.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def make_parquet() -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 20_000
    table = pa.table(
        {
            "id": pa.array(range(n), pa.int64()),
            "value": pa.array([i * 0.5 for i in range(n)], pa.float64()),
            "name": pa.array([f"row-{i}" for i in range(n)]),
        }
    )
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=5_000)
    return buf.getvalue()


def make_csv() -> bytes:
    lines = ["a,b,c"] + [f"{i},{i * 2},x{i}" for i in range(5000)]
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture(scope="session")
def sample_files() -> dict[str, bytes]:
    return {
        "data.bin": make_bytes(3 * 1024 * 1024 + 123),
        "small.bin": make_bytes(100, seed=2),
        "empty.bin": b"",
        "archive.zip": make_zip(),
        "archive.tar": make_tar(),
        "table.parquet": make_parquet(),
        "table.csv": make_csv(),
    }


@pytest.fixture(scope="session")
def nginx(
    tmp_path_factory: pytest.TempPathFactory, sample_files: dict[str, bytes]
) -> Iterator[Nginx]:
    server = Nginx(Path(tmp_path_factory.mktemp("nginx")))
    for name, data in sample_files.items():
        server.add_file(name, data)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fault_server(sample_files: dict[str, bytes]) -> Iterator[FaultServer]:
    with FaultServer({f"/{k}": v for k, v in sample_files.items()}) as server:
        yield server


@pytest.fixture(params=SYNC_ADAPTERS)
def client(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A client of each sync library; urllib3 means "none given" (rangeio's own pool)."""
    client, close = sync_client(request.param)
    try:
        yield client
    finally:
        close()


@pytest.fixture(params=ALL_ADAPTERS)
def opener(request: pytest.FixtureRequest) -> Iterator[Opener]:
    """Opens files through each adapter, sync and async: ``opener(url, **options)``."""
    yield from opener_for(request.param)
