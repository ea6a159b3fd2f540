"""Measure rangeio's cost per body chunk against the raw client reading the same body.

A loopback server answers every request with the same 206: ``--size`` bytes (64 KiB) sent as
1-byte chunked chunks (``1\\r\\nX\\r\\n``), all written at once so the server is never the
bottleneck. The raw client reads the body chunk by chunk as rangeio's transport does (urllib3
``read1``, httpx ``iter_raw``/``aiter_raw``, aiohttp ``iter_any``, which hands over all that is
buffered, so there the chunks are larger than a byte on both sides); rangeio opens the file with a prefetch of
the whole size, so its one request reads the same body through the engine (BodyReader, the
exchange, the runner, the watchdog or deadline). Every byte is checked. The result is the ratio
of the two times per chunk: rangeio's overhead per chunk, whatever the machine's speed.

    .venv/bin/python benchmarks/chunk_overhead.py           # urllib3, httpx, aiohttp, httpx-async
    .venv/bin/python benchmarks/chunk_overhead.py --size 16384 --repeats 3 --only aiohttp
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import rangeio
import rangeio.aio

KiB = 1024


class OneByteChunks:
    """A threaded loopback server: one request per connection, answered with ``data`` as a 206
    whose body is chunked one byte per chunk."""

    def __init__(self, data: bytes) -> None:
        head = (
            "HTTP/1.1 206 Partial Content\r\n"
            f"Content-Range: bytes 0-{len(data) - 1}/{len(data)}\r\n"
            'ETag: "chunks-1"\r\nAccept-Ranges: bytes\r\nTransfer-Encoding: chunked\r\n'
            "Connection: close\r\n\r\n"
        ).encode()
        body = b"".join(b"1\r\n" + data[i : i + 1] + b"\r\n" for i in range(len(data)))
        self.answer = head + body + b"0\r\n\r\n"
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}/chunks"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                more = conn.recv(65536)
                if not more:
                    return
                data += more
            conn.sendall(self.answer)

    def close(self) -> None:
        self._sock.close()


# -- the raw clients, reading as rangeio's transports do -------------------------------------


def raw_urllib3(url: str, size: int) -> bytes:
    import urllib3

    with urllib3.PoolManager() as pool:
        response = pool.request(
            "GET",
            url,
            headers={"Range": f"bytes=-{size}"},
            preload_content=False,
            decode_content=False,
            retries=False,
        )
        chunks = []
        while chunk := response.read1(1024 * 1024, decode_content=False):
            chunks.append(chunk)
        response.release_conn()
    return b"".join(chunks)


def raw_httpx(url: str, size: int) -> bytes:
    import httpx

    with (
        httpx.Client() as client,
        client.stream("GET", url, headers={"Range": f"bytes=-{size}"}) as response,
    ):
        return b"".join(response.iter_raw())


def raw_aiohttp(url: str, size: int) -> bytes:
    import aiohttp

    async def main() -> bytes:
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                url, headers={"Range": f"bytes=-{size}"}, auto_decompress=False
            ) as response,
        ):
            return b"".join([chunk async for chunk in response.content.iter_any()])

    return asyncio.run(main())


def raw_httpx_async(url: str, size: int) -> bytes:
    import httpx

    async def main() -> bytes:
        async with (
            httpx.AsyncClient() as client,
            client.stream("GET", url, headers={"Range": f"bytes=-{size}"}) as response,
        ):
            return b"".join([chunk async for chunk in response.aiter_raw()])

    return asyncio.run(main())


# -- rangeio through the same clients ---------------------------------------------------------


def rangeio_sync(client_factory: Callable[[], Any]) -> Callable[[str, int], bytes]:
    def read(url: str, size: int) -> bytes:
        client = client_factory()
        try:
            with rangeio.open(url, client=client, prefetch_bytes=size) as f:
                return f.read()
        finally:
            if client is not None:
                client.close()

    return read


def rangeio_aiohttp(url: str, size: int) -> bytes:
    async def main() -> bytes:
        async with await rangeio.aio.open(url, prefetch_bytes=size) as f:
            return await f.read()

    return asyncio.run(main())


def rangeio_httpx_async(url: str, size: int) -> bytes:
    import httpx

    async def main() -> bytes:
        async with (
            httpx.AsyncClient() as client,
            await rangeio.aio.open(url, client=client, prefetch_bytes=size) as f,
        ):
            return await f.read()

    return asyncio.run(main())


def _httpx_client() -> Any:
    import httpx

    return httpx.Client()


PAIRS: dict[str, tuple[Callable[[str, int], bytes], Callable[[str, int], bytes]]] = {
    "urllib3": (raw_urllib3, rangeio_sync(lambda: None)),
    "httpx": (raw_httpx, rangeio_sync(_httpx_client)),
    "aiohttp": (raw_aiohttp, rangeio_aiohttp),
    "httpx-async": (raw_httpx_async, rangeio_httpx_async),
}


def best_time(read: Callable[[str, int], bytes], url: str, data: bytes, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        got = read(url, len(data))
        times.append(time.perf_counter() - started)
        if got != data:
            raise SystemExit(f"{read.__name__}: wrong bytes ({len(got)} of {len(data)})")
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64 * KiB, help="body bytes (= chunks)")
    parser.add_argument("--repeats", type=int, default=5, help="best of this many reads")
    parser.add_argument("--only", action="append", choices=sorted(PAIRS), help="client(s)")
    args = parser.parse_args(argv)
    data = random.Random(11).randbytes(args.size)
    server = OneByteChunks(data)
    ratios = []
    try:
        print(f"{args.size} one-byte chunks, best of {args.repeats}")
        print(f"{'client':<10}{'raw µs/chunk':>14}{'rangeio µs/chunk':>18}{'ratio':>8}")
        for name in args.only or list(PAIRS):
            raw, ours = PAIRS[name]
            raw_time = best_time(raw, server.url, data, args.repeats)
            our_time = best_time(ours, server.url, data, args.repeats)
            ratio = our_time / raw_time
            ratios.append(ratio)
            per_raw, per_ours = (t / args.size * 1e6 for t in (raw_time, our_time))
            print(f"{name:<10}{per_raw:>14.2f}{per_ours:>18.2f}{ratio:>8.2f}")
    finally:
        server.close()
    print(f"median ratio {statistics.median(ratios):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
