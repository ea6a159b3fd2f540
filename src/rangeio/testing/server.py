"""A loopback HTTP/1.1 byte-range server (h11, one thread per connection) that misbehaves on demand.

This module is the wire (sockets, threads, h11 framing); the switches are in ``faults.py``, the
pure answer builders in ``answers.py``."""

from __future__ import annotations

import contextlib
import selectors
import socket
import ssl
import struct
import threading
import time
from collections.abc import Mapping

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

from rangeio.testing.answers import (  # noqa: E402 - after the h11 check
    EtagMode,
    RecordedRequest,
    _early_fault_reply,
    _Ending,
    _FileSettings,
    _has_body,
    _make_resource,
    _pieces,
    _plan_wire,
    _reason,
    _recorded,
    _Reply,
    _Resource,
    _serve_resource,
    _text_reply,
    _WirePlan,
)
from rangeio.testing.faults import Faults  # noqa: E402

__all__ = ["FaultServer", "Faults", "RecordedRequest"]


_RECV_SIZE = 65536
# How long a closing connection waits for the peer: long enough for a client to read a
# truncated answer, short enough that a client which never closes does not pin a thread.
_CLOSE_GRACE = 1.0
_JOIN_TIMEOUT = 2.0
# Faults.link_rate's bucket depth: the bytes a late-waking sender may catch up at once.
_LINK_BURST = 256 * 1024


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
        self._link_free_at = 0.0  # when the shared link (Faults.link_rate) is next free
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
        elif (
            faults is not None and (faults.throttle or faults.link_rate) and request.method == "GET"
        ):
            self._transmit_paced(
                sock,
                conn,
                plan,
                step=16 * 1024,
                seconds_per_byte=1 / faults.throttle if faults.throttle else 0.0,
                link_rate=faults.link_rate,
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
        link_rate: float = 0.0,
    ) -> None:
        """The head at once, then the body ``step`` bytes at a time, each piece followed by a
        pause of ``seconds_per_byte`` per byte it held (``throttle``: 16 KiB pieces at a rate;
        ``drip``: one byte, then a gap), and with ``link_rate`` each piece waits for its turn on
        the link all answers share. Stopping the server ends the pause."""
        head = h11.Response(
            status_code=plan.status, headers=plan.headers, reason=_reason(plan.status)
        )
        sock.sendall(conn.send(head) or b"")
        for piece in _pieces(plan.payload, plan.chunked):
            for i in range(0, len(piece), step):
                sent = piece[i : i + step]
                if link_rate and self._stopping.wait(self._link_turn(len(sent), link_rate)):
                    raise _ConnectionDone
                sock.sendall(conn.send(h11.Data(data=sent)) or b"")
                if self._stopping.wait(len(sent) * seconds_per_byte):
                    raise _ConnectionDone
        if plan.ending == "keep":
            sock.sendall(conn.send(h11.EndOfMessage()) or b"")

    def _link_turn(self, size: int, rate: float) -> float:
        """Seconds to wait before sending ``size`` bytes on the shared link (its time is booked
        piece by piece, in the order answers ask). Time the link stood idle counts up to a
        burst of _LINK_BURST bytes, so that one answer whose thread wakes late still gets the
        whole rate (as a token bucket's depth does), and more answers get no more."""
        with self._lock:
            now = time.monotonic()
            start = max(now - _LINK_BURST / rate, self._link_free_at)
            self._link_free_at = start + size / rate
            return self._link_free_at - now

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


def _unacknowledged_bytes(sock: socket.socket) -> int:
    if fcntl is None or termios is None:  # pragma: no cover - not on POSIX
        return 0
    try:
        raw = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, struct.pack("i", 0))
    except OSError:
        return 0
    return int(struct.unpack("i", raw)[0])
