"""Real readers' access patterns over a real server: request counts, and stats that match the wire."""

from __future__ import annotations

import tarfile
from collections.abc import Iterator

import pytest

import rangeio
from rangeio.testing import FaultServer
from tests.adapters import Opener
from tests.raw_server import RawConnection, RawRequest, raw_server, response_head, serve_range
from tests.servers.tarball import make_member_tar

# fsspec's HTTPFileSystem (5 MiB blocks, its defaults) lists this archive in 15 requests and
# lists it and extracts one member in 16, measured by benchmarks/readers/tar_listing.py.
FSSPEC_LIST_REQUESTS = 15
FSSPEC_EXTRACT_REQUESTS = 16


@pytest.fixture(scope="module")
def member_tar() -> tuple[bytes, dict[str, bytes]]:
    return make_member_tar()


@pytest.fixture
def tar_server(member_tar: tuple[bytes, dict[str, bytes]]) -> Iterator[FaultServer]:
    with FaultServer({"/members.tar": member_tar[0]}) as server:
        yield server


def body_bytes_asked(server: FaultServer, size: int) -> int:
    """The body bytes of every range the server was asked for (it sends each in full: no
    faults are on), from the Range headers it logged."""
    total = 0
    for request in server.requests:
        spec = request.range
        assert spec is not None and spec.startswith("bytes=") and "," not in spec, spec
        first, _, last = spec[len("bytes=") :].partition("-")
        if not first:
            total += min(int(last), size)
        else:
            total += min(int(last) if last else size - 1, size - 1) - int(first) + 1
    return total


def test_a_tar_listing_costs_no_more_requests_than_fsspec(
    opener: Opener, tar_server: FaultServer, member_tar: tuple[bytes, dict[str, bytes]]
) -> None:
    data, contents = member_tar
    names = list(contents)
    one = names[len(names) // 3]
    with opener(tar_server.url("/members.tar")) as f:
        with tarfile.open(fileobj=f) as tar:
            assert tar.getnames() == names
            listed = len(tar_server.requests)
            member = tar.extractfile(one)
            assert member is not None and member.read() == contents[one]
        stats = f.stats
    assert listed <= FSSPEC_LIST_REQUESTS
    assert len(tar_server.requests) <= FSSPEC_EXTRACT_REQUESTS
    assert stats.requests == len(tar_server.requests)
    # Reading through the skips costs the archive's span, and one read-ahead at most past it.
    assert stats.bytes_fetched <= len(data) + 1024 * 1024
    assert stats.bytes_fetched == body_bytes_asked(tar_server, len(data))


def test_a_tar_listing_with_a_small_cache_reads_the_archive_about_once(
    opener: Opener, tar_server: FaultServer, member_tar: tuple[bytes, dict[str, bytes]]
) -> None:
    """The strided read-ahead never outgrows the cache: bytes fetched ahead and evicted before
    they are read would be fetched again for every header."""
    data, contents = member_tar
    with opener(tar_server.url("/members.tar"), cache_bytes=1024 * 1024) as f:
        with tarfile.open(fileobj=f) as tar:
            assert tar.getnames() == list(contents)
        stats = f.stats
    assert stats.bytes_fetched <= len(data) + 2 * 1024 * 1024
    assert stats.requests <= len(data) // (256 * 1024)


def stream_request(server: FaultServer) -> tuple[int, int]:
    """The [start, stop) of the last request the server logged."""
    spec = server.requests[-1].range
    assert spec is not None and spec.startswith("bytes="), spec
    first, _, last = spec[len("bytes=") :].partition("-")
    return int(first), int(last) + 1


def test_a_stream_left_near_its_end_is_drained_and_counted(opener: Opener) -> None:
    """A sequential run crosses stream_after_bytes, then jumps: the stream it opened was bounded
    (not to the next cached byte), the little left of it is read rather than abandoned (the
    connection stays up), and stats count exactly the body bytes the server sent."""
    mib = 1024 * 1024
    data = bytes(range(256)) * (32 * mib // 256)
    with FaultServer({"/f.bin": data}) as server:
        with opener(server.url("/f.bin")) as f:
            f.seek(mib // 2)
            # Past the read-ahead requests (they grow to 2 MiB), into the stream.
            while f.tell() < 4 * mib:
                assert f.read(64 * 1024)
            start, stop = stream_request(server)
            assert start < f.tell() <= stop, "a stream serves the run"
            assert stop - start <= 16 * mib, "bounded: not to the open's prefetch at 31 MiB"
            while f.tell() < stop - 128 * 1024:
                assert f.read(64 * 1024)
            f.seek(20 * mib)
            assert f.read(4096) == data[20 * mib : 20 * mib + 4096]
            stats = f.stats
        assert stats.bytes_fetched == body_bytes_asked(server, len(data))
        assert server.connections == 1


def span_of(spec: str | None, size: int) -> tuple[int, int]:
    assert spec is not None and spec.startswith("bytes=") and "," not in spec, spec
    first, _, last = spec[len("bytes=") :].partition("-")
    if not first:
        return size - int(last), size
    return int(first), min(int(last) + 1, size)


def test_a_stream_whose_drain_fails_costs_only_its_read_ahead(opener: Opener) -> None:
    """The stream a reader leaves is cut while it is drained, and its resume is refused: the
    reader's next read (elsewhere) is served all the same."""
    mib = 1024 * 1024
    data = bytes(range(256)) * (32 * mib // 256)
    streams: list[tuple[int, int]] = []

    def handler(conn: RawConnection, request: RawRequest) -> None:
        start, stop = span_of(request.range, len(data))
        if stop - start > 3 * mib and not streams:
            streams.append((start, stop))
            answer = serve_range(data, request)
            conn.send(answer[: len(answer) - 100 * 1024])  # cut 100 KiB before its end
            return
        if streams and start == streams[0][1] - 100 * 1024:
            conn.send(response_head(404, {"Content-Length": "0"}))  # the resume, refused
            return
        conn.send(serve_range(data, request))

    retries = rangeio.RetryPolicy(attempts=3, backoff=0.01, max_backoff=0.05)
    with raw_server(handler) as server:
        with opener(server.url("/f"), retries=retries) as f:
            f.seek(mib // 2)
            while not streams or f.tell() < streams[0][1] - 128 * 1024:
                assert f.read(64 * 1024)
            f.seek(20 * mib)
            assert f.read(4096) == data[20 * mib : 20 * mib + 4096]
        resumed = [r for r in server.requests if r.header("if-match")]
        assert resumed, "the drain met the cut and asked for the rest"


# -- clustered reads (issue 12): rows of tiles, single chunks in order, small files -----------

KIB, MIB = 1024, 1024 * 1024


def patterned(size: int) -> bytes:
    return bytes((i * 7 + i // 251) & 0xFF for i in range(size))


def test_rows_of_tiles_cost_a_request_or_two_per_row_then_one_for_the_rest(
    opener: Opener,
) -> None:
    """tifffile's aszarr window, h5py's chunk rows: a run of adjacent tiles, a jump forward to
    the next row, and so on. After the first row the next rows are read through (jumps
    included) in one request, and stats count exactly what the server sent."""
    data = patterned(16 * MIB)
    tile, pitch, first_row = 120 * KIB, 1900 * KIB, 6 * MIB
    with FaultServer({"/tiles.tif": data}) as server:
        with opener(server.url("/tiles.tif")) as f:
            for row in range(4):
                for column in range(4):
                    pos = first_row + row * pitch + column * tile
                    f.seek(pos)
                    assert f.read(tile) == data[pos : pos + tile]
            stats = f.stats
        # The open, the first row (its read-ahead grows from nothing), the three other rows.
        assert len(server.requests) <= 1 + 3 + 1, [r.range for r in server.requests]
        assert stats.bytes_fetched == body_bytes_asked(server, len(data))
        assert server.connections == 1, "no stream was abandoned"


def test_single_chunks_read_in_order_are_not_read_through(opener: Opener) -> None:
    """A Parquet reader taking one column chunk per row group, in order: each read is one
    request of its own bytes; the columns between them are not fetched."""
    data = patterned(12 * MIB)
    chunk = 290 * KIB
    with FaultServer({"/t.bin": data}) as server:
        with opener(server.url("/t.bin"), prefetch_bytes=0) as f:
            for group in range(8):
                pos = 1 * MIB + group * 1 * MIB
                f.seek(pos)
                assert f.read(chunk) == data[pos : pos + chunk]
            stats = f.stats
        assert stats.bytes_fetched <= 8 * (chunk + 8 * KIB) + 1
        assert stats.bytes_fetched == body_bytes_asked(server, len(data))


def test_a_small_file_read_whole_in_pieces_costs_two_requests(opener: Opener) -> None:
    """PIL decoding a 1.2 MiB PNG in 64 KiB pieces: the open's prefix, then the rest of the file
    in one request (a rest within readahead_max is not left for a request of its own)."""
    data = patterned(1200 * KIB)
    with FaultServer({"/image.png": data}) as server:
        with opener(server.url("/image.png")) as f:
            got = bytearray()
            while piece := f.read(64 * KIB):
                got += piece
            stats = f.stats
        assert bytes(got) == data
        assert len(server.requests) == 2, [r.range for r in server.requests]
        assert stats.bytes_fetched == len(data)
