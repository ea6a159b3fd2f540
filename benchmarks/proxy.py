"""A delaying HTTP/1.1 TCP proxy for the benchmarks, run in its own process.

Every request is held for ``--delay-ms`` once its headers are complete (the end of headers,
``\\r\\n\\r\\n``, is detected on the client->server direction), then forwarded; responses stream
back undelayed. The delay is per request, not per packet: a request that arrives at ``t`` is
forwarded at ``t + delay`` whatever else is in flight, so concurrent requests overlap as they
would on a real link.

The proxy counts what crosses it, the same way for every library: connections, requests, and
response bytes (status line, headers and body). It parses response framing (Content-Length, or
no body for HEAD/204/304) to know when each request completes, which gives *round trips*: the
longest chain of requests each sent after the previous one finished, i.e. how many times the
reader paid the latency in a row.

It listens on 127.0.0.1 only, and forwards only to the one upstream given on its command line.
A second loopback port takes control lines (``snapshot`` / ``reset`` / ``quit``) and answers
each with one JSON line. ``ProxyProcess`` below starts it and talks to it.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import heapq
import json
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HEADER_END = b"\r\n\r\n"
MAX_HEADER_BYTES = 64 * 1024
# Request records kept per measurement window; far above what any scenario sends.
MAX_RECORDS = 200_000


# -- bookkeeping --------------------------------------------------------------------------


@dataclass
class RequestRecord:
    method: str
    target: str
    range: str | None
    arrived: float
    done: float | None = None
    status: int | None = None
    response_bytes: int = 0
    owner: Any = field(default=None, repr=False)  # the Counters it was started under


@dataclass
class Counters:
    started: float = field(default_factory=time.monotonic)
    connections: int = 0
    requests: int = 0
    request_bytes: int = 0
    response_bytes: int = 0
    body_bytes: int = 0  # the response bodies alone: what a client's own byte count can match
    in_flight: int = 0
    max_in_flight: int = 0
    records: list[RequestRecord] = field(default_factory=list)

    def snapshot(self, *, detail: int) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "connections": self.connections,
            "requests": self.requests,
            "request_bytes": self.request_bytes,
            "response_bytes": self.response_bytes,
            "body_bytes": self.body_bytes,
            "max_in_flight": self.max_in_flight,
            "round_trips": round_trips(self.records, now),
            "unfinished": sum(1 for r in self.records if r.done is None),
            "seconds": now - self.started,
            "log": [
                {
                    "method": r.method,
                    "range": r.range,
                    "status": r.status,
                    "bytes": r.response_bytes,
                    "t_ms": round((r.arrived - self.started) * 1000, 1),
                }
                for r in self.records[:detail]
            ],
        }


def round_trips(records: list[RequestRecord], now: float) -> int:
    """Length of the longest chain of requests where each arrived after the previous finished.

    Sequential requests give a chain as long as their count; N requests sent together give 1;
    N requests through a pool of k connections give about N / k. Unfinished requests count as
    finishing now.
    """
    spans = sorted((r.arrived, r.done if r.done is not None else now) for r in records)
    finished: list[tuple[float, int]] = []  # heap of (done, chain length)
    best_finished = 0  # longest chain among requests done before the current arrival
    longest = 0
    for arrived, done in spans:
        while finished and finished[0][0] <= arrived:
            best_finished = max(best_finished, heapq.heappop(finished)[1])
        chain = best_finished + 1
        longest = max(longest, chain)
        heapq.heappush(finished, (done, chain))
    return longest


# -- the proxy ----------------------------------------------------------------------------


class Proxy:
    def __init__(self, upstream: tuple[str, int], delay: float) -> None:
        self.upstream = upstream
        self.delay = delay
        self.counters = Counters()

    def reset(self) -> None:
        self.counters = Counters()

    def request_started(self, method: str, target: str, range_: str | None) -> RequestRecord:
        c = self.counters
        record = RequestRecord(method, target, range_, time.monotonic(), owner=c)
        c.requests += 1
        c.in_flight += 1
        c.max_in_flight = max(c.max_in_flight, c.in_flight)
        if len(c.records) < MAX_RECORDS:
            c.records.append(record)
        return record

    def request_finished(self, record: RequestRecord, status: int | None) -> None:
        if record.done is not None:
            return
        record.done = time.monotonic()
        record.status = status
        record.owner.in_flight -= 1


class ClientSide(asyncio.Protocol):
    """The accepted connection from a library under test."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.server: ServerSide | None = None
        self.buffer = bytearray()
        self.body_left = 0
        self.queue: collections.deque[tuple[float, bytes]] = collections.deque()
        self.timer: asyncio.TimerHandle | None = None
        self.outstanding: collections.deque[RequestRecord] = collections.deque()
        self.closed = False

    # connection events
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.proxy.counters.connections += 1
        self.server = ServerSide(self)
        self.loop.create_task(self._connect())

    async def _connect(self) -> None:
        assert self.server is not None
        try:
            await self.loop.create_connection(lambda: self.server, *self.proxy.upstream)
        except OSError:
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
        for record in self.outstanding:
            self.proxy.request_finished(record, None)
        self.outstanding.clear()
        if self.transport is not None:
            self.transport.close()
        if self.server is not None and self.server.transport is not None:
            self.server.transport.close()

    # flow control: the upstream write buffer is full -> stop reading the client
    def pause_writing(self) -> None:
        if self.server and self.server.transport:
            self.server.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.server and self.server.transport:
            self.server.transport.resume_reading()

    # client -> server
    def data_received(self, data: bytes) -> None:
        self.proxy.counters.request_bytes += len(data)
        self.buffer += data
        while self.buffer:
            if self.body_left:
                n = min(self.body_left, len(self.buffer))
                self._enqueue(bytes(self.buffer[:n]), delayed=False)
                del self.buffer[:n]
                self.body_left -= n
                continue
            end = self.buffer.find(HEADER_END)
            if end < 0:
                if len(self.buffer) > MAX_HEADER_BYTES:
                    self.close()
                return
            head = bytes(self.buffer[: end + 4])
            del self.buffer[: end + 4]
            self._request_head(head)

    def _request_head(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        method = parts[0].upper()
        target = parts[1] if len(parts) > 1 else ""
        headers = _parse_headers(lines[1:])
        self.body_left = int(headers.get("content-length", "0") or 0)
        record = self.proxy.request_started(method, target, headers.get("range"))
        self.outstanding.append(record)
        self._enqueue(head, delayed=True)

    def _enqueue(self, data: bytes, *, delayed: bool) -> None:
        if delayed:
            due = self.loop.time() + self.proxy.delay
        else:  # a body follows its head, never overtakes it
            due = self.queue[-1][0] if self.queue else self.loop.time()
        self.queue.append((due, data))
        self._flush()

    def _flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        server = self.server.transport if self.server else None
        if server is None or self.closed:
            return  # flushed again when the upstream connection is made
        now = self.loop.time()
        while self.queue and self.queue[0][0] <= now:
            server.write(self.queue.popleft()[1])
        if self.queue:
            self.timer = self.loop.call_at(self.queue[0][0], self._flush)

    # server -> client, called by ServerSide
    def response_complete(self, status: int) -> None:
        if self.outstanding:
            self.proxy.request_finished(self.outstanding.popleft(), status)

    def next_method(self) -> str:
        return self.outstanding[0].method if self.outstanding else "GET"

    def count_response_bytes(self, n: int, *, body: bool = False) -> None:
        self.proxy.counters.response_bytes += n
        if body:
            self.proxy.counters.body_bytes += n
        if self.outstanding:
            self.outstanding[0].response_bytes += n


class ServerSide(asyncio.Protocol):
    """The connection to nginx for one client connection; tracks response framing."""

    def __init__(self, client: ClientSide) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.head = bytearray()
        self.in_body = False
        self.body_left = 0
        self.until_close = False
        self.status = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.client.closed:
            transport.close()
            return
        self.client._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.until_close:
            self.client.response_complete(self.status)
        self.client.close()

    def pause_writing(self) -> None:
        if self.client.transport:
            self.client.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.client.transport:
            self.client.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        client = self.client
        if client.transport is None or client.closed:
            return
        client.transport.write(data)
        view = memoryview(data)
        while len(view):
            if self.in_body:
                if self.until_close:
                    client.count_response_bytes(len(view), body=True)
                    return
                n = min(self.body_left, len(view))
                client.count_response_bytes(n, body=True)
                view = view[n:]
                self.body_left -= n
                if self.body_left == 0:
                    self.in_body = False
                    client.response_complete(self.status)
                continue
            # In the head: look for its end, across chunk boundaries.
            start = max(len(self.head) - 3, 0)
            self.head += view
            end = self.head.find(HEADER_END, start)
            if end < 0:
                client.count_response_bytes(len(view))
                return
            head_len = end + 4
            used = head_len - (len(self.head) - len(view))
            client.count_response_bytes(used)
            view = view[used:]
            self._response_head(bytes(self.head[:head_len]))
            self.head.clear()

    def _response_head(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        self.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        if 100 <= self.status < 200:
            return  # interim response: the real one follows
        headers = _parse_headers(lines[1:])
        method = self.client.next_method()
        no_body = method == "HEAD" or self.status in (204, 304)
        if no_body:
            self.client.response_complete(self.status)
            return
        if "content-length" in headers:
            self.body_left = int(headers["content-length"])
            if self.body_left == 0:
                self.client.response_complete(self.status)
                return
            self.in_body = True
            return
        # nginx frames static files with Content-Length; anything else ends at close.
        self.in_body = True
        self.until_close = True


def _parse_headers(lines: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers


# -- control channel ----------------------------------------------------------------------


async def serve(upstream: tuple[str, int], delay: float) -> None:
    proxy = Proxy(upstream, delay)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: ClientSide(proxy), "127.0.0.1", 0, backlog=512)
    stop = loop.create_future()

    async def control(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            words = line.decode().split()
            command = words[0] if words else ""
            detail = int(words[1]) if len(words) > 1 else 0
            if command == "snapshot":
                answer = proxy.counters.snapshot(detail=detail)
            elif command == "reset":
                answer = proxy.counters.snapshot(detail=detail)
                proxy.reset()
            elif command == "quit":
                answer = {"bye": True}
            else:
                answer = {"error": f"unknown command {command!r}"}
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
            if command == "quit":
                if not stop.done():
                    stop.set_result(None)
                break
        writer.close()

    control_server = await asyncio.start_server(control, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    control_port = control_server.sockets[0].getsockname()[1]
    print(json.dumps({"port": port, "control": control_port}), flush=True)
    # The parent going away (stdin closed) also stops us.
    loop.add_reader(sys.stdin.fileno(), lambda: stop.done() or stop.set_result(None))
    await stop
    server.close()
    control_server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="host:port of the origin (loopback)")
    parser.add_argument("--delay-ms", type=float, default=20.0)
    args = parser.parse_args()
    host, _, port = args.upstream.rpartition(":")
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("the benchmark proxy only forwards to a loopback origin")
    asyncio.run(serve((host, int(port)), args.delay_ms / 1000.0))


# -- the parent's handle ------------------------------------------------------------------


class ProxyProcess:
    """Starts proxy.py as a subprocess (so it never competes for the benchmark's GIL)."""

    def __init__(self, upstream_port: int, delay_ms: float) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--upstream",
                f"127.0.0.1:{upstream_port}",
                "--delay-ms",
                str(delay_ms),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.process.stdout is not None
        first = self.process.stdout.readline()
        if not first:
            raise RuntimeError("the delaying proxy did not start")
        ports = json.loads(first)
        self.port: int = ports["port"]
        self.control = socket.create_connection(("127.0.0.1", ports["control"]))
        self.control_file = self.control.makefile("rwb")

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _ask(self, line: str) -> dict[str, Any]:
        self.control_file.write(line.encode() + b"\n")
        self.control_file.flush()
        answer = self.control_file.readline()
        if not answer:
            raise RuntimeError("the delaying proxy went away")
        return dict(json.loads(answer))

    def reset(self) -> dict[str, Any]:
        return self._ask("reset 0")

    def snapshot(self, detail: int = 0) -> dict[str, Any]:
        return self._ask(f"snapshot {detail}")

    def close(self) -> None:
        try:
            self._ask("quit")
        except (OSError, RuntimeError):
            pass
        self.control_file.close()
        self.control.close()
        if self.process.stdin:
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
