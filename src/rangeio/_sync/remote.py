"""The sync shell around the core: runs exchanges over a transport and fills the shared cache."""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rangeio._core.cache import ByteCache
from rangeio._core.exchange import Action, RangeExchange, ReadBody, Result, Wait
from rangeio._core.headers import RangeSpec
from rangeio._core.identity import Identity
from rangeio._core.options import FileOptions
from rangeio._core.planner import (
    AccessPattern,
    group_for_multipart,
    opening_specs,
    plan_read,
    plan_vectored,
)
from rangeio._core.ranges import ByteRange
from rangeio._core.redirects import ResolvedUrl, check_url
from rangeio._core.stats import Stats
from rangeio._transport import Transport, make_transport
from rangeio.errors import (
    HTTPStatusError,
    NetworkError,
    ProtocolError,
    RangeNotSupportedError,
)

# A refused suffix range (`bytes=-N`) at open falls back to a prefix range. 501: not
# implemented; 400/405: servers that choke on the syntax.
_SUFFIX_REFUSALS = frozenset({400, 405, 501})


class RemoteFile:
    """What all cursors on one URL share: transport, pinned identity, cache, stats.

    The cache and counters are guarded by one lock; network exchanges run outside it.
    """

    def __init__(self, url: str, *, client: Any = None, options: FileOptions) -> None:
        self.url = check_url(url)
        self.options = options
        self.transport: Transport = make_transport(client)
        self.cache = ByteCache(options.cache_bytes)
        # A raw read never asks for more than half the cache (but at least 64 KiB, which the
        # cache may hold beyond a tiny budget while the read copies it), so the bytes it needs
        # stay cached until copied; the buffered layer loops for the rest.
        self._max_span = max(options.cache_bytes // 2, 64 * 1024)
        self.stats = Stats()
        self.identity: Identity | None = None
        self.size = 0
        self.target = ResolvedUrl(url)
        self.whole_file_cached = False
        # None until a multi-range request has shown whether the server answers multipart.
        self.multipart_support: bool | None = None
        self.closed = False
        self._lock = threading.RLock()
        try:
            self._open()
        except BaseException:
            self.transport.close()
            raise

    # -- exchanges --------------------------------------------------------------------------

    def new_exchange(
        self, spec: RangeSpec | Sequence[RangeSpec] | None, *, method: str = "GET"
    ) -> RangeExchange:
        return RangeExchange(
            spec,
            first_url=self.url,
            target=self.target,
            user_headers=self.options.headers,
            pinned=self.identity,
            retry=self.options.retries,
            max_full_body=self.options.cache_bytes,
            method=method,
            allow_downgrade=self.options.allow_https_downgrade,
        )

    def drive(self, exchange: RangeExchange) -> Generator[None, None, None]:
        """Run ``exchange`` over the transport, yielding after every body chunk so that a
        caller can consume a streaming body; closing the generator drops the connection."""
        timeout = self.options.timeout
        while (request := exchange.next_request(time.time())) is not None:
            action: Action | None
            self._count(requests=1)
            try:
                response = self.transport.send(request, timeout)
            except NetworkError as exc:
                action = exchange.on_error(exc)
            else:
                try:
                    action = exchange.on_response(response.status, response.headers, time.time())
                    if isinstance(action, ReadBody):
                        try:
                            for chunk in response.iter_raw():
                                exchange.on_data(chunk)
                                self._count(fetched=len(chunk))
                                yield
                            action = exchange.on_end(time.time())
                        except NetworkError as exc:
                            action = exchange.on_error(exc)
                finally:
                    response.close()
            if isinstance(action, Wait):
                time.sleep(action.seconds)
                self._count(retries=1)

    def _count(self, *, requests: int = 0, fetched: int = 0, retries: int = 0) -> None:
        with self._lock:
            self.stats.requests += requests
            self.stats.bytes_fetched += fetched
            self.stats.retries += retries

    def exchange(
        self, spec: RangeSpec | Sequence[RangeSpec] | None, *, method: str = "GET"
    ) -> Result:
        """Run one exchange to completion: redirects, retries and resumes included."""
        exchange = self.new_exchange(spec, method=method)
        for _ in self.drive(exchange):
            pass
        return exchange.result

    def fetch_many(self, ranges: Sequence[ByteRange]) -> list[Result]:
        """Fetch several ranges, concurrently up to ``max_concurrency``."""
        specs = [RangeSpec.of(r) for r in ranges]
        if len(specs) <= 1 or self.options.max_concurrency == 1:
            return [self.exchange(s) for s in specs]
        workers = min(self.options.max_concurrency, len(specs))
        with ThreadPoolExecutor(workers, thread_name_prefix="rangeio") as pool:
            return list(pool.map(self.exchange, specs))

    # -- open -------------------------------------------------------------------------------

    def _open(self) -> None:
        specs = opening_specs(self.options.prefetch_bytes, self.options.prefetch_direction)
        result: Result | None = None
        for i, spec in enumerate(specs):
            try:
                result = self.exchange(spec)
                break
            except (HTTPStatusError, ProtocolError) as exc:
                refused = isinstance(exc, ProtocolError) or exc.status in _SUFFIX_REFUSALS
                if not (spec.is_suffix and refused and i + 1 < len(specs)):
                    raise
        assert result is not None
        if result.total is None and not result.full:
            result = self._learn_size(result)
        self._adopt(result)

    def _learn_size(self, first: Result) -> Result:
        """The server sent `bytes a-b/*`: ask for the size with a HEAD (Content-Length)."""
        self.identity = first.identity
        head = self.exchange(None, method="HEAD")
        if head.total is None:
            raise RangeNotSupportedError("server does not tell the file's size (`/*` totals)")
        identity = first.identity.merged(Identity(size=head.total))
        return Result(
            first.data,
            first.range,
            head.total,
            identity,
            full=False,
            unsatisfiable=False,
            url=first.url,
        )

    def _adopt(self, result: Result) -> None:
        self.target = result.url
        if result.full:
            self.size = len(result.data)
            self.identity = result.identity.merged(Identity(size=self.size))
            # The server ignores Range; the whole body fit the budget (the exchange checked),
            # so it is kept for good and every read is served from it.
            self.cache.insert(0, result.data, pin=True)
            self.whole_file_cached = True
            return
        assert result.total is not None
        self.size = result.total
        self.identity = result.identity.merged(Identity(size=result.total))
        self.cache.insert(result.range.start, result.data)

    # -- reads ------------------------------------------------------------------------------

    def readinto(self, pos: int, out: memoryview, cursor: Cursor, slack: int = 0) -> int:
        """Copy bytes at ``pos`` into ``out``; may return fewer than asked (never 0 before EOF).

        ``slack`` is extra read-ahead the caller knows it will want (the buffered layer reads the
        tail of a large read through its buffer right after)."""
        if self.closed:
            raise ValueError("I/O operation on closed file.")
        size = self.size
        if pos >= size or not len(out):
            return 0
        span = min(len(out), size - pos, self._max_span)
        if span < len(out):
            out = out[:span]
        with self._lock:
            readahead = cursor.pattern.observe_span(pos, pos + span)
            got = self.cache.read_into(pos, out)
            if got:
                self.stats.cache_hits += 1
                return got
            self.stats.cache_misses += 1
            want = ByteRange(pos, pos + span)
            plan = plan_read(
                want,
                self.cache,
                size,
                self.options.policy,
                max(readahead, slack),
                cursor.pattern.minimum_request,
            )
        if cursor.pattern.is_streaming and self.options.cache_bytes > 0:
            self._stream_into_cache(cursor, want)
        else:
            cursor.drop_stream()
            self._fill(plan, protect=want)
        with self._lock:
            got = self.cache.read_into(pos, out)
        if got == 0:
            # Only a zero budget can drop bytes a read protects; fetch straight into `out`.
            return self._read_uncached(want, out)
        return got

    def _stream_into_cache(self, cursor: Cursor, want: ByteRange) -> None:
        """Serve a sequential reader from one open-ended streaming response instead of a chain
        of growing requests: one round trip, then the bytes flow at the link's speed."""
        # A stream that already ended (it reached cached bytes, or the end) is replaced once.
        for _ in range(2):
            stream = cursor.stream
            if stream is None or stream.finished or stream.position != want.start:
                cursor.drop_stream()
                with self._lock:
                    # Stop where cached bytes begin (the open's prefetch, say): no transfer needed.
                    first_gap = self.cache.missing(ByteRange(want.start, self.size))[0]
                stream = cursor.stream = Stream(self, first_gap)
            stream.pump_until(want.stop, protect=want)
            if stream.finished:
                cursor.drop_stream()
            if stream.position > want.start:
                return

    def _read_uncached(self, want: ByteRange, out: memoryview) -> int:
        result = self.exchange(RangeSpec.of(want))
        n = len(result.data)
        out[:n] = result.data
        return n

    def _fill(self, plan: Sequence[ByteRange], *, protect: ByteRange) -> None:
        for result in self.fetch_many(plan):
            self._check_result(result)
            with self._lock:
                self.cache.insert(result.range.start, result.data, protect=protect)

    def _check_result(self, result: Result) -> None:
        if result.full:
            # The server answered a range with the whole file after answering ranges before:
            # usable bytes, but we keep only what the cache budget allows.
            if len(result.data) != self.size:
                raise ProtocolError("server sent a full body whose size differs from the file's")

    def read_ranges(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        self._check_open()
        wanted = [_checked_range(r, self.size) for r in ranges]
        outputs = [bytearray(len(w)) for w in wanted]
        holes: list[ByteRange] = []
        with self._lock:
            # Copy what is cached now: fetching the rest may evict it.
            for want, out in zip(wanted, outputs):
                holes.extend(self._copy_cached(want, out))
            if holes:
                self.stats.cache_misses += 1
            else:
                self.stats.cache_hits += 1
        results = self._fetch_vectored(holes)
        for result in results:
            self._check_result(result)
            for start, data in result.pieces:
                _scatter(start, data, wanted, outputs)
        with self._lock:
            for result in results:
                for start, data in result.pieces:
                    self.cache.insert(start, data)
        return [bytes(o) for o in outputs]

    def _fetch_vectored(self, holes: list[ByteRange]) -> list[Result]:
        policy = self.options.policy
        if self.options.multipart is not False and self.multipart_support is not False:
            plan = plan_vectored(holes, self.cache, self.size, policy, multipart=True)
            if len(plan) >= 2:
                groups = group_for_multipart(plan, policy)
                try:
                    results = self._run_concurrently(groups)
                except (RangeNotSupportedError, ProtocolError):
                    if self.options.multipart is True or self.multipart_support:
                        raise
                    results = None
                if results is not None:
                    answered = [r for g, r in zip(groups, results) if len(g) > 1]
                    if self.multipart_support is None and answered:
                        self.multipart_support = all(r.multipart for r in answered)
                    return results
                self.multipart_support = False
        plan = plan_vectored(holes, self.cache, self.size, policy)
        return self.fetch_many(plan)

    def _run_concurrently(self, groups: list[list[ByteRange]]) -> list[Result]:
        def one(group: list[ByteRange]) -> Result:
            specs = [RangeSpec.of(r) for r in group]
            return self.exchange(specs[0] if len(specs) == 1 else specs)

        if len(groups) == 1:
            return [one(groups[0])]
        workers = min(self.options.max_concurrency, len(groups))
        with ThreadPoolExecutor(workers, thread_name_prefix="rangeio") as pool:
            return list(pool.map(one, groups))

    def _copy_cached(self, want: ByteRange, out: bytearray) -> list[ByteRange]:
        view = memoryview(out)
        gaps = self.cache.missing(want)
        pos = want.start
        for gap in [*gaps, ByteRange(want.stop, want.stop)]:
            while pos < gap.start:
                n = self.cache.read_into(pos, view[pos - want.start : gap.start - want.start])
                if n == 0:
                    raise RuntimeError("cache lost bytes it just reported")
                pos += n
            pos = gap.stop
        return gaps

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file.")

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.transport.close()
        with self._lock:
            self.cache.clear()


class Stream:
    """A streaming range response whose bytes go into the cache as the reader reaches them."""

    def __init__(self, remote: RemoteFile, span: ByteRange) -> None:
        self._remote = remote
        self._exchange = remote.new_exchange(RangeSpec.of(span))
        self._steps = remote.drive(self._exchange)
        self.position = span.start
        self.finished = False

    def pump_until(self, stop: int, *, protect: ByteRange) -> None:
        while self.position < stop and not self.finished:
            try:
                next(self._steps)
            except StopIteration:
                self.finished = True
            start, data = self._exchange.take()
            if data:
                with self._remote._lock:
                    self._remote.cache.insert(start, data, protect=protect)
                self.position = start + len(data)

    def close(self) -> None:
        self._steps.close()


class Cursor:
    """Per-reader state: the access pattern and the stream it may be consuming."""

    def __init__(self, remote: RemoteFile) -> None:
        self.pattern = AccessPattern(remote.options.policy)
        self.stream: Stream | None = None

    def drop_stream(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None


def _scatter(start: int, data: bytes, wanted: list[ByteRange], outputs: list[bytearray]) -> None:
    """Copy the parts of ``data`` (which sits at ``start``) that the wanted ranges ask for."""
    got = ByteRange(start, start + len(data))
    view = memoryview(data)
    for want, out in zip(wanted, outputs):
        part = want.intersection(got)
        if part is not None:
            src = view[part.start - start : part.stop - start]
            out[part.start - want.start : part.stop - want.start] = src


def _checked_range(r: tuple[int, int], size: int) -> ByteRange:
    start, stop = r
    if start < 0 or stop < start:
        raise ValueError(f"invalid range ({start}, {stop}): need 0 <= start <= stop")
    return ByteRange(min(start, size), min(stop, size))
