"""A shaping HTTP/1.1 proxy for the download benchmark, run in its own process.

It sits between a download client and nginx, both on 127.0.0.1, and imitates a distant server
behind a per-connection bottleneck:

- every request is held for ``--delay-ms`` once its head is complete (``\\r\\n\\r\\n``), then
  forwarded: the round trip to a far server. Requests are delayed independently (a request that
  arrives at ``t`` leaves at ``t + delay`` whatever else is in flight), in order per connection;
- every connection's response stream is paced by its own token bucket at ``--rate-mbps``
  megabytes (10**6 bytes) per second: a per-flow limit, as a CDN edge or a long, window-limited
  TCP path gives. N connections get N times the rate, which is what segmented downloaders
  (aria2c -x8, rangeio connections=8) exploit.

Connection setup is not delayed (only requests are), and request bodies (none for downloads)
follow their head without a delay of their own.

It counts connections, requests (and their Range headers) and response bytes. Control is on
stdin/stdout: the first stdout line is ``{"port": N}``; then each stdin line (``snapshot`` or
``reset``) gets one JSON line back. End of stdin stops the proxy, so it never outlives the
benchmark that started it. ``ShaperProcess`` below starts it and talks to it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HEADER_END = b"\r\n\r\n"
MAX_HEAD = 64 * 1024
CHUNK = 256 * 1024  # response bytes read (and paced) at a time
BURST = 256 * 1024  # token bucket depth: at most this much goes out at once after a pause
IDLE_SECONDS = 120.0  # a connection with no traffic this long is closed
CONNECT_SECONDS = 5.0
MAX_LOGGED = 500  # request records kept per measurement window (for the JSON)


class Stats:
    """What crossed the proxy since the last reset."""

    def __init__(self) -> None:
        self.open = 0  # live connections: not reset
        self.reset()

    def reset(self) -> None:
        self.started = time.monotonic()
        self.connections = 0
        self.requests = 0
        self.response_bytes = 0
        self.max_open = self.open
        self.log: list[dict[str, Any]] = []

    def snapshot(self) -> dict[str, Any]:
        return {
            "connections": self.connections,
            "requests": self.requests,
            "response_bytes": self.response_bytes,
            "max_open_connections": self.max_open,
            "open_connections": self.open,
            "seconds": round(time.monotonic() - self.started, 6),
            "log": self.log[:MAX_LOGGED],
        }


class TokenBucket:
    """``rate`` bytes per second, at most ``burst`` saved up. Debt is slept off after a take,
    so the long-run rate is exact even though each sleep is a little late."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    async def take(self, n: int) -> None:
        now = time.monotonic()
        self.tokens = min(float(self.burst), self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= n
        if self.tokens < 0:
            await asyncio.sleep(-self.tokens / self.rate)


class Shaper:
    def __init__(self, upstream: tuple[str, int], delay: float, rate: float | None) -> None:
        self.upstream = upstream
        self.delay = delay
        self.rate = rate
        self.stats = Stats()

    async def handle(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        stats = self.stats
        stats.connections += 1
        stats.open += 1
        stats.max_open = max(stats.max_open, stats.open)
        conn_id = stats.connections
        uwriter: asyncio.StreamWriter | None = None
        tasks: list[asyncio.Task[None]] = []
        try:
            ureader, uwriter = await asyncio.wait_for(
                asyncio.open_connection(*self.upstream, limit=CHUNK), CONNECT_SECONDS
            )
            up = asyncio.create_task(self.requests_up(creader, uwriter, conn_id))
            down = asyncio.create_task(self.responses_down(ureader, cwriter))
            tasks = [up, down]
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if up in done and down not in done and up.exception() is None:
                # The client finished sending (EOF): let the answers in flight reach it.
                await asyncio.wait([down], timeout=IDLE_SECONDS)
        except (OSError, asyncio.TimeoutError):
            pass
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for writer in (uwriter, cwriter):
                if writer is not None:
                    writer.close()
                    with contextlib.suppress(Exception):
                        await writer.wait_closed()
            stats.open -= 1

    async def requests_up(
        self, creader: asyncio.StreamReader, uwriter: asyncio.StreamWriter, conn_id: int
    ) -> None:
        """Client -> nginx: find each request head, hold it ``delay``, forward in order."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
        forwarder = asyncio.create_task(self._forward(queue, uwriter))
        buf = bytearray()
        body_left = 0
        due = loop.time()
        try:
            while True:
                data = await asyncio.wait_for(creader.read(CHUNK), IDLE_SECONDS)
                if not data:
                    break
                now = loop.time()
                buf += data
                while buf:
                    if body_left:
                        n = min(body_left, len(buf))
                        queue.put_nowait((due, bytes(buf[:n])))
                        del buf[:n]
                        body_left -= n
                        continue
                    end = buf.find(HEADER_END)
                    if end < 0:
                        if len(buf) > MAX_HEAD:
                            raise ConnectionError("request head too large")
                        break
                    head = bytes(buf[: end + 4])
                    del buf[: end + 4]
                    body_left = self._count_request(head, conn_id, now)
                    due = now + self.delay
                    queue.put_nowait((due, head))
            queue.put_nowait(None)
            await forwarder
        finally:
            forwarder.cancel()
            with contextlib.suppress(BaseException):
                await forwarder

    async def _forward(
        self, queue: asyncio.Queue[tuple[float, bytes] | None], uwriter: asyncio.StreamWriter
    ) -> None:
        loop = asyncio.get_running_loop()
        while True:
            item = await queue.get()
            if item is None:
                if uwriter.can_write_eof():
                    uwriter.write_eof()
                return
            due, data = item
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            uwriter.write(data)
            await uwriter.drain()

    def _count_request(self, head: bytes, conn_id: int, now: float) -> int:
        lines = head.decode("latin-1").split("\r\n")
        method = lines[0].split(" ", 1)[0]
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        stats = self.stats
        stats.requests += 1
        if len(stats.log) < MAX_LOGGED:
            stats.log.append(
                {
                    "conn": conn_id,
                    "method": method,
                    "range": headers.get("range"),
                    "t_ms": round((time.monotonic() - stats.started) * 1000, 1),
                }
            )
        try:
            return max(int(headers.get("content-length", "0") or 0), 0)
        except ValueError:
            return 0

    async def responses_down(
        self, ureader: asyncio.StreamReader, cwriter: asyncio.StreamWriter
    ) -> None:
        """nginx -> client, paced by this connection's own token bucket."""
        bucket = TokenBucket(self.rate, BURST) if self.rate else None
        stats = self.stats
        while True:
            data = await asyncio.wait_for(ureader.read(CHUNK), IDLE_SECONDS)
            if not data:
                return
            if bucket is not None:
                await bucket.take(len(data))
            cwriter.write(data)
            await cwriter.drain()
            stats.response_bytes += len(data)


async def serve(upstream: tuple[str, int], delay: float, rate: float | None) -> None:
    shaper = Shaper(upstream, delay, rate)
    loop = asyncio.get_running_loop()
    server = await asyncio.start_server(shaper.handle, "127.0.0.1", 0, backlog=512)
    port = server.sockets[0].getsockname()[1]
    sys.stdout.write(json.dumps({"port": port}) + "\n")
    sys.stdout.flush()
    control = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(control), sys.stdin)
    try:
        while line := await control.readline():
            command = line.decode().strip()
            if command == "snapshot":
                answer = shaper.stats.snapshot()
            elif command == "reset":
                answer = shaper.stats.snapshot()
                shaper.stats.reset()
            else:
                answer = {"error": f"unknown command {command!r}"}
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="host:port of the origin (loopback)")
    parser.add_argument("--delay-ms", type=float, default=40.0)
    parser.add_argument(
        "--rate-mbps", type=float, default=25.0, help="MB/s per connection (0: unlimited)"
    )
    args = parser.parse_args()
    host, _, port = args.upstream.rpartition(":")
    if host not in ("127.0.0.1", "localhost"):
        raise SystemExit("the shaping proxy only forwards to a loopback origin")
    rate = args.rate_mbps * 1e6 if args.rate_mbps > 0 else None
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve((host, int(port)), args.delay_ms / 1000.0, rate))


# -- the parent's handle ---------------------------------------------------------------------


class ShaperProcess:
    """Starts shaper.py as a subprocess and talks to it over its stdin/stdout."""

    ANSWER_SECONDS = 10.0

    def __init__(self, upstream_port: int, delay_ms: float, rate_mbps: float) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--upstream",
                f"127.0.0.1:{upstream_port}",
                "--delay-ms",
                str(delay_ms),
                "--rate-mbps",
                str(rate_mbps),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self._pending = b""
        try:
            first = self._readline()
            self.port: int = json.loads(first)["port"]
        except BaseException:
            self.close()
            raise

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _readline(self) -> bytes:
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + self.ANSWER_SECONDS
        while b"\n" not in self._pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError("the shaping proxy did not answer in time")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                data = os.read(fd, 65536)
                if not data:
                    raise RuntimeError("the shaping proxy went away")
                self._pending += data
        line, _, self._pending = self._pending.partition(b"\n")
        return line

    def _ask(self, command: str) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(command.encode() + b"\n")
        self.process.stdin.flush()
        return dict(json.loads(self._readline()))

    def reset(self) -> dict[str, Any]:
        return self._ask("reset")

    def snapshot(self) -> dict[str, Any]:
        return self._ask("snapshot")

    def close(self) -> None:
        if self.process.stdin:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()


if __name__ == "__main__":
    main()
