"""RemoteFile: what every cursor on one URL shares, and the programs that read it (sync and async)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from rangeio._core.cache import ByteCache
from rangeio._core.diskcache import TrackedCache
from rangeio._core.exchange import RangeExchange, Result
from rangeio._core.headers import RangeSpec
from rangeio._core.identity import Identity
from rangeio._core.inflight import InflightTable
from rangeio._core.options import FileOptions
from rangeio._core.planner import (
    AccessPattern,
    drain_instead_of_abandoning,
    fit_readahead,
    opening_specs,
    plan_read,
    plan_vectored,
    suffix_refused,
)
from rangeio._core.prefetch import (
    END,
    Prefetch,
    choose_prefetch,
    direction_from_answer,
    index_hint,
)
from rangeio._core.rangecap import CapState, RangeCap, full_body_bound
from rangeio._core.ranges import ByteRange, RangeSet
from rangeio._core.redirects import ResolvedUrl, check_url
from rangeio._core.stats import Stats
from rangeio._core.travel import Description, describe
from rangeio._core.validate import size_contradiction
from rangeio._engine.disktier import DiskTier
from rangeio._engine.drive import drive
from rangeio._engine.fork import ForkHooks
from rangeio._engine.ops import (
    Abandon,
    Program,
    advance,
    join,
    spawn,
)
from rangeio.errors import (
    HTTPStatusError,
    ProtocolError,
    RangeioError,
    RangeNotSupportedError,
)

# A raw read never asks for more than half the cache (but at least this much, which the cache
# may hold beyond a tiny budget while the read copies it), so the bytes it needs stay cached
# until copied; callers loop for the rest.
_MIN_SPAN = 64 * 1024

# What a fetch hands the readers waiting on it: every (offset, bytes) piece it received.
Pieces = tuple[tuple[int, bytes], ...]


class RemoteFile:
    """What all cursors on one URL share: pinned identity, cache, in-flight fetches, stats.

    Methods returning ``Program`` do no I/O themselves: a runner executes the operations they
    yield. The cache, the in-flight table and the counters are guarded by one lock, never held
    across an operation that waits (Spawn alone may be yielded under it: it never blocks).
    """

    def __init__(self, url: str, options: FileOptions) -> None:
        self.url = check_url(url)
        self.options = options
        # The disk cache (cache_dir), the second level under the memory cache; or None.
        self.disk = DiskTier.for_options(self.url, options)
        self.cache = self._new_cache()
        self._max_span = max(options.cache_bytes // 2, _MIN_SPAN)
        self.stats = Stats()
        self.identity: Identity | None = None
        self.size = 0
        self.target = ResolvedUrl(url)
        self.whole_file_cached = False
        # How many ranges one multipart request may carry here, learned from the answers.
        self.range_cap = RangeCap(options.policy.max_ranges_per_request)
        # What the open request prefetches (decided from the URL), then where the first answer
        # says the file's index is (None: it did not tell).
        self.prefetch: Prefetch = choose_prefetch(
            url, options.prefetch_direction, options.prefetch_bytes, options.cache_bytes
        )
        self.index_at: str | None = None
        # A span the first read touching it fetches whole: the rest of an index the open's
        # prefetch found the start of in its tail, or the tail of a zip found in a START prefetch.
        self._index_hint: ByteRange | None = None
        self.closed = False
        # Whether the opening request has been answered; a lazy file opens at its first use
        # (`ensure_open`), sharing one open among the cursors that ask at once (`_opening`).
        self.opened = False
        self._opening: Any = None
        self._lock = threading.RLock()
        self._inflight = InflightTable()
        self._handles: dict[int, Any] = {}
        self._lock_taken_for_fork = False
        _REMOTES.add(self)

    # -- pickling ---------------------------------------------------------------------------

    def describe(self) -> Description:
        """What a pickle of a file on this remote carries (`_core/travel.py` decides)."""
        self._check_open()
        if self.identity is None:
            raise ValueError("file is not open: nothing to describe")
        return describe(self.url, self.target, self.identity, self.options)

    @classmethod
    def revived(cls, description: Description) -> RemoteFile:
        """The remote of an unpickled file, open with no request: the identity pinned, the size
        known, the target set, as the open left them on the other side. Its first I/O is the
        read's own request (no second open, no prefetch: the position says what the reader
        wants), and its answer is judged against the pinned identity (`_core/validate.py`
        `judge()`, If-Match where the ETag allows) like every later one: a file changed in
        between raises RemoteChangedError."""
        description.check()
        remote = cls(description.url, description.options)
        remote.target = description.target
        remote.identity = description.identity
        remote.size = description.identity.size or 0
        remote.opened = True
        if remote.disk is not None:
            remote.disk.pin_pending = True
        return remote

    # -- fork -------------------------------------------------------------------------------

    def _before_fork(self) -> None:
        # Never waits: a thread holding the lock may be mid-change of the cache, and the child
        # then starts with an empty cache instead of a half-changed one.
        self._lock_taken_for_fork = self._lock.acquire(blocking=False)

    def _after_fork_in_parent(self) -> None:
        if self._lock_taken_for_fork:
            self._lock_taken_for_fork = False
            self._lock.release()

    def _after_fork_in_child(self) -> None:
        # The parent's threads do not exist here: a lock one of them held would never be
        # released, and the fetches they had in flight would never finish.
        consistent = self._lock_taken_for_fork
        self._lock_taken_for_fork = False
        self._lock = threading.RLock()
        self._inflight = InflightTable()
        self._handles = {}
        self._opening = None
        if not consistent:
            self.cache = self._new_cache()
            self.whole_file_cached = False

    def _new_cache(self) -> ByteCache:
        budget = self.options.cache_bytes
        return ByteCache(budget) if self.disk is None else TrackedCache(budget)

    # -- exchanges --------------------------------------------------------------------------

    @property
    def multipart_support(self) -> bool | None:
        """Whether the server answers multipart requests; None while no answer has told."""
        state = self.range_cap.state
        if state is CapState.MULTIPART:
            return True
        return False if state is CapState.SINGLE else None

    def new_exchange(
        self,
        spec: RangeSpec | Sequence[RangeSpec] | None,
        *,
        method: str = "GET",
        max_full_body: int | None = None,
        conditional: dict[str, str] | None = None,
    ) -> RangeExchange:
        if max_full_body is None:
            max_full_body = self.options.cache_bytes
        return RangeExchange(
            spec,
            first_url=self.url,
            target=self.target,
            user_headers=self.options.headers,
            pinned=self.identity,
            retry=self.options.retries,
            max_full_body=max_full_body,
            method=method,
            allow_downgrade=self.options.allow_https_downgrade,
            conditional=conditional,
        )

    def drive(self, exchange: RangeExchange, *, pauses: bool = True) -> Program[None]:
        """Run ``exchange`` over the transport (`_engine/drive.py`), yielding DELIVERED after
        every body chunk (with ``pauses``) so that a stream can hand bytes to its reader as
        they arrive."""
        yield from drive(exchange, self.options.timeout, self._count, pauses=pauses)
        # Where this exchange ended up is where the next ones go: after a presigned target was
        # refreshed from the URL the user gave, later reads do not each pay that detour again.
        self.target = exchange.result.url

    def _count(self, *, requests: int = 0, fetched: int = 0, retries: int = 0) -> None:
        with self._lock:
            self.stats.requests += requests
            self.stats.bytes_fetched += fetched
            self.stats.retries += retries

    def exchange(
        self,
        spec: RangeSpec | Sequence[RangeSpec] | None,
        *,
        method: str = "GET",
        max_full_body: int | None = None,
        conditional: dict[str, str] | None = None,
    ) -> Program[Result]:
        """Run one exchange to completion: redirects, retries and resumes included."""
        exchange = self.new_exchange(
            spec, method=method, max_full_body=max_full_body, conditional=conditional
        )
        # No pause points: a filter generator swallowing them would cost a layer per operation.
        yield from self.drive(exchange, pauses=False)
        return exchange.result

    # -- open -------------------------------------------------------------------------------

    def open(self) -> Program[None]:
        """The one request that opens the file: size, identity and prefetch at once. With a
        disk cache (``self.disk``) the same request revalidates what the disk holds."""
        # --- disk cache: look up the entry (immutable: open from it, no request) ---
        conditional = None
        if self.disk is not None:
            conditional = yield from self.disk.lookup(self)
            stored = yield from self.disk.opened_from_disk(self)
            if stored is not None:
                self._adopt(stored)
                self._learn_layout(stored)
                self.opened = True
                return
        # ---
        result = yield from self._opening_exchange(conditional)
        # --- disk cache: a 304 serves the stored blocks, another answer replaces them ---
        if result.not_modified:
            assert self.disk is not None
            stored = yield from self.disk.not_modified(self, result)
            if stored is None:
                result = yield from self._opening_exchange(None)
            else:
                result = stored
        # ---
        if result.total is None and not result.full:
            result = yield from self._learn_size(result)
        self._adopt(result)
        self._learn_layout(result)
        if self.disk is not None and self.disk.key is None:
            yield from self.disk.answered(self, result)
        self.opened = True

    def _opening_exchange(self, conditional: dict[str, str] | None) -> Program[Result]:
        specs = opening_specs(self.prefetch.size, self.prefetch.direction)
        for i, spec in enumerate(specs):
            try:
                return (yield from self.exchange(spec, conditional=conditional))
            except (HTTPStatusError, ProtocolError) as exc:
                status = None if isinstance(exc, ProtocolError) else exc.status
                if not (spec.is_suffix and suffix_refused(status) and i + 1 < len(specs)):
                    raise
        raise AssertionError("opening_specs() is never empty")

    def ensure_open(self) -> Program[None]:
        """Open a lazily made file if it is not open yet. Cursors asking at once share the one
        opening request; a failed open is tried again by the next use."""
        # A loop: an open interrupted in the thread that ran it (Ctrl-C) ends with the file
        # still unopened, and a cursor that shared it opens it again.
        while True:
            self._check_open()
            with self._lock:
                if self.opened:
                    return
                handle = self._opening
                if handle is None:
                    handle = self._opening = yield from spawn(self._open_shared(), joined_next=True)
            yield from join([handle])

    def _open_shared(self) -> Program[None]:
        try:
            yield from self.open()
        finally:
            with self._lock:
                self._opening = None

    def _learn_layout(self, result: Result) -> None:
        """What the first answer tells of where the file's index is, and what that changes."""
        first = result.range
        head = result.data if first.start == 0 else None
        tail = result.data if first.stop == self.size and first else None
        self.index_at = direction_from_answer(result.content_type, head, tail)
        end_size = choose_prefetch(
            self.url, END, self.options.prefetch_bytes, self.options.cache_bytes
        ).size
        taken = Prefetch(self.prefetch.direction, first.length)
        options = self.options
        hint = index_hint(
            taken,
            self.index_at,
            self.size,
            end_size,
            tail,
            options.cache_bytes,
            options.policy.max_request_bytes,
        )
        self._index_hint = None if hint is None else ByteRange(*hint)

    def _learn_size(self, first: Result) -> Program[Result]:
        """The server sent `bytes a-b/*`: ask for the size with a HEAD (Content-Length)."""
        self.identity = first.identity
        head = yield from self.exchange(None, method="HEAD")
        if head.total is None:
            raise RangeNotSupportedError("server does not tell the file's size (`/*` totals)")
        contradiction = size_contradiction(head.total, first.range.stop)
        if contradiction is not None:
            raise contradiction.error()
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
        # Held: no read asked for these bytes yet, and a long read must not evict them first.
        self.cache.insert(result.range.start, result.data, hold=True)

    # -- reads ------------------------------------------------------------------------------

    def read_cached(self, pos: int, out: memoryview, cursor: Cursor) -> int | None:
        """The no-I/O fast path: copy cached bytes at ``pos`` into ``out``. Returns the count
        (0 at EOF), or None when the bytes must be fetched first (call ``readinto``)."""
        if self.closed:
            raise ValueError("I/O operation on closed file.")
        if not self.opened:
            return None  # a lazy file: read_missing opens it first
        size = self.size
        if pos >= size or not len(out):
            return 0
        span = min(len(out), size - pos, self._max_span)
        with self._lock:
            cursor.readahead = cursor.pattern.observe_span(pos, pos + span)
            got = self.cache.read_into(pos, out[:span] if span < len(out) else out)
            if got:
                self.stats.cache_hits += 1
                return got
        return None

    def read_missing(
        self, pos: int, out: memoryview, cursor: Cursor, slack: int = 0
    ) -> Program[int]:
        """After ``read_cached`` said None: fetch and copy bytes at ``pos`` into ``out``; may
        return fewer than asked (never 0 before EOF).

        ``slack`` is extra read-ahead the caller knows it will want (the buffered layer reads the
        tail of a large read through its buffer right after)."""
        if not self.opened:
            yield from self.ensure_open()
            # The opening request may have brought these bytes (or told that pos is past EOF).
            n = self.read_cached(pos, out, cursor)
            if n is not None:
                return n
        span = min(len(out), self.size - pos, self._max_span)
        out = out[:span]
        want = ByteRange(pos, pos + span)
        if self.disk is not None:  # disk cache: what it holds of the read and its read-ahead
            ahead = min(self.size, pos + max(span, cursor.readahead, slack))
            yield from self.disk.load(self, ByteRange(pos, ahead))
            with self._lock:
                got = self.cache.read_into(pos, out)
            if got:
                return got
        with self._lock:
            self.stats.cache_misses += 1
            ahead = max(fit_readahead(cursor.readahead, span, self._max_span), slack)
            plan = plan_read(
                want,
                self.cache,
                self.size,
                self.options.policy,
                ahead,
                cursor.pattern.minimum_request,
                self._max_span,
                cursor.pattern.tail,
            )
            hint = self._index_hint
            if hint is not None and want.stop > hint.start:
                # The first look at the index the open missed: fetch all of it at once.
                self._index_hint = None
                if want.start >= hint.start:
                    plan = _still_missing([hint], self.cache)
        if cursor.pattern.is_streaming and self.options.cache_bytes > 0:
            yield from self._stream_into_cache(cursor, want)
        else:
            yield from cursor.drop_stream(drain=True)
            yield from self._fill(plan, protect=want)
        with self._lock:
            got = self.cache.read_into(pos, out)
        if self.disk is not None:  # disk cache: write the bytes fetched through
            yield from self.disk.flush(self, streaming=cursor.stream is not None)
        if got == 0:
            # Only a zero budget can drop bytes a read protects, or a shared fetch interrupted
            # in the thread that ran it (`_sync/runner.py`): fetch straight into `out`.
            result = yield from self.exchange(RangeSpec.of(want))
            got = len(result.data)
            out[:got] = result.data
        return got

    def _stream_into_cache(self, cursor: Cursor, want: ByteRange) -> Program[None]:
        """Serve a sequential reader from one streaming response instead of a chain of growing
        requests: one round trip, then the bytes flow at the link's speed."""
        # A stream that already ended (it reached cached bytes, or the end) is replaced once.
        for _ in range(2):
            stream = cursor.stream
            if stream is None or stream.finished or stream.position != want.start:
                yield from cursor.drop_stream(drain=True)
                with self._lock:
                    # Stop where cached bytes begin (the open's prefetch, say): no transfer needed.
                    gap = self.cache.missing(ByteRange(want.start, self.size))[0]
                # Bounded, growing with the run: a reader that jumps away wastes at most that.
                length = cursor.pattern.stream_length()
                stop = gap.stop if length is None else min(gap.stop, gap.start + length)
                stream = cursor.stream = Stream(self, ByteRange(gap.start, stop))
            yield from stream.pump_until(want.stop, protect=want)
            if stream.finished:
                yield from cursor.drop_stream()
            if stream.position > want.start:
                return

    def _fill(self, plan: Sequence[ByteRange], *, protect: ByteRange) -> Program[None]:
        """Make ``plan`` cached. Parts another reader is already fetching are waited for, not
        fetched again; our own fetches are shared with any reader that comes while they run."""
        with self._lock:
            # A fetch may have finished since the plan was made (outside this lock section):
            # its bytes are cached now and must not be fetched again.
            plan = _still_missing(plan, self.cache)
            claim = self._inflight.claim(plan)
            waits = self._handles_of(claim.wait_for)
            for r in claim.fetch:
                handle = yield from self._start_fetch([r], self._fetch_into_cache, r, protect)
                waits.append(handle)
        if waits:
            yield from join(waits)

    def _handles_of(self, fetch_ids: list[int]) -> list[Any]:
        """The handles of in-flight fetches, each once (a multipart request has several ids)."""
        handles: dict[int, Any] = {}
        for fetch_id in fetch_ids:
            handle = self._handles[fetch_id]
            handles[id(handle)] = handle
        return list(handles.values())

    def _start_fetch(
        self,
        group: list[ByteRange],
        fetch: Callable[..., Program[Any]],
        *args: Any,
        fan_out: bool = False,
    ) -> Program[Any]:
        """Under the lock: claim ``group`` in the in-flight table and spawn ``fetch(ids, *args)``,
        which must call ``_fetch_done(ids)`` however it ends. Returns its handle."""
        ids = [self._inflight.add(r) for r in group]
        try:
            # A fan-out is bounded by its pool; a read's own fetch runs in the reader's thread.
            handle = yield from spawn(fetch(ids, *args), fan_out=fan_out, joined_next=not fan_out)
        except BaseException:
            # Never started, so it will never release its claim: release it here.
            self._fetch_done(ids)
            raise
        # The program cannot end before this: its `_fetch_done` needs the lock we hold.
        for fetch_id in ids:
            self._handles[fetch_id] = handle
        return handle

    def _fetch_done(self, fetch_ids: list[int]) -> None:
        with self._lock:
            for fetch_id in fetch_ids:
                self._inflight.done(fetch_id)
                self._handles.pop(fetch_id, None)

    def _fetch_into_cache(
        self, fetch_ids: list[int], r: ByteRange, protect: ByteRange
    ) -> Program[Pieces]:
        """Fetch ``r`` into the cache; the pieces are returned too, for vectored readers that
        wait on this fetch (they copy from the answer, which no eviction can take away)."""
        try:
            result = yield from self.exchange(RangeSpec.of(r))
            self._check_result(result)
            with self._lock:
                self.cache.insert(result.range.start, result.data, protect=protect)
            return result.pieces
        finally:
            self._fetch_done(fetch_ids)

    def _check_result(self, result: Result) -> None:
        if result.full and len(result.data) != self.size:
            # A 200 answering a range after ranges were answered: usable only if it is the
            # same file, which its size at least must say.
            raise ProtocolError("server sent a full body whose size differs from the file's")

    def read_ranges(self, ranges: Sequence[tuple[int, int]]) -> Program[list[bytes]]:
        yield from self.ensure_open()
        wanted = [_checked_range(r, self.size) for r in ranges]
        outputs = [bytearray(len(w)) for w in wanted]
        if self.disk is not None:  # disk cache: what it holds of the ranges
            yield from self.disk.load(self, *wanted)
        # (index of a wanted range, bytes of it not copied yet)
        holes = list(enumerate(wanted))
        first = True
        while holes:
            with self._lock:
                # Copy what is cached now (fetching the rest may evict it) and claim the rest in
                # the same lock section, so that no byte arrives or leaves between the two.
                holes = [
                    (i, gap)
                    for i, hole in holes
                    for gap in self._copy_cached(hole, _view(outputs[i], wanted[i], hole))
                ]
                if first:
                    first = False
                    if holes:
                        self.stats.cache_misses += 1
                    else:
                        self.stats.cache_hits += 1
                if not holes:
                    break
                handles = yield from self._claim_vectored([hole for _, hole in holes])
            answers: list[Pieces | None] = yield from join(handles)
            received = RangeSet()
            for pieces in answers:
                # None: a multipart probe the server refused; its bytes are asked for again,
                # range by range, in the next round.
                for start, data in pieces or ():
                    _scatter(start, data, wanted, outputs)
                    received.add(ByteRange(start, start + len(data)))
            left = [(i, gap) for i, hole in holes for gap in received.gaps(hole)]
            if left == holes and None not in answers:
                # Every fetch answered yet none brought these bytes: asking again would loop.
                raise ProtocolError("server did not send the byte ranges asked for")
            holes = left
        if self.disk is not None:  # disk cache: write the bytes fetched through
            yield from self.disk.flush(self)
        return [bytes(o) for o in outputs]

    def prefetch_ranges(self, ranges: Sequence[tuple[int, int]]) -> Program[int]:
        """Fetch into the cache the bytes of ``(start, stop)`` ranges it lacks, planned as
        ``read_ranges`` plans them, without copying them out. Returns the bytes received by the
        fetches it waited for (its own, and any already under way for these bytes): 0 when all
        were cached. A lazy file's opening request, made first, is not counted."""
        yield from self.ensure_open()
        holes = [w for w in (_checked_range(r, self.size) for r in ranges) if w.length]
        fetched = 0
        while holes:
            with self._lock:
                holes = [gap for hole in holes for gap in self.cache.missing(hole)]
                if not holes:
                    break
                handles = yield from self._claim_vectored(holes)
            answers: list[Pieces | None] = yield from join(handles)
            received = RangeSet()
            for pieces in answers:
                for start, data in pieces or ():
                    fetched += len(data)
                    received.add(ByteRange(start, start + len(data)))
            left = [gap for hole in holes for gap in received.gaps(hole)]
            if left == holes and None not in answers:
                raise ProtocolError("server did not send the byte ranges asked for")
            holes = left
        return fetched

    def _claim_vectored(self, holes: list[ByteRange]) -> Program[list[Any]]:
        """Under the lock: plan the requests for ``holes``, claim them in the in-flight table
        and start them. Returns the handles to join: ours, and those of fetches already in
        flight that overlap the plan (their bytes are not asked for twice)."""
        policy = self.options.policy
        multipart = self.options.multipart is not False and self.range_cap.limit() >= 2
        plan: list[ByteRange] = []
        if multipart:
            plan = plan_vectored(holes, self.cache, self.size, policy, multipart=True)
        if len(plan) < 2:
            plan = plan_vectored(holes, self.cache, self.size, policy)
        claim = self._inflight.claim(plan)
        handles = self._handles_of(claim.wait_for)
        # Cut around fetches in flight, a piece may begin or end on cached filler: trim it, so
        # that every request starts on a byte nobody has or is fetching.
        fetch = _still_missing(claim.fetch, self.cache)
        if multipart:
            # The pieces left around other fetches still go in one request, under the cap.
            groups = self.range_cap.group(fetch, policy)
        else:
            groups = [[r] for r in fetch]
        for group in groups:
            handle = yield from self._start_fetch(group, self._fetch_group, group, fan_out=True)
            handles.append(handle)
        return handles

    def _fetch_group(self, fetch_ids: list[int], group: list[ByteRange]) -> Program[Pieces | None]:
        """Fetch ``group`` (several ranges go in one multipart request) into the cache. Returns
        the pieces received, or None when the server refused this many ranges in one request
        (the readers then ask again, in smaller groups or range by range: ``RangeCap``)."""
        try:
            if len(group) == 1:
                result = yield from self.exchange(RangeSpec.of(group[0]))
                self._check_result(result)
                with self._lock:
                    self.cache.insert(result.range.start, result.data)
                return result.pieces
            return (yield from self._fetch_multipart(group))
        finally:
            self._fetch_done(fetch_ids)

    def _fetch_multipart(self, group: list[ByteRange]) -> Program[Pieces | None]:
        count = len(group)
        insist = self.options.multipart is True
        # A 200 is the whole file: read only when small, else dropped unread (closed).
        bound = full_body_bound(sum(r.length for r in group), self.options.cache_bytes)
        try:
            result = yield from self.exchange([RangeSpec.of(r) for r in group], max_full_body=bound)
        except RangeNotSupportedError:
            with self._lock:
                self.range_cap.refused(count)
                single = self.range_cap.state is CapState.SINGLE
            if insist and single:
                raise
            return None
        except ProtocolError:
            if insist or self.range_cap.state is CapState.MULTIPART:
                raise
            with self._lock:
                self.range_cap.unusable()
            return None
        self._check_result(result)
        with self._lock:
            if result.multipart:
                self.range_cap.answered(count)
            elif result.full:
                self.range_cap.refused(count)
            else:
                # One part for ranges far apart: usable once, but not multipart.
                self.range_cap.unusable()
            for start, data in result.pieces:
                self.cache.insert(start, data)
        return result.pieces

    def _copy_cached(self, want: ByteRange, view: memoryview) -> list[ByteRange]:
        """Copy the cached bytes of ``want`` into ``view`` (its bytes); returns the gaps."""
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

    def close_cursor(self, cursor: Cursor, *, last: bool) -> Program[None]:
        """Closing ``cursor``: its stream is dropped. Closing the file (``last``) with a disk
        cache writes through what a stream left in part-filled blocks."""
        yield from cursor.drop_stream()
        if last and self.disk is not None and self.identity is not None:
            yield from self.disk.flush(self)

    def mark_closed(self) -> None:
        self.closed = True
        with self._lock:
            self.cache.clear()


_REMOTES = ForkHooks(
    before="_before_fork",
    after_in_parent="_after_fork_in_parent",
    after_in_child="_after_fork_in_child",
)


class Stream:
    """A streaming range response whose bytes go into the cache as the reader reaches them."""

    def __init__(self, remote: RemoteFile, span: ByteRange) -> None:
        self._remote = remote
        self._exchange = remote.new_exchange(RangeSpec.of(span))
        self._program = remote.drive(self._exchange)
        self.position = span.start
        self.stop = span.stop
        self.finished = False

    def pump_until(self, stop: int, *, protect: ByteRange | None) -> Program[None]:
        while self.position < stop and not self.finished:
            paused = yield from advance(self._program)
            if not paused:
                self.finished = True
            start, data = self._exchange.take()
            if data:
                with self._remote._lock:
                    self._remote.cache.insert(start, data, protect=protect)
                self.position = start + len(data)

    def drain(self) -> Program[None]:
        """Read the rest into the cache, to the body's end, which frees the connection."""
        yield from self.pump_until(self.stop + 1, protect=None)

    def close(self) -> Program[None]:
        yield Abandon(self._program)


class Cursor:
    """Per-reader state: the access pattern and the stream it may be consuming."""

    def __init__(self, remote: RemoteFile) -> None:
        self.policy = remote.options.policy
        self.pattern = AccessPattern(self.policy)
        self.readahead = 0
        self.stream: Stream | None = None

    def drop_stream(self, *, drain: bool = False) -> Program[None]:
        """Stop using the stream. With ``drain`` (the reader moved on, the file stays open) a
        stream with little left is read to its end instead of abandoned."""
        if self.stream is not None:
            stream, self.stream = self.stream, None
            left = stream.stop - stream.position
            if drain and not stream.finished and drain_instead_of_abandoning(left, self.policy):
                try:
                    yield from stream.drain()
                except RangeioError:
                    # Only bytes ahead are lost: the reader's own request comes next, and that
                    # one says what is wrong (a changed file, a dead server) if anything is.
                    pass
            yield from stream.close()


def _still_missing(plan: Sequence[ByteRange], cache: ByteCache) -> list[ByteRange]:
    """``plan`` trimmed to the bytes the cache still lacks (cached islands inside a piece
    stay: the planner chose to refetch those rather than pay a round trip)."""
    out: list[ByteRange] = []
    for r in plan:
        gaps = cache.missing(r)
        if gaps:
            out.append(ByteRange(gaps[0].start, gaps[-1].stop))
    return out


def _view(out: bytearray, want: ByteRange, part: ByteRange) -> memoryview:
    """The bytes of ``out`` (which holds ``want``) that hold ``part``."""
    return memoryview(out)[part.start - want.start : part.stop - want.start]


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


def resolve_seek(pos: int, size: int, offset: int, whence: int) -> int:
    """The new position for ``seek(offset, whence)``, as io.RawIOBase defines it."""
    if whence == 0:
        new = offset
    elif whence == 1:
        new = pos + offset
    elif whence == 2:
        new = size + offset
    else:
        raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
    if new < 0:
        raise OSError(22, f"negative seek position {new}")
    return new
