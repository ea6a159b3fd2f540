"""A loopback HTTP/1.1 byte-range server (h11, one thread per connection) that misbehaves on demand."""

from __future__ import annotations

import contextlib
import email.utils
import gzip
import hashlib
import http
import re
import secrets
import selectors
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

try:  # POSIX only; used to wait for the peer's ACKs before a reset
    import fcntl
    import termios
except ImportError:  # pragma: no cover - Windows
    fcntl = termios = None  # type: ignore[assignment]

try:
    import h11
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "rangeio.testing needs the h11 package: pip install 'rangeio[testing]'"
    ) from exc

__all__ = ["FaultServer", "Faults", "RecordedRequest"]

EtagMode = Literal["strong", "weak", "none"]
_Ending = Literal["keep", "fin", "reset"]

_RECV_SIZE = 65536
# How long a closing connection waits for the peer: long enough for a client to read a
# truncated answer, short enough that a client which never closes does not pin a thread.
_CLOSE_GRACE = 1.0
_JOIN_TIMEOUT = 2.0
_REDIRECT_STATUSES = frozenset({300, 301, 302, 303, 307, 308})
_RANGE_SPEC = re.compile(r"([0-9]*)-([0-9]*)")


@dataclass(frozen=True, kw_only=True)
class Faults:
    """Ways to misbehave; every field defaults to off.

    A Faults applies to every GET of the paths it covers, and to HEAD only when it has
    ``refuse_head`` or ``on_head``. ``times`` limits it to the first ``times`` requests it
    applies to (counted across all paths for the global Faults); after that the server
    behaves normally; ``skip`` answers the first ``skip`` of them normally first (so a download's
    first request works and its later segments' requests fail). Body and framing faults touch only 200 and 206 answers to GET.

    - ``ignore_range``: answer range requests with 200 and the whole body.
    - ``content_range_shift``: answer each range moved by this many bytes (clipped to the file),
      honestly: Content-Range names the bytes the body holds, as a server or cache that serves
      other ranges than asked does.
    - ``align_ranges``: round each range out to multiples of this many bytes (clipped to the
      file), like a cache that stores a file in blocks and answers whole blocks (honestly).
    - ``content_length_delta``: > 0 declares more than is sent, then closes; < 0 declares
      and sends fewer bytes, keeping the connection.
    - ``truncate_after``: send this many body bytes, then close (FIN).
    - ``reset_after``: send this many body bytes, then reset (RST); 0 resets before answering.
    - ``gzip``: gzip the body, with Content-Encoding: gzip (Content-Range stays identity).
    - ``status`` and ``retry_after``: answer with this status and Retry-After.
    - ``redirect_to`` and ``redirect_status``: redirect there (absolute or relative).
    - ``suffix_501``: answer suffix ranges (``bytes=-N``) with 501.
    - ``always_416``: answer every request that has a Range header with 416.
    - ``star_total``: Content-Range totals are ``*``.
    - ``refuse_head``: HEAD gets 405.
    - ``delay``: seconds to wait before answering.
    - ``chunked``: Transfer-Encoding: chunked, no Content-Length.
    - ``change_after``: after this many GETs of a path, its content changes once (reversed).
    - ``throttle``: send the body at most this many bytes per second (in 16 KiB pieces), so a
      client can be interrupted mid-body at a moment of the test's choosing.
    - ``extra_headers``: add these response headers (digests, say) to 200 and 206 answers.
    - ``on_head``: HEAD gets ``delay``, ``reset_after=0``, ``status`` and ``redirect_to`` too.
    - ``multipart_parts``: answer every range request (single ones too) with a
      multipart/byteranges body of this many 1-byte parts, from the first byte asked for on
      (so they outnumber, and soon lie outside, the ranges asked for).
    - ``bad_boundary``: multipart answers declare no boundary (``"missing"``) or one the body
      never uses (``"wrong"``).
    - ``endless``: after the body, send filler bytes until the client hangs up; the framing
      (``chunked`` never terminated, or a Content-Length, true or not) stays as declared. After
      a multipart body this is an epilogue that never ends.
    - ``overlapping_parts``: multipart answers repeat the first part's range, with other bytes,
      in place of the last part (the part count stays that of the ranges asked for).
    - ``drip``: send the body one byte at a time, this many seconds apart (slow loris).
    - ``header_flood``: add this many small headers to 200 and 206 answers.
    - ``huge_header``: add one header whose value is this many bytes to 200 and 206 answers.
    - ``total_delta``: Content-Range totals (206 and multipart parts) claim this many more bytes
      than the file has (the ranges and bodies stay true).
    - ``early_hints``: send this many ``103 Early Hints`` interim responses (with a Link header)
      before the answer.
    - ``drip_head``: send the answer's status line and headers one byte at a time, this many
      seconds apart (then the body at once): a slow-loris head.
    - ``endless_trailers``: send 200 and 206 bodies chunked, then after the last chunk one
      trailer line every this many seconds, never the blank line that ends them.
    - ``max_ranges``: answer a request for more than this many ranges with 200 and the whole
      body, as nginx's ``max_ranges`` and Apache's ``MaxRanges`` do; 1 is a server that never
      answers multipart (S3).
    - ``ignore_conditionals``: ignore ``If-None-Match`` and ``If-Modified-Since`` (answer as if
      they were not sent, never 304), as servers and proxies without conditional GETs do.
    """

    times: int | None = None
    skip: int = 0
    ignore_range: bool = False
    content_range_shift: int = 0
    align_ranges: int = 0
    content_length_delta: int = 0
    truncate_after: int | None = None
    reset_after: int | None = None
    gzip: bool = False
    status: int | None = None
    retry_after: str | None = None
    redirect_to: str | None = None
    redirect_status: int = 302
    suffix_501: bool = False
    always_416: bool = False
    star_total: bool = False
    refuse_head: bool = False
    delay: float = 0.0
    throttle: float = 0.0
    extra_headers: tuple[tuple[str, str], ...] = ()
    chunked: bool = False
    change_after: int | None = None
    on_head: bool = False
    multipart_parts: int = 0
    bad_boundary: Literal["missing", "wrong"] | None = None
    endless: bool = False
    drip: float = 0.0
    header_flood: int = 0
    huge_header: int = 0
    total_delta: int = 0
    overlapping_parts: bool = False
    early_hints: int = 0
    drip_head: float = 0.0
    endless_trailers: float = 0.0
    max_ranges: int | None = None
    ignore_conditionals: bool = False

    def __post_init__(self) -> None:
        if self.times is not None and self.times < 0:
            raise ValueError("times must be >= 0")
        if self.skip < 0:
            raise ValueError("skip must be >= 0")
        for name in ("truncate_after", "reset_after"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.change_after is not None and self.change_after < 1:
            raise ValueError("change_after must be >= 1")
        if self.delay < 0:
            raise ValueError("delay must be >= 0")
        if self.throttle < 0:
            raise ValueError("throttle must be >= 0")
        for name in (
            "multipart_parts",
            "drip",
            "header_flood",
            "huge_header",
            "align_ranges",
            "early_hints",
            "drip_head",
            "endless_trailers",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.max_ranges is not None and self.max_ranges < 1:
            raise ValueError("max_ranges must be >= 1")
        if self.bad_boundary not in (None, "missing", "wrong"):
            raise ValueError("bad_boundary must be None, 'missing' or 'wrong'")
        if self.redirect_status not in _REDIRECT_STATUSES:
            raise ValueError(f"redirect_status must be one of {sorted(_REDIRECT_STATUSES)}")
        # h11 sends 1xx only as interim answers, so they cannot stand in for the answer.
        if self.status is not None and not 200 <= self.status <= 599:
            raise ValueError("status must be in 200..599")

    def applies_to(self, method: str) -> bool:
        if method == "GET":
            return True
        return method == "HEAD" and (self.refuse_head or self.on_head)


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it; header names are lower case."""

    method: str
    path: str
    headers: dict[str, str]
    query: str = ""

    @property
    def range(self) -> str | None:
        return self.headers.get("range")


@dataclass(frozen=True)
class _Resource:
    """An immutable version of one file: a request works on the version it started with."""

    data: bytes
    version: int
    etag: str | None
    last_modified: str | None
    content_type: str


@dataclass(frozen=True)
class _FileSettings:
    etag_mode: EtagMode
    last_modified: bool
    content_type: str
    mtime_base: int


@dataclass
class _Reply:
    """An answer before framing: headers exclude Content-Length and Transfer-Encoding."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""


@dataclass(frozen=True)
class _RangeSpec:
    first: int | None  # None for a suffix range
    last: int | None  # the suffix length for a suffix range; None for an open range

    @property
    def is_suffix(self) -> bool:
        return self.first is None


@dataclass
class _WirePlan:
    """Exactly what goes on the socket for one answer, and how the connection ends."""

    status: int
    headers: list[tuple[str, str]]
    payload: bytes
    chunked: bool
    ending: _Ending


class _ConnectionDone(Exception):
    """The connection is finished (closed, reset, or the server is stopping)."""


class FaultServer:
    """An HTTP/1.1 range server on loopback whose misbehaviour tests switch on and off.

    Use as a context manager, or call start() and stop(). Serves GET and HEAD of the
    files added to it, with keep-alive and pipelining; see Faults for the switches.
    With ``ssl_context`` (a server-side context holding the certificate), every connection
    speaks TLS and the URLs are ``https://``.
    """

    def __init__(
        self,
        files: Mapping[str, bytes] | None = None,
        *,
        host: str = "127.0.0.1",
        ssl_context: ssl.SSLContext | None = None,
    ):
        self._host = host
        self._ssl_context = ssl_context
        self._lock = threading.RLock()
        self._files: dict[str, _Resource] = {}
        self._settings: dict[str, _FileSettings] = {}
        self._global_faults: Faults | None = None
        self._path_faults: dict[str, Faults] = {}
        # Budgets are spent per Faults scope (None = global); change_after counts per path.
        self._spent: dict[str | None, int] = {}
        self._gets_seen: dict[tuple[str | None, str], int] = {}
        self._log: list[RecordedRequest] = []
        self._connections = 0
        self._open_sockets: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._stopping = threading.Event()
        self._listener: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        for path, data in (files or {}).items():
            self.add_file(path, data)

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> FaultServer:
        if self._listener is not None:
            raise RuntimeError("FaultServer already started")
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        listener = socket.create_server((self._host, 0), family=family)
        listener.setblocking(False)
        self._listener = listener
        self._wake_r, self._wake_w = socket.socketpair()
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"FaultServer:{self.port}", daemon=True
        )
        self._accept_thread.start()
        return self

    def stop(self) -> None:
        if self._listener is None or self._stopping.is_set():
            return
        self._stopping.set()
        assert self._wake_w is not None
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if self._accept_thread is not None:
            self._accept_thread.join(_JOIN_TIMEOUT)
        self._listener.close()
        self._interrupt_connections()
        with self._lock:
            threads = list(self._threads)
        deadline = time.monotonic() + _JOIN_TIMEOUT
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for sock in (self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()

    def _interrupt_connections(self) -> None:
        # shutdown() wakes threads blocked in recv/send; they close their own sockets. The
        # plain socket's shutdown, also for TLS ones: SSLSocket.shutdown would drop the TLS
        # state under the feet of the thread still using it.
        with self._lock:
            for sock in self._open_sockets:
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)

    @property
    def port(self) -> int:
        if self._listener is None:
            raise RuntimeError("FaultServer not started")
        return int(self._listener.getsockname()[1])

    @property
    def origin(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        scheme = "https" if self._ssl_context is not None else "http"
        return f"{scheme}://{host}:{self.port}"

    def url(self, path: str) -> str:
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/': {path!r}")
        return self.origin + path

    # -- files -----------------------------------------------------------------------------

    def add_file(
        self,
        path: str,
        data: bytes,
        *,
        etag: EtagMode = "strong",
        last_modified: bool = True,
        content_type: str = "application/octet-stream",
    ) -> None:
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/': {path!r}")
        if etag not in ("strong", "weak", "none"):
            raise ValueError(f"etag must be 'strong', 'weak' or 'none', not {etag!r}")
        # An hour in the past so Last-Modified never lies in the future, even after replaces.
        settings = _FileSettings(etag, last_modified, content_type, int(time.time()) - 3600)
        with self._lock:
            self._settings[path] = settings
            self._files[path] = _make_resource(bytes(data), 0, settings)

    def replace(self, path: str, data: bytes) -> None:
        """Change a file's content; its ETag changes and its Last-Modified moves on 1 s."""
        with self._lock:
            current = self._files[path]
            self._files[path] = _make_resource(
                bytes(data), current.version + 1, self._settings[path]
            )

    def get_file(self, path: str) -> bytes:
        with self._lock:
            return self._files[path].data

    def etag(self, path: str) -> str | None:
        with self._lock:
            return self._files[path].etag

    # -- faults ----------------------------------------------------------------------------

    @property
    def faults(self) -> Faults | None:
        with self._lock:
            return self._global_faults

    @faults.setter
    def faults(self, faults: Faults | None) -> None:
        with self._lock:
            self._global_faults = faults
            self._reset_counters(None)

    def set_faults(self, path: str, faults: Faults | None) -> None:
        """Faults for one path; they replace the global Faults there. None removes them."""
        with self._lock:
            if faults is None:
                self._path_faults.pop(path, None)
            else:
                self._path_faults[path] = faults
            self._reset_counters(path)

    def clear_faults(self) -> None:
        with self._lock:
            self._global_faults = None
            self._path_faults.clear()
            self._spent.clear()
            self._gets_seen.clear()

    def _reset_counters(self, scope: str | None) -> None:
        self._spent.pop(scope, None)
        for key in [key for key in self._gets_seen if key[0] == scope]:
            del self._gets_seen[key]

    def _claim_faults(self, method: str, path: str) -> tuple[Faults | None, int]:
        """The Faults this request gets, spending its budget, and the GET count for change_after."""
        with self._lock:
            scope: str | None = path if path in self._path_faults else None
            faults = self._path_faults[path] if scope is not None else self._global_faults
            if faults is None or not faults.applies_to(method):
                return None, 0
            spent = self._spent.get(scope, 0)
            if faults.times is not None and spent >= faults.times + faults.skip:
                return None, 0
            self._spent[scope] = spent + 1
            if spent < faults.skip:
                return None, 0
            if method != "GET":
                return faults, 0
            seen = self._gets_seen.get((scope, path), 0) + 1
            self._gets_seen[(scope, path)] = seen
            return faults, seen

    def _snapshot(self, path: str, faults: Faults | None, get_number: int) -> _Resource | None:
        """The version this request serves; applies change_after once its count is reached."""
        with self._lock:
            resource = self._files.get(path)
            if (
                resource is not None
                and faults is not None
                and faults.change_after is not None
                and get_number == faults.change_after
            ):
                self.replace(path, resource.data[::-1])
            return resource

    # -- request log -----------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._log)

    @property
    def connections(self) -> int:
        with self._lock:
            return self._connections

    def clear_log(self) -> None:
        """Forget the logged requests and the connection count."""
        with self._lock:
            self._log.clear()
            self._connections = 0

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._log.append(request)

    # -- accepting -------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        assert self._listener is not None and self._wake_r is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._stopping.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self._wake_r:
                        return
                    self._accept_one()

    def _accept_one(self) -> None:
        assert self._listener is not None
        try:
            sock, _ = self._listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        sock.setblocking(True)
        # Without it, headers and body written separately can stall 40 ms on delayed ACKs.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        thread = threading.Thread(
            target=self._serve_connection, args=(sock,), name="FaultServer-conn", daemon=True
        )
        with self._lock:
            self._connections += 1
            self._open_sockets.add(sock)
            self._threads.add(thread)
        thread.start()

    # -- one connection --------------------------------------------------------------------

    def _serve_connection(self, sock: socket.socket) -> None:
        conn = h11.Connection(h11.SERVER)
        ending: _Ending = "fin"
        try:
            if self._ssl_context is not None:
                sock = self._start_tls(sock, self._ssl_context)
            while not self._stopping.is_set():
                ending = self._serve_one(sock, conn)
                if ending != "keep":
                    break
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    ending = "fin"
                    break
                conn.start_next_cycle()
        except (_ConnectionDone, OSError):
            pass
        finally:
            self._close(sock, ending)
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _start_tls(self, sock: socket.socket, context: ssl.SSLContext) -> ssl.SSLSocket:
        # The handshake runs here, in the connection's thread: a client that rejects the
        # certificate ends only its own connection.
        tls = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        with self._lock:
            # The wrapper owns the descriptor now: stop() must shut that one down.
            self._open_sockets.discard(sock)
            self._open_sockets.add(tls)
        try:
            # A client that never finishes the handshake must not pin this thread.
            tls.settimeout(_CLOSE_GRACE * 5)
            tls.do_handshake()
            tls.settimeout(None)
        except BaseException:
            with self._lock:
                self._open_sockets.discard(tls)
            tls.close()
            raise
        return tls

    def _serve_one(self, sock: socket.socket, conn: h11.Connection) -> _Ending:
        """Read one request and answer it; says how the connection must go on."""
        try:
            request = self._read_request(sock, conn)
        except h11.RemoteProtocolError as exc:
            return self._send_protocol_error(sock, conn, exc)
        self._record(request)
        faults, get_number = self._claim_faults(request.method, request.path)
        if faults is not None and faults.delay and self._stopping.wait(faults.delay):
            raise _ConnectionDone
        if faults is not None and faults.reset_after == 0:
            return "reset"
        reply = self._answer(request, faults, get_number)
        plan = _plan_wire(reply, request.method, faults)
        if faults is not None and faults.early_hints and request.method == "GET":
            hint = h11.InformationalResponse(
                status_code=103, headers=[("Link", "</style.css>; rel=preload; as=style")]
            )
            sock.sendall(b"".join(conn.send(hint) or b"" for _ in range(faults.early_hints)))
        if faults is not None and faults.drip_head and request.method == "GET":
            self._transmit_dripped_head(sock, conn, plan, faults.drip_head)
        elif faults is not None and faults.endless_trailers and _has_body(plan, request.method):
            self._transmit_endless_trailers(sock, conn, plan, faults.endless_trailers)
        elif faults is not None and faults.throttle and request.method == "GET":
            self._transmit_paced(
                sock, conn, plan, step=16 * 1024, seconds_per_byte=1 / faults.throttle
            )
        elif faults is not None and faults.drip and request.method == "GET":
            self._transmit_paced(sock, conn, plan, step=1, seconds_per_byte=faults.drip)
        elif faults is not None and faults.endless and _has_body(plan, request.method):
            self._transmit_endless(sock, conn, plan)
        else:
            self._transmit(sock, conn, plan)
        return plan.ending

    def _read_request(self, sock: socket.socket, conn: h11.Connection) -> RecordedRequest:
        event = self._next_event(sock, conn)
        if not isinstance(event, h11.Request):
            raise _ConnectionDone
        # Request bodies mean nothing here, but must be consumed to reach the next request.
        while not isinstance(self._next_event(sock, conn), h11.EndOfMessage):
            pass
        return _recorded(event)

    def _next_event(self, sock: socket.socket, conn: h11.Connection) -> object:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(sock.recv(_RECV_SIZE))
                continue
            if isinstance(event, h11.ConnectionClosed):
                raise _ConnectionDone
            return event

    def _send_protocol_error(
        self, sock: socket.socket, conn: h11.Connection, exc: h11.RemoteProtocolError
    ) -> _Ending:
        if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            body = f"bad request: {exc}\n".encode()
            reply = _Reply(exc.error_status_hint, [("Content-Type", "text/plain")], body)
            with contextlib.suppress(h11.LocalProtocolError):
                self._transmit(sock, conn, _plan_wire(reply, "GET", None))
        return "fin"

    def _transmit(self, sock: socket.socket, conn: h11.Connection, plan: _WirePlan) -> None:
        # One sendall per answer: a reset must not overtake bytes still in our buffers.
        head = h11.Response(
            status_code=plan.status, headers=plan.headers, reason=_reason(plan.status)
        )
        out = [conn.send(head)]
        for piece in _pieces(plan.payload, plan.chunked):
            out.append(conn.send(h11.Data(data=piece)))
        if plan.ending == "keep":
            out.append(conn.send(h11.EndOfMessage()))
        sock.sendall(b"".join(data for data in out if data))

    def _transmit_paced(
        self,
        sock: socket.socket,
        conn: h11.Connection,
        plan: _WirePlan,
        *,
        step: int,
        seconds_per_byte: float,
    ) -> None:
        """The head at once, then the body ``step`` bytes at a time, each piece followed by a
        pause of ``seconds_per_byte`` per byte it held (``throttle``: 16 KiB pieces at a rate;
        ``drip``: one byte, then a gap). Stopping the server ends the pause."""
        head = h11.Response(
            status_code=plan.status, headers=plan.headers, reason=_reason(plan.status)
        )
        sock.sendall(conn.send(head) or b"")
        for piece in _pieces(plan.payload, plan.chunked):
            for i in range(0, len(piece), step):
                sent = piece[i : i + step]
                sock.sendall(conn.send(h11.Data(data=sent)) or b"")
                if self._stopping.wait(len(sent) * seconds_per_byte):
                    raise _ConnectionDone
        if plan.ending == "keep":
            sock.sendall(conn.send(h11.EndOfMessage()) or b"")

    def _transmit_dripped_head(
        self, sock: socket.socket, conn: h11.Connection, plan: _WirePlan, seconds: float
    ) -> None:
        """The head one byte at a time, ``seconds`` apart, then the body at once."""
        head = conn.send(
            h11.Response(status_code=plan.status, headers=plan.headers, reason=_reason(plan.status))
        )
        head = head or b""
        for i in range(len(head)):
            sock.sendall(head[i : i + 1])
            if self._stopping.wait(seconds):
                raise _ConnectionDone
        out = [conn.send(h11.Data(data=piece)) for piece in _pieces(plan.payload, plan.chunked)]
        if plan.ending == "keep":
            out.append(conn.send(h11.EndOfMessage()))
        sock.sendall(b"".join(data for data in out if data))

    def _transmit_endless_trailers(
        self, sock: socket.socket, conn: h11.Connection, plan: _WirePlan, seconds: float
    ) -> None:
        """A chunked body, its last chunk, then trailer lines ``seconds`` apart, forever."""
        headers = [(k, v) for k, v in plan.headers if k.lower() != "content-length"]
        headers.append(("Transfer-Encoding", "chunked"))
        head = h11.Response(status_code=plan.status, headers=headers, reason=_reason(plan.status))
        out = [conn.send(head)]
        out.extend(conn.send(h11.Data(data=piece)) for piece in _pieces(plan.payload, True))
        # h11 ends trailers itself, so the endless ones go out raw.
        sock.sendall(b"".join(data for data in out if data) + b"0\r\n")
        line = 0
        while not self._stopping.wait(seconds):
            sock.sendall(b"X-Trailer-%d: %d\r\n" % (line, line))
            line += 1
        raise _ConnectionDone

    def _transmit_endless(self, sock: socket.socket, conn: h11.Connection, plan: _WirePlan) -> None:
        """The planned head and body, then filler until the client hangs up (sendall fails)."""
        head = h11.Response(
            status_code=plan.status, headers=plan.headers, reason=_reason(plan.status)
        )
        out = [conn.send(head)]
        for piece in _pieces(plan.payload, plan.chunked):
            out.append(conn.send(h11.Data(data=piece)))
        sock.sendall(b"".join(data for data in out if data))
        # Past the declared framing h11 refuses to write, so the filler goes out raw (as raw
        # chunks when chunked: a chunked body that never ends, rather than garbage).
        filler = b"x" * 16384
        if plan.chunked:
            filler = b"%x\r\n%s\r\n" % (len(filler), filler)
        while not self._stopping.is_set():
            sock.sendall(filler)
        raise _ConnectionDone

    def _close(self, sock: socket.socket, ending: _Ending) -> None:
        with self._lock:
            self._open_sockets.discard(sock)
        try:
            if ending == "reset":
                self._wait_until_delivered(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                self._finish_gracefully(sock)
        except OSError:
            pass
        finally:
            sock.close()

    def _finish_gracefully(self, sock: socket.socket) -> None:
        # Closing with unread bytes in the receive buffer makes the kernel send RST instead
        # of FIN, so say FIN first, then read until the client hangs up too.
        sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + _CLOSE_GRACE
        while not self._stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            sock.settimeout(remaining)
            try:
                if not sock.recv(_RECV_SIZE):
                    return
            except TimeoutError:
                return

    def _wait_until_delivered(self, sock: socket.socket) -> None:
        # An abortive close throws away unacknowledged bytes, which would make reset_after=N
        # deliver fewer than N bytes; wait (Linux only) until the peer has acknowledged them.
        deadline = time.monotonic() + _CLOSE_GRACE
        while time.monotonic() < deadline and not self._stopping.is_set():
            pending = _unacknowledged_bytes(sock)
            if not pending:
                return
            time.sleep(0.001)

    # -- answering -------------------------------------------------------------------------

    def _answer(self, request: RecordedRequest, faults: Faults | None, get_number: int) -> _Reply:
        if request.method not in ("GET", "HEAD"):
            return _text_reply(405, "method not allowed", [("Allow", "GET, HEAD")])
        if faults is not None:
            early = _early_fault_reply(request.method, faults)
            if early is not None:
                return early
        resource = self._snapshot(request.path, faults, get_number)
        if resource is None:
            return _text_reply(404, "not found")
        return _serve_resource(request, resource, faults or Faults())


# -- pure helpers: building answers --------------------------------------------------------


def _make_resource(data: bytes, version: int, settings: _FileSettings) -> _Resource:
    digest = hashlib.sha256(version.to_bytes(8, "big") + data).hexdigest()[:20]
    etag = {"strong": f'"{digest}"', "weak": f'W/"{digest}"', "none": None}[settings.etag_mode]
    last_modified = None
    if settings.last_modified:
        last_modified = email.utils.formatdate(settings.mtime_base + version, usegmt=True)
    return _Resource(data, version, etag, last_modified, settings.content_type)


def _recorded(event: h11.Request) -> RecordedRequest:
    headers: dict[str, str] = {}
    for name, value in event.headers:
        key, text = name.decode("latin-1").lower(), value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    target = event.target.decode("latin-1")
    path, _, query = target.partition("?")
    return RecordedRequest(event.method.decode("latin-1"), path, headers, query)


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def _text_reply(status: int, text: str, extra: list[tuple[str, str]] | None = None) -> _Reply:
    headers = [("Content-Type", "text/plain; charset=utf-8"), *(extra or [])]
    return _Reply(status, headers, (text + "\n").encode())


def _early_fault_reply(method: str, faults: Faults) -> _Reply | None:
    """Answers that faults give without looking at the file at all."""
    if method == "HEAD" and faults.refuse_head:
        return _text_reply(405, "HEAD refused", [("Allow", "GET")])
    if faults.redirect_to is not None:
        return _text_reply(faults.redirect_status, "moved", [("Location", faults.redirect_to)])
    if faults.status is not None:
        extra = [("Retry-After", faults.retry_after)] if faults.retry_after is not None else []
        if faults.status in (204, 304):  # statuses that cannot carry a body
            return _Reply(faults.status, extra)
        return _text_reply(faults.status, "injected status", extra)
    return None


def _serve_resource(request: RecordedRequest, resource: _Resource, faults: Faults) -> _Reply:
    headers = request.headers
    if not _if_match_passes(headers.get("if-match"), resource):
        return _Reply(412, _validators(resource))
    if not faults.ignore_conditionals and _not_modified(request, resource):
        return _Reply(304, _validators(resource))
    range_value = headers.get("range")
    # RFC 9110 14.2: only GET has range semantics; a failed If-Range means "send it all".
    if (
        request.method != "GET"
        or range_value is None
        or faults.ignore_range
        or not _if_range_passes(headers.get("if-range"), resource)
    ):
        return _full_reply(resource)
    if faults.always_416:
        return _unsatisfiable_reply(resource)
    specs = _parse_range_header(range_value)
    if specs is None or (faults.max_ranges is not None and len(specs) > faults.max_ranges):
        return _full_reply(resource)
    if faults.suffix_501 and any(spec.is_suffix for spec in specs):
        return _text_reply(501, "suffix ranges not implemented")
    ranges = _resolve_ranges(specs, len(resource.data))
    if not ranges:
        return _unsatisfiable_reply(resource)
    if faults.multipart_parts:
        first = ranges[0][0]
        count = min(faults.multipart_parts, len(resource.data) - first)
        return _multipart_reply(resource, [(i, i) for i in range(first, first + count)], faults)
    if len(ranges) == 1:
        return _single_range_reply(resource, ranges[0], faults)
    return _multipart_reply(resource, ranges, faults)


def _validators(resource: _Resource) -> list[tuple[str, str]]:
    headers = [("Accept-Ranges", "bytes")]
    if resource.etag is not None:
        headers.append(("ETag", resource.etag))
    if resource.last_modified is not None:
        headers.append(("Last-Modified", resource.last_modified))
    return headers


def _full_reply(resource: _Resource) -> _Reply:
    headers = [*_validators(resource), ("Content-Type", resource.content_type)]
    return _Reply(200, headers, resource.data)


def _unsatisfiable_reply(resource: _Resource) -> _Reply:
    headers = [*_validators(resource), ("Content-Range", f"bytes */{len(resource.data)}")]
    return _Reply(416, headers)


def _shaped(span: tuple[int, int], size: int, faults: Faults) -> tuple[int, int]:
    """The range a shifting or block-aligning server answers ``span`` with (inclusive)."""
    first, last = span
    shift, block = faults.content_range_shift, faults.align_ranges
    first, last = first + shift, last + shift
    if block:
        first, last = first - first % block, last - last % block + block - 1
    return min(max(first, 0), size - 1), min(max(last, 0), size - 1)


def _single_range_reply(resource: _Resource, span: tuple[int, int], faults: Faults) -> _Reply:
    first, last = _shaped(span, len(resource.data), faults)
    headers = [
        *_validators(resource),
        ("Content-Type", resource.content_type),
        ("Content-Range", _content_range(first, last, len(resource.data), faults)),
    ]
    return _Reply(206, headers, resource.data[first : last + 1])


def _multipart_reply(resource: _Resource, spans: list[tuple[int, int]], faults: Faults) -> _Reply:
    boundary = "rangeio-" + secrets.token_hex(12)
    parts = []
    shaped = [_shaped(span, len(resource.data), faults) for span in spans]
    for i, (first, last) in enumerate(shaped):
        body = resource.data[first : last + 1]
        if faults.overlapping_parts and len(shaped) > 1 and i == len(shaped) - 1:
            first, last = shaped[0]
            body = bytes(255 - b for b in resource.data[first : last + 1])
        content_range = _content_range(first, last, len(resource.data), faults)
        head = (
            f"--{boundary}\r\n"
            f"Content-Type: {resource.content_type}\r\n"
            f"Content-Range: {content_range}\r\n\r\n"
        )
        parts.append(head.encode("latin-1") + body + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode("latin-1"))
    declared = {None: f"; boundary={boundary}", "missing": "", "wrong": "; boundary=not-the-one"}
    headers = [
        *_validators(resource),
        ("Content-Type", "multipart/byteranges" + declared[faults.bad_boundary]),
    ]
    return _Reply(206, headers, b"".join(parts))


def _content_range(first: int, last: int, total: int, faults: Faults) -> str:
    total_text = "*" if faults.star_total else str(total + faults.total_delta)
    return f"bytes {first}-{last}/{total_text}"


# -- pure helpers: headers -----------------------------------------------------------------


def _parse_range_header(value: str) -> list[_RangeSpec] | None:
    """The range-specs of a bytes Range header, or None if it is malformed (and so ignored)."""
    unit, sep, range_set = value.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    specs = []
    for item in range_set.split(","):
        item = item.strip()
        if not item:
            continue  # RFC 9110 list syntax tolerates empty elements
        match = _RANGE_SPEC.fullmatch(item)
        if match is None or match.group(0) == "-":
            return None
        first_text, last_text = match.groups()
        if not first_text:
            specs.append(_RangeSpec(None, int(last_text)))
            continue
        first, last = int(first_text), int(last_text) if last_text else None
        if last is not None and last < first:
            return None
        specs.append(_RangeSpec(first, last))
    return specs or None


def _resolve_ranges(specs: list[_RangeSpec], length: int) -> list[tuple[int, int]]:
    """Inclusive (first, last) pairs of the satisfiable specs, in request order."""
    spans = []
    for spec in specs:
        if spec.first is None:
            suffix = spec.last or 0
            if suffix > 0 and length > 0:
                spans.append((max(0, length - suffix), length - 1))
        elif spec.first < length:
            last = length - 1 if spec.last is None else min(spec.last, length - 1)
            spans.append((spec.first, last))
    return spans


def _split_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _if_match_passes(value: str | None, resource: _Resource) -> bool:
    if value is None or value.strip() == "*":
        return True
    return any(_strong_match(tag, resource.etag) for tag in _split_list(value))


def _if_range_passes(value: str | None, resource: _Resource) -> bool:
    if value is None:
        return True
    value = value.strip()
    if value.startswith(('"', "W/")):
        return _strong_match(value, resource.etag)
    return _same_date(value, resource.last_modified)


def _not_modified(request: RecordedRequest, resource: _Resource) -> bool:
    """RFC 9110 §13.1.2/§13.1.3 for GET and HEAD: If-None-Match (weak comparison) decides when
    sent; else If-Modified-Since, when the file has not changed since that date."""
    if request.method not in ("GET", "HEAD"):
        return False
    none_match = request.headers.get("if-none-match")
    if none_match is not None:
        if none_match.strip() == "*":
            return True
        tags = [t.removeprefix("W/") for t in _split_list(none_match)]
        return resource.etag is not None and resource.etag.removeprefix("W/") in tags
    since = request.headers.get("if-modified-since")
    if since is None or resource.last_modified is None:
        return False
    try:
        asked = email.utils.parsedate_to_datetime(since)
        modified = email.utils.parsedate_to_datetime(resource.last_modified)
    except (TypeError, ValueError):
        return False
    return modified <= asked


def _strong_match(tag: str, etag: str | None) -> bool:
    # Strong comparison: a weak tag on either side never matches.
    return etag is not None and not etag.startswith("W/") and tag == etag


def _same_date(value: str, last_modified: str | None) -> bool:
    if last_modified is None:
        return False
    try:
        return email.utils.parsedate_to_datetime(value) == email.utils.parsedate_to_datetime(
            last_modified
        )
    except (TypeError, ValueError):
        return False


# -- pure helpers: framing -----------------------------------------------------------------


def _plan_wire(reply: _Reply, method: str, faults: Faults | None) -> _WirePlan:
    """Frame a reply: encoding, length, and the transfer faults that bend the framing."""
    headers = [*reply.headers, ("Date", email.utils.formatdate(usegmt=True))]
    body = reply.body
    faulty = faults is not None and method == "GET" and reply.status in (200, 206)
    if faulty and faults is not None:
        headers.extend(faults.extra_headers)
        headers.extend((f"X-Flood-{i}", "f") for i in range(faults.header_flood))
        if faults.huge_header:
            headers.append(("X-Huge", "h" * faults.huge_header))
    if faulty and faults is not None and faults.gzip:
        body = gzip.compress(body, mtime=0)
        headers.append(("Content-Encoding", "gzip"))
    if method == "HEAD":
        headers.append(("Content-Length", str(len(body))))
        return _WirePlan(reply.status, headers, b"", False, "keep")
    if not faulty or faults is None:
        headers.append(("Content-Length", str(len(body))))
        return _WirePlan(reply.status, headers, body, False, "keep")
    return _plan_faulty_body(reply.status, headers, body, faults)


def _plan_faulty_body(
    status: int, headers: list[tuple[str, str]], body: bytes, faults: Faults
) -> _WirePlan:
    payload = body
    ending: _Ending = "keep"
    if faults.chunked:
        headers.append(("Transfer-Encoding", "chunked"))
    else:
        declared = len(body) + faults.content_length_delta
        if faults.content_length_delta > 0:
            ending = "fin"  # the client waits for bytes that never come, then sees FIN
        elif faults.content_length_delta < 0:
            declared = max(0, declared)
            payload = body[:declared]
        headers.append(("Content-Length", str(declared)))
    if faults.truncate_after is not None:
        payload, ending = payload[: faults.truncate_after], "fin"
    if faults.reset_after is not None:
        payload, ending = payload[: faults.reset_after], "reset"
    return _WirePlan(status, headers, payload, faults.chunked, ending)


def _has_body(plan: _WirePlan, method: str) -> bool:
    return method == "GET" and plan.status in (200, 206)


def _pieces(payload: bytes, chunked: bool) -> Iterator[bytes]:
    # Several chunks, so a chunked answer really exercises the client's chunk decoder.
    if not payload:
        return
    if not chunked:
        yield payload
        return
    step = max(1, -(-len(payload) // 3))
    for start in range(0, len(payload), step):
        yield payload[start : start + step]


def _unacknowledged_bytes(sock: socket.socket) -> int:
    if fcntl is None or termios is None:  # pragma: no cover - not on POSIX
        return 0
    try:
        raw = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, struct.pack("i", 0))
    except OSError:
        return 0
    return int(struct.unpack("i", raw)[0])
