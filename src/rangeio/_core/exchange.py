"""The state machine for getting one byte range: redirects, retries, resuming cut bodies, length checks.

A program drives it with a loop (``drive`` in ``rangeio/_engine/drive.py``, for every face)::

    while (request := exchange.next_request(now)) is not None:
        send it; feed exchange.on_response(...), then on_data(...) per chunk, then on_end();
        on a transport error feed exchange.on_error(exc); sleep whatever a Wait says.

In the style of h11, the machine has explicit states and refuses a call out of order with
ExchangeStateError (see ``State``): a caller that forgets a step fails at once, instead of
getting bytes of the wrong request.

The machine does no I/O and never sleeps; every decision about the bytes lives here so that the
sync and async shells cannot drift apart. Downloads use its download mode, a subclass that only
changes what a download asks (If-Range) and how it reads each answer
(``rangeio/_core/download_exchange.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import Enum

from rangeio._core.headers import RangeSpec, format_range
from rangeio._core.identity import Identity
from rangeio._core.multipart import MultipartParser, Part
from rangeio._core.ranges import ByteRange, RangeSet
from rangeio._core.records import Record
from rangeio._core.redirects import (
    ResolvedUrl,
    expiry_of,
    follow,
    headers_for,
    same_origin,
)
from rangeio._core.retry import RetryPolicy, is_retryable
from rangeio._core.validate import (
    Changed,
    Failure,
    Full,
    Multipart,
    NotModified,
    Partial,
    Redirect,
    Unsatisfiable,
    Verdict,
    expected_range,
    judge,
)
from rangeio.errors import (
    NetworkError,
    NetworkTimeoutError,
    ProtocolError,
    RangeioError,
    RangeNotSupportedError,
    RedirectError,
)

# Sent on every request: we splice byte offsets, so the body must be the file's own bytes.
# §12.5.3 identity, and RFC 9111 §5.2.1.6 no-transform so that proxies do not recompress either.
BASE_HEADERS: Mapping[str, str] = {
    "Accept-Encoding": "identity",
    "Cache-Control": "no-transform",
}
# A 206 wider than asked (a cache rounding ranges out to its blocks) is read from its first byte,
# and the bytes before the ones asked for are dropped. Caches align to blocks of a few MiB at
# most (nginx's slice module is usually set to 1 MiB); a head wider than this is a server that
# sends far more than it is asked for, refused like a 200 too big for the cache.
MAX_WIDENED_HEAD = 16 * 1024 * 1024
# Bytes of a 206 shifted past the first byte asked for are held until the bytes before them
# arrive; past this much, the rest of that body is left unread and asked for again later.
MAX_HELD_AHEAD = 16 * 1024 * 1024
# Statuses from a remembered (post-redirect) URL that suggest it went stale: retry from the
# original URL once before believing them.
_STALE_URL_STATUSES = frozenset({401, 403, 404, 410})


# The values below are Records (`records.py`), not dataclasses: made per request, and cheaper
# to import.


class Request(Record):
    """One request for a transport to send as it is. ``credentials``: whether a borrowed client
    may add what it was configured with (its default headers, auth, cookie jar, netrc): only on
    the origin of the URL the user gave. A transport sends a request with ``credentials=False``
    bare: nothing of the client's is added to it. No default, and built only by request_to(), so
    that no caller can forget to decide."""

    __slots__ = ("method", "url", "headers", "credentials")
    method: str
    url: str
    headers: dict[str, str]
    credentials: bool

    def __init__(self, method: str, url: str, headers: dict[str, str], credentials: bool) -> None:
        object.__setattr__(self, "method", method)
        object.__setattr__(self, "url", url)
        object.__setattr__(self, "headers", headers)
        object.__setattr__(self, "credentials", credentials)


def request_to(
    method: str,
    url: str,
    first_url: str,
    user_headers: Mapping[str, str],
    *extra: Mapping[str, str],
) -> Request:
    """THE request for one hop to ``url`` of an exchange that began at ``first_url``: the
    caller's headers as they may follow it (headers_for), rangeio's own, then ``extra`` (Range,
    preconditions); the client's own credentials only on the first URL's origin."""
    headers = headers_for(url, first_url, user_headers)
    headers.update(BASE_HEADERS)
    for more in extra:
        headers.update(more)
    return Request(method, url, headers, credentials=same_origin(url, first_url))


class Wait(Record):
    """Sleep this long, then ask for the next request."""

    __slots__ = ("seconds",)
    seconds: float

    def __init__(self, seconds: float) -> None:
        object.__setattr__(self, "seconds", seconds)


class ReadBody(Record):
    """Read the body and feed it to ``on_data``; ``expected`` is its length when known."""

    __slots__ = ("expected",)
    expected: int | None

    def __init__(self, expected: int | None) -> None:
        object.__setattr__(self, "expected", expected)


class Skip(Record):
    """Discard this response's body (a redirect or retry follows); ask for the next request."""

    __slots__ = ()


class Result(Record):
    """The exchange is over. ``range`` is where ``data`` sits in the file; ``full`` is True when the
    server sent the whole file (200) instead of a range.

    ``pieces``: every (offset, bytes) piece received, in arrival order: one for a single range,
    one per part for multipart/byteranges (where ``data`` and ``range`` are empty).
    ``content_type``: the answer's Content-Type (a 206 for one range, or a 200), a hint of the
    file's format. ``date``: the answer's Date (the disk cache asks whether a Last-Modified is
    strong, §8.8.2.2). ``not_modified``: a 304 answered a conditional request; ``identity``
    holds its validators, nothing else in the result is meaningful."""

    __slots__ = (
        "data",
        "range",
        "total",
        "identity",
        "full",
        "unsatisfiable",
        "url",
        "pieces",
        "multipart",
        "content_type",
        "date",
        "not_modified",
    )
    data: bytes
    range: ByteRange
    total: int | None
    identity: Identity
    full: bool
    unsatisfiable: bool
    url: ResolvedUrl
    pieces: tuple[tuple[int, bytes], ...]
    multipart: bool
    content_type: str | None
    date: str | None
    not_modified: bool

    def __init__(
        self,
        data: bytes,
        range: ByteRange,
        total: int | None,
        identity: Identity,
        full: bool,
        unsatisfiable: bool,
        url: ResolvedUrl,
        pieces: tuple[tuple[int, bytes], ...] = (),
        multipart: bool = False,
        content_type: str | None = None,
        date: str | None = None,
        not_modified: bool = False,
    ) -> None:
        set_field = object.__setattr__
        set_field(self, "data", data)
        set_field(self, "range", range)
        set_field(self, "total", total)
        set_field(self, "identity", identity)
        set_field(self, "full", full)
        set_field(self, "unsatisfiable", unsatisfiable)
        set_field(self, "url", url)
        set_field(self, "pieces", pieces)
        set_field(self, "multipart", multipart)
        set_field(self, "content_type", content_type)
        set_field(self, "date", date)
        set_field(self, "not_modified", not_modified)


Action = Wait | ReadBody | Skip


class State(Enum):
    """Where an exchange stands; each call is legal in some states only.

    ``READY`` --next_request--> ``SENT`` --on_response--> ``BODY`` (ReadBody) or back to
    ``READY`` (Skip, Wait: a redirect, a retry) or ``DONE`` (a 304, a HEAD, an empty file).
    ``BODY``: on_data per chunk, then on_end or on_error, back to ``READY`` (a resume) or
    ``DONE``. ``SENT`` --on_error--> ``READY`` (a retry) or ``DONE``. In ``DONE``,
    next_request is None and ``result`` is set. Any error raised by a call ends the exchange in
    ``FAILED``: every later call raises.

    ``RESTART`` (downloads only, `_core/download_exchange.py`): on_response judged a 200 whose body
    restarts the file from byte 0; the caller resets its progress durably, then calls
    ``restarted()`` --> ``BODY``. No byte is handed over before that."""

    READY = "ready"
    SENT = "sent"
    RESTART = "restart"
    BODY = "body"
    DONE = "done"
    FAILED = "failed"


class ExchangeStateError(RuntimeError):
    """A RangeExchange was called out of order: a bug of its caller, never a server fault."""


class RangeExchange:
    """Fetch ``spec`` (or the whole file when ``spec`` is None) from one resource. A sequence of
    closed specs asks for several ranges in one multipart/byteranges request (§14.6).

    ``pinned`` is the identity every response must agree with (None at open, when the first
    response defines it). ``max_full_body`` bounds a 200 answer to a range request: larger ones
    raise RangeNotSupportedError instead of being buffered. ``conditional`` headers
    (If-None-Match / If-Modified-Since, from the disk cache) go on every request of the
    exchange, and a 304 then ends it with ``Result.not_modified``.
    """

    def __init__(
        self,
        spec: RangeSpec | Sequence[RangeSpec] | None,
        *,
        first_url: str,
        target: ResolvedUrl,
        user_headers: Mapping[str, str],
        pinned: Identity | None,
        retry: RetryPolicy,
        max_full_body: int | None,
        method: str = "GET",
        allow_downgrade: bool = False,
        conditional: Mapping[str, str] | None = None,
        follow_redirects: bool = True,
    ) -> None:
        specs: tuple[RangeSpec, ...]
        if spec is None:
            specs = ()
        elif isinstance(spec, RangeSpec):
            specs = (spec,)
        else:
            specs = tuple(spec)
            if not specs or any(s.start is None or s.stop is None for s in specs):
                raise ValueError("several ranges must all be closed ranges")
        self._spec = spec
        self._resume_specs = specs
        self._parser: MultipartParser | None = None
        # Whether the multipart body's end is fixed by its framing (Content-Length or chunked)
        # rather than by the connection closing.
        self._framed = False
        self._parts: list[Part] = []
        self._first_url = first_url
        self._target = target
        self._url = target.url
        self._user_headers = user_headers
        self._pinned = pinned
        self._retry = retry
        self._max_full_body = max_full_body
        self._method = method
        self._allow_downgrade = allow_downgrade
        self._follow_redirects = follow_redirects
        self._failures = 0
        self._redirects = 0
        self._redirected = False
        self._tried_first_url = target.url == first_url
        self._buffer = _Chunks()
        self._range_start = 0
        # A single range is delivered in order: ``_want`` is all of it (set by the first 206),
        # the buffer holds its bytes from ``_range_start`` on, ``_ahead`` holds pieces of it that
        # arrived early (a shifted 206), in order, each after the buffer's end.
        self._want: ByteRange | None = None
        self._ahead: list[tuple[int, bytearray]] = []
        # Of the current 206: where its body starts in the file, and where the bytes it is
        # asked for end (bytes past that, from a widened answer, are not needed).
        self._body_at = 0
        self._stop = 0
        # Set when the rest of the current body is not needed: it is left unread.
        self._enough = False
        self._verdict: Partial | Full | Multipart | None = None
        self._expected: int | None = None
        self._received = 0
        self._result: Result | None = None
        self._content_type: str | None = None
        self._date: str | None = None
        self._conditional = dict(conditional or {})
        # When the redirect target expires, fixed when the redirect is followed (expiry_of).
        self._expires_at: float | None = None
        self._state = State.READY
        self.requests_sent = 0
        self.retries = 0
        # The failure the exchange is about to retry (a Wait was returned), until the next
        # request: a caller that keeps its own account of failures (a mirror's) reads it.
        self.failure: RangeioError | None = None

    # -- requests ---------------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    def _expect(self, call: str, *states: State) -> None:
        if self._state not in states:
            if self._state is State.FAILED:
                raise ExchangeStateError(f"{call}() after the exchange failed")
            wanted = " or ".join(s.name for s in states)
            raise ExchangeStateError(
                f"{call}() in state {self._state.name} (legal only in {wanted})"
            )

    def _settle(self, action: Action | None) -> None:
        """The state after a call that returned ``action``."""
        if self.done:
            self._state = State.DONE
        elif isinstance(action, ReadBody):
            self._state = State.BODY
        else:
            self._state = State.READY

    def next_request(self, now: float) -> Request | None:
        """The next request to send, or None once the exchange is DONE. Legal in READY (and
        DONE); a request already sent must be answered (on_response, on_error) first."""
        if self._state is State.DONE:
            return None
        self._expect("next_request", State.READY)
        self._state = State.SENT
        if not self._redirected and not self._target.usable(now):
            self._url = self._first_url
            # This is the fallback already: a 404 from the first URL is the final answer, not
            # a reason to "retry from the first URL" once more.
            self._tried_first_url = True
        request = request_to(
            self._method, self._url, self._first_url, self._user_headers, self._request_headers()
        )
        self.failure = None
        self.requests_sent += 1
        self._received = 0
        self._expected = None
        self._verdict = None
        self._parser = None
        self._enough = False
        return request

    def _request_headers(self) -> dict[str, str]:
        """Range and the preconditions: If-Match of the pinned version (a changed file fails
        with 412 instead of being spliced), and the disk cache's conditional headers."""
        extra: dict[str, str] = {}
        if self._resume_specs:
            extra["Range"] = format_range(self._resume_specs)
        if self._pinned is not None:
            extra.update(self._pinned.precondition_headers())
        extra.update(self._conditional)
        return extra

    @property
    def result(self) -> Result:
        if self._result is None:
            raise ExchangeStateError(f"result of an exchange in state {self._state.name}")
        return self._result

    @property
    def done(self) -> bool:
        return self._result is not None

    def _guarded(self, call: str, states: tuple[State, ...]) -> _Transition:
        self._expect(call, *states)
        return _Transition(self)

    # -- responses --------------------------------------------------------------------------

    def on_response(self, status: int, headers: Mapping[str, str], now: float) -> Action:
        """The head of the answer to the request sent (SENT)."""
        with self._guarded("on_response", (State.SENT,)):
            action = self._on_response(status, headers, now)
            self._settle(action)
            return action

    def _on_response(self, status: int, headers: Mapping[str, str], now: float) -> Action:
        verdict = judge(
            self._resume_specs,
            status,
            headers,
            self._pinned,
            now=now,
            conditional=bool(self._conditional),
        )
        if isinstance(verdict, Redirect):
            return self._follow(verdict, now)
        if isinstance(verdict, NotModified):
            self._result = Result(
                b"",
                ByteRange(0, 0),
                None,
                verdict.identity,
                full=False,
                unsatisfiable=False,
                url=self._resolved(),
                not_modified=True,
            )
            return Skip()
        if isinstance(verdict, Failure):
            return self._after_failure(verdict)
        if isinstance(verdict, Unsatisfiable):
            return self._unsatisfiable(verdict)
        if self._url != self._first_url:
            # This redirect target works. If it later answers 401/403/404/410 (a presigned URL
            # expiring in the middle of a long body), asking the first URL again is worth one
            # more try. Bounded: it takes a good answer in between, and the cut that led back
            # here spent a retry.
            self._tried_first_url = False
        if isinstance(verdict, (Partial, Full)):
            self._content_type = headers.get("content-type")
            self._date = headers.get("date")
        if isinstance(verdict, Partial):
            return self._partial(verdict)
        if isinstance(verdict, Full):
            return self._full(verdict)
        if isinstance(verdict, Multipart):
            size = self._pinned.size if self._pinned is not None else None
            wanted = [
                r
                for r in (expected_range(s, size, self._pinned) for s in self._resume_specs)
                if r is not None
            ]
            self._parser = MultipartParser(verdict.boundary, wanted, size)
            encoding = headers.get("transfer-encoding", "").lower()
            self._framed = "content-length" in headers or "chunked" in encoding
            self._verdict = verdict
            return self._read(None)
        raise verdict.error()

    def _read(self, expected: int | None) -> Action:
        if self._method == "HEAD":
            self._finish()
            return Skip()
        return ReadBody(expected)

    def _partial(self, verdict: Partial) -> Action:
        self._verdict = verdict
        self._expected = verdict.range.length
        wanted = verdict.wanted
        if self._want is None:
            self._want = wanted
            self._range_start = wanted.start
        self._stop = wanted.stop
        self._body_at = verdict.range.start
        head = self._cursor() - verdict.range.start
        if head > MAX_WIDENED_HEAD:
            raise RangeNotSupportedError(
                f"server answered {wanted} with {verdict.range}: {head} bytes before the ones "
                f"asked for (more than {MAX_WIDENED_HEAD})"
            )
        return self._read(verdict.range.length)

    def _cursor(self) -> int:
        """The first byte of the range not received yet in order."""
        return self._range_start + len(self._buffer)

    def _full(self, verdict: Full) -> Action:
        if verdict.range_ignored and self._max_full_body is not None:
            if verdict.length is not None and verdict.length > self._max_full_body:
                raise RangeNotSupportedError(
                    f"server ignores Range and the whole file ({verdict.length} bytes) exceeds "
                    f"the cache budget of {self._max_full_body} bytes"
                )
        # A 200 restarts the body from byte 0 whatever was received before.
        self._buffer = _Chunks()
        self._parts = []
        self._range_start = 0
        self._want = None
        self._ahead = []
        self._verdict = verdict
        self._expected = verdict.length
        return self._read(verdict.length)

    def _follow(self, verdict: Redirect, now: float) -> Action:
        if not self._follow_redirects:
            raise RedirectError(
                f"{verdict.status} redirect to {verdict.location!r} not followed "
                "(allow_redirects=False)",
                status=verdict.status,
                location=verdict.location,
            )
        self._redirects += 1
        self._url = follow(
            self._url,
            verdict.location,
            self._redirects,
            self._first_url,
            allow_downgrade=self._allow_downgrade,
        )
        self._redirected = True
        # Fixed now, when the redirect answer hands the URL over (a presigned URL without a
        # signing date is taken as signed now), never later at the end of a long body.
        self._expires_at = expiry_of(self._url, now)
        return Skip()

    def _after_failure(self, verdict: Failure) -> Action:
        if verdict.status in _STALE_URL_STATUSES and not self._tried_first_url:
            # A remembered redirect target (say a presigned URL) may have expired: start over
            # from the URL the user gave, once, without counting it as a failure.
            self._tried_first_url = True
            self._url = self._first_url
            return Skip()
        error = verdict.error()
        if is_retryable(error):
            return self._retry_or_raise(error, verdict.retry_after)
        raise error

    def _unsatisfiable(self, verdict: Unsatisfiable) -> Action:
        if self._spec is not None and verdict.total == 0:
            # An empty file: every range is unsatisfiable (§14.1.1) and there is nothing to read.
            self._verdict = None
            self._result = Result(
                b"",
                ByteRange(0, 0),
                0,
                (self._pinned or Identity()).merged(Identity(size=0)),
                full=False,
                unsatisfiable=True,
                url=self._resolved(),
            )
            return Skip()
        raise verdict.error()

    def _retry_or_raise(self, error: RangeioError, retry_after: float | None = None) -> Action:
        self._failures += 1
        delay = self._retry.delay(self._failures, retry_after)
        if delay is None:
            raise error
        self.retries += 1
        self.failure = error
        return Wait(delay)

    # -- body -------------------------------------------------------------------------------

    def on_data(self, chunk: bytes | bytearray | memoryview) -> None:
        """A chunk of the body ``on_response`` asked to read (BODY)."""
        if self._state is not State.BODY:
            self._expect("on_data", State.BODY)
        try:  # not a `with`: this runs per chunk (benchmarks/chunk_overhead.py)
            self._on_data(chunk)
        except BaseException:
            self._state = State.FAILED
            raise

    def _on_data(self, chunk: bytes | bytearray | memoryview) -> None:
        size = len(chunk)
        if self._parser is not None:
            self._parser.feed(chunk)
            self._received += size
            return
        self._check_length(size)
        if (
            self._expected is None
            and self._max_full_body is not None
            and len(self._buffer) + size > self._max_full_body
        ):
            raise RangeNotSupportedError(
                f"body of unknown length exceeds the cache budget of {self._max_full_body} bytes"
            )
        if isinstance(self._verdict, Partial):
            self._keep(chunk)
        else:
            self._buffer.append(chunk)
        self._received += size

    def _check_length(self, size: int) -> None:
        """THE check that a body does not run past its declared length, for every face."""
        if self._expected is not None and self._received + size > self._expected:
            # Bytes past the declared length are not the file's bytes: §8.6, a message with
            # more content than its framing says is broken. Nothing of this response is kept.
            raise ProtocolError(
                f"body longer than its declared {self._expected} bytes from {self._url}"
            )

    @property
    def body_wanted(self) -> bool:
        """False once the rest of this body is not needed: a multipart body whose close
        delimiter has arrived (its epilogue may never end), or a widened 206 past the bytes
        asked for. The shell then stops reading; a small, framed rest is drained to keep the
        connection, anything else drops it (`_core/drain.py`)."""
        self._expect("body_wanted", State.BODY)
        if self._parser is not None:
            return not self._parser.finished
        return not self._enough

    def _keep(self, chunk: bytes | bytearray | memoryview) -> None:
        """Place a chunk of a 206 body: the bytes asked for go to the buffer in order (or are
        held, when they arrive early); bytes outside them are dropped."""
        pos = self._body_at + self._received
        end = pos + len(chunk)
        cursor = self._cursor()
        if pos == cursor and end <= self._stop:
            # The common case: in order and all of it asked for.
            self._buffer.append(chunk)
        else:
            lo, hi = max(pos, cursor), min(end, self._stop)
            if lo < hi:
                piece = memoryview(chunk)[lo - pos : hi - pos]
                if lo == cursor:
                    self._buffer.append(piece)
                elif self._ahead and self._ahead[0][0] + len(self._ahead[0][1]) == lo:
                    self._ahead[0][1].extend(piece)
                else:
                    # Every held piece lies past this request's stop, so this one goes first.
                    self._ahead.insert(0, (lo, bytearray(piece)))
            if sum(len(held) for _, held in self._ahead) > MAX_HELD_AHEAD:
                self._enough = True
        if end >= self._stop and self._body_at + (self._expected or 0) > self._stop:
            self._enough = True  # the rest of a widened body was not asked for
        while self._ahead and self._ahead[0][0] == self._cursor():
            self._buffer.append(bytes(self._ahead.pop(0)[1]))

    def _next_gap(self) -> ByteRange | None:
        """The next bytes of the range still to ask for, or None when all have arrived."""
        assert self._want is not None
        cursor = self._cursor()
        stop = self._ahead[0][0] if self._ahead else self._want.stop
        return ByteRange(cursor, stop) if cursor < stop else None

    def take(self) -> tuple[int, bytes]:
        """Hand over the body bytes received so far and where they start, for a caller that
        consumes the body as it streams. Resume offsets are unaffected."""
        data, start = self._buffer.join(), self._range_start
        self._range_start += len(data)
        self._buffer = _Chunks()
        return start, data

    def on_end(self) -> Action | None:
        """The body ended cleanly (as far as the transport knows), or the caller stopped
        reading it (``body_wanted`` False) (BODY). None means the exchange is done; otherwise
        the body was short and a resume follows."""
        with self._guarded("on_end", (State.BODY,)):
            action = self._on_end()
            self._settle(action)
            return action

    def _on_end(self) -> Action | None:
        if self._expected is not None and self._received < self._expected and not self._enough:
            return self._cut()
        if self._parser is not None:
            if not self._parser.finished:
                if self._framed:
                    # The framing says the whole message arrived (a short one is a transport
                    # error), so no close delimiter means a malformed body (a wrong boundary,
                    # say), not a cut one: asking again would get the same bytes.
                    self._parser.end()
                return self._cut()
            self._parts.extend(self._parser.end())
            self._parser = None
        if isinstance(self._verdict, Partial):
            gap = self._next_gap()
            if gap is not None:
                # The answer held only some of the bytes asked for (shifted, shortened): ask
                # for the rest. Not a failure, so no retry is spent; each answer must bring at
                # least one byte asked for (judge()), so this ends.
                self._ask_for(gap, self._verdict)
                return Skip()
        self._finish()
        return None

    def on_error(self, error: NetworkError) -> Action:
        """The transport failed (connect, read, reset) for the request sent (SENT) or while its
        body was read (BODY). A cut body is resumed where it stopped. It takes no time: what an
        error leads to never depends on when it happened (a redirect's expiry was fixed when the
        redirect was followed)."""
        with self._guarded("on_error", (State.SENT, State.BODY)):
            action = self._on_error(error)
            self._settle(action)
            return action

    def _on_error(self, error: NetworkError) -> Action:
        if not is_retryable(error):
            # An untrusted certificate stays untrusted: retrying only delays the answer.
            raise error
        if self._verdict is not None and self._received:
            return self._cut(error)
        return self._retry_or_raise(error)

    def _cut(self, error: NetworkError | None = None) -> Action:
        verdict = self._verdict
        assert verdict is not None
        if isinstance(verdict, Multipart):
            # Keep the parts that arrived whole; ask again only for the rest.
            assert self._parser is not None
            self._parts.extend(self._parser.parts)
            self._parser = None
            remaining = self._ranges_still_missing()
            if not remaining:
                self._verdict = verdict
                self._finish()
                return Skip()
            self._resume_specs = tuple(RangeSpec.of(r) for r in remaining)
            if self._pinned is None:
                self._pinned = verdict.identity
        elif isinstance(verdict, Partial):
            # Resume from the first byte not yet received; the pinned identity (If-Match) keeps
            # the two halves from coming from different versions.
            gap = self._next_gap()
            if gap is None:
                if isinstance(error, NetworkTimeoutError):
                    # Every byte arrived but the body never ended (endless chunked trailers,
                    # cut by the low-speed floor): a retry would not end it either.
                    raise error
                # Every byte asked for arrived, then the connection went (before a chunked
                # body's last chunk, say): that is a success, not a cut.
                self._finish()
                return Skip()
            self._ask_for(gap, verdict)
        else:
            pinned_size = self._pinned.size if self._pinned is not None else None
            known = verdict.length if verdict.length is not None else pinned_size
            if known is not None and self._received == known and self._method == "GET":
                if isinstance(error, NetworkTimeoutError):
                    raise error  # the whole file arrived but its body never ended (as above)
                # The whole file arrived (its size is known), then the connection went.
                self._finish()
                return Skip()
            # A cut 200 is restarted in full: a server that ignored Range will ignore it again.
            self._buffer = _Chunks()
            self._parts = []
        self._verdict = None
        return self._retry_or_raise(
            error or NetworkError(f"connection closed before the body ended, from {self._url}")
        )

    def _ask_for(self, gap: ByteRange, verdict: Partial) -> None:
        self._resume_specs = (RangeSpec.of(gap),)
        if self._pinned is None:
            self._pinned = verdict.identity
        self._verdict = None

    def _ranges_still_missing(self) -> list[ByteRange]:
        size = self._pinned.size if self._pinned is not None else None
        have = RangeSet(p.range for p in self._parts)
        missing: list[ByteRange] = []
        for spec in self._resume_specs:
            want = expected_range(spec, size, self._pinned)
            if want is not None:
                missing.extend(have.gaps(want))
        return missing

    def _finish(self) -> None:
        verdict = self._verdict
        if isinstance(verdict, Multipart):
            identity = verdict.identity
            if self._pinned is not None:
                identity = self._pinned.merged(identity)
            self._result = Result(
                b"",
                ByteRange(0, 0),
                identity.size,
                identity,
                full=False,
                unsatisfiable=False,
                url=self._resolved(),
                pieces=tuple((p.range.start, p.data) for p in self._parts),
                multipart=True,
            )
            return
        if isinstance(verdict, Partial):
            identity = verdict.identity
            if self._pinned is not None:
                identity = self._pinned.merged(identity)
            total = verdict.total
            span = ByteRange(self._range_start, self._range_start + len(self._buffer))
            full = False
        elif isinstance(verdict, Full):
            received = self._range_start + len(self._buffer)
            size = received if self._method == "GET" else verdict.length
            identity = verdict.identity
            if verdict.length is None and size is not None:
                identity = identity.merged(Identity(size=size))
            if self._pinned is not None:
                conflict = self._pinned.conflict_with(identity)
                if conflict is not None:
                    raise Changed(conflict).error()
                identity = self._pinned.merged(identity)
            total = size
            span = ByteRange(self._range_start, received)
            full = True
        else:
            raise RuntimeError("finish without a verdict")
        data = self._buffer.join()
        pieces = [(p.range.start, p.data) for p in self._parts]
        pieces.append((span.start, data))
        self._result = Result(
            data,
            span,
            total,
            identity,
            full=full,
            unsatisfiable=False,
            url=self._resolved(),
            pieces=tuple(pieces),
            multipart=bool(self._parts),
            content_type=self._content_type,
            date=self._date,
        )

    def _resolved(self) -> ResolvedUrl:
        if not self._redirected:
            return self._target if self._url == self._target.url else ResolvedUrl(self._url)
        return ResolvedUrl(self._url, self._expires_at)


class _Transition:
    """Around one call of an exchange: an error it raises leaves the exchange FAILED."""

    __slots__ = ("_exchange",)

    def __init__(self, exchange: RangeExchange) -> None:
        self._exchange = exchange

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is not None:
            self._exchange._state = State.FAILED


class _Chunks:
    """Body bytes as received, joined once when handed over: no copy per chunk, and none at all
    for a body that arrived as one chunk."""

    __slots__ = ("_chunks", "_size")

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def append(self, chunk: bytes | bytearray | memoryview) -> None:
        # Adapters may hand out a buffer they reuse; only immutable bytes are kept as they are.
        self._chunks.append(chunk if isinstance(chunk, bytes) else bytes(chunk))
        self._size += len(chunk)

    def join(self) -> bytes:
        if len(self._chunks) == 1:
            return self._chunks[0]
        return b"".join(self._chunks)


__all__ = [
    "BASE_HEADERS",
    "Action",
    "ExchangeStateError",
    "RangeExchange",
    "ReadBody",
    "Request",
    "Result",
    "Skip",
    "State",
    "Verdict",
    "Wait",
]
