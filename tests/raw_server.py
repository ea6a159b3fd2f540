"""A raw-socket HTTP server for hostile-server tests: each test writes the exact bytes it answers.

`rangeio.testing.FaultServer` is our own h11 server; tests that only ever run against it can end
up tuned to it. Here a test gives a handler that receives the parsed request head and the socket
and writes whatever it likes (a dripped status line, 1xx responses, endless trailers, lies in any
header). Every request is recorded, so tests assert on what rangeio sent (for example that a
credential never reached this origin) by reading ``server.requests``, never by sleeping.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

# A request head larger than this is not a request rangeio would send; the server gives up on it.
MAX_HEAD_BYTES = 64 * 1024


@dataclass
class RawRequest:
    """One request head as it arrived: method, target, lower-cased header names, and which
    accepted connection it came on (0, 1, ... in the order they were accepted)."""

    method: str
    target: str
    headers: dict[str, str]
    raw: bytes
    connection: int = -1

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def range(self) -> str | None:
        return self.header("range")

    def spans(self) -> list[tuple[int, int]]:
        """The ``bytes=a-b,c-d`` ranges asked for, as [start, stop) pairs."""
        assert self.range is not None
        spans = []
        for item in self.range[6:].split(","):
            first, _, last = item.partition("-")
            spans.append((int(first), int(last) + 1))
        return spans


Handler = Callable[["RawConnection", RawRequest], None]


@dataclass
class RawConnection:
    """The accepted socket, with helpers that stop early once the server is stopping."""

    sock: socket.socket
    server: RawServer
    buffered: bytes = b""

    def send(self, data: bytes) -> bool:
        """Send all of ``data``; False if the peer has gone (the handler should then return)."""
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def drip(self, data: bytes, interval: float, piece: int = 1) -> bool:
        """Send ``data`` ``piece`` bytes at a time, ``interval`` seconds apart, until it is all
        sent, the peer goes away or the server stops. True if all of it was sent."""
        for i in range(0, len(data), piece):
            if self.server.stopping.wait(interval) or not self.send(data[i : i + piece]):
                return False
        return True

    def endless(self, make_piece: Callable[[int], bytes], interval: float = 0.0) -> None:
        """Send ``make_piece(i)`` for i = 0, 1, ... until the peer or the server stops."""
        i = 0
        while not self.server.stopping.is_set():
            if not self.send(make_piece(i)):
                return
            i += 1
            if interval:
                self.server.stopping.wait(interval)

    def read_request(self) -> RawRequest | None:
        """The next request head on this connection (keep-alive), or None when it closes."""
        data = self.buffered
        while b"\r\n\r\n" not in data:
            if len(data) > MAX_HEAD_BYTES:
                return None
            try:
                more = self.sock.recv(65536)
            except OSError:
                return None
            if not more:
                return None
            data += more
        head, _, self.buffered = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            key = name.strip().lower()
            value = value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        return RawRequest(method, target, headers, head + b"\r\n\r\n")


@dataclass
class RawServer:
    """``with RawServer(handler) as server: server.url("/f")``. The handler answers one request;
    when it returns, the connection is kept open for the next one if ``keep_alive`` (the handler
    must then have framed its response), else closed."""

    handler: Handler
    keep_alive: bool = False
    requests: list[RawRequest] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)
    _sock: socket.socket | None = None
    _threads: list[threading.Thread] = field(default_factory=list)
    _conns: list[socket.socket] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def port(self) -> int:
        assert self._sock is not None
        return int(self._sock.getsockname()[1])

    def url(self, path: str = "/file") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> RawServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        sock.settimeout(0.2)
        self._sock = sock
        thread = threading.Thread(target=self._accept_loop, name="raw-server", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self.stopping.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                number = len(self._conns)
                self._conns.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn, number), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, sock: socket.socket, number: int) -> None:
        connection = RawConnection(sock, self)
        try:
            while not self.stopping.is_set():
                request = connection.read_request()
                if request is None:
                    return
                request.connection = number
                with self._lock:
                    self.requests.append(request)
                self.handler(connection, request)
                if not self.keep_alive:
                    return
        except OSError:
            return
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> list[RawRequest]:
        """Poll until ``count`` requests have arrived (or fail the test)."""
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} requests, got {len(self.requests)}")
            time.sleep(0.01)
        return list(self.requests)

    @property
    def connections(self) -> int:
        """How many connections the requests recorded so far came on."""
        with self._lock:
            return len({request.connection for request in self.requests})

    def stop(self) -> None:
        self.stopping.set()
        if self._sock is not None:
            self._sock.close()
        with self._lock:
            for conn in self._conns:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> RawServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextmanager
def raw_server(handler: Handler, *, keep_alive: bool = False) -> Iterator[RawServer]:
    with RawServer(handler, keep_alive=keep_alive) as server:
        yield server


def response_head(status: int, headers: dict[str, str] | list[tuple[str, str]]) -> bytes:
    """A status line and headers, as bytes, ending with the blank line."""
    reasons = {200: "OK", 206: "Partial Content", 302: "Found", 103: "Early Hints", 416: "Range"}
    items = headers.items() if isinstance(headers, dict) else headers
    lines = [f"HTTP/1.1 {status} {reasons.get(status, 'Status')}"]
    lines += [f"{name}: {value}" for name, value in items]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def serve_range(data: bytes, request: RawRequest, extra: dict[str, str] | None = None) -> bytes:
    """An honest answer to ``request`` for a file holding ``data``: a 206 for a single
    ``bytes=a-b`` / ``bytes=-n`` range, else a 200. For handlers that lie only in one place."""
    headers = {"ETag": '"raw-1"', "Accept-Ranges": "bytes", **(extra or {})}
    spec = request.range
    if spec and spec.startswith("bytes=") and "," not in spec:
        first, _, last = spec[6:].partition("-")
        size = len(data)
        if first:
            start, stop = int(first), min(int(last) + 1 if last else size, size)
        else:
            start, stop = max(size - int(last), 0), size
        body = data[start:stop]
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
        headers["Content-Length"] = str(len(body))
        return response_head(206, headers) + body
    headers["Content-Length"] = str(len(data))
    return response_head(200, headers) + data
