"""Probe: what a server does with ranges, learnt by a few small range requests, read by judge().

The probe is a state machine over exchanges (`_core/exchange.py` RangeExchange: redirects,
retries and every verdict of `_core/validate.py` judge(), so nothing is parsed twice). A shell
runs the exchange ``next_exchange()`` hands it, then reports how it ended::

    while (exchange := probe.next_exchange()) is not None:
        run it; probe.on_result(exchange.result), or probe.on_failure(error)
    facts = probe.facts(now)

The requests, in order, each read for what it says:

1. ``SUFFIX``: ``bytes=-1``, the last byte. A 206 says ranges and suffix ranges are honoured and
   gives the size; a 200 says ranges are ignored; a refusal (501, 400, 416 inside the file: the
   open's own `suffix_refused()`) sends the probe to
2. ``PREFIX``: ``bytes=0-0``. A server that ignores ranges and answers with a body too big to
   buffer is then asked
3. ``HEAD``: the size and validators, without a body.
4. ``MULTIPART``: two one-byte ranges, the first and the last (a file of at least 3 bytes, so
   they are neither adjacent nor overlapping). A multipart/byteranges answer says multipart
   works; a 200 or one part says it does not. With ``max_ranges`` above 2 the probe goes on
   finding the server's cap as the read path does (`_core/rangecap.py` RangeCap: halving from
   the most asked), one request per step.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rangeio._core.exchange import Action, RangeExchange, Request, Result
from rangeio._core.headers import RangeSpec
from rangeio._core.identity import Identity
from rangeio._core.options import FileOptions
from rangeio._core.planner import suffix_refused
from rangeio._core.rangecap import CapState, RangeCap
from rangeio._core.redirects import ResolvedUrl
from rangeio.errors import HTTPStatusError, ProtocolError, RangeioError, RangeNotSupportedError

# A 200 to a range request is read (the whole file, so the size is its length) up to this
# much; a larger one is dropped unread and the size asked for with a HEAD. What one round trip
# carries at 100 Mbit/s and 20 ms, as `_core/rangecap.py` FULL_BODY_SLACK.
MAX_PROBE_BODY = 256 * 1024
# Two one-byte ranges, first and last, are disjoint and not adjacent only from 3 bytes on
# (a server may merge adjacent ranges into one part, §14.2, which would say nothing).
MIN_MULTIPART_SIZE = 3


class Step(enum.Enum):
    SUFFIX = "suffix"
    PREFIX = "prefix"
    HEAD = "head"
    MULTIPART = "multipart"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class Hop:
    """One redirect on the way: its status, the URL that answered it, where it pointed."""

    status: int
    url: str
    location: str | None


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What a probe learnt of one URL. ``None`` stands for "the probe could not tell".

    ``ranges``: whether a range request got a 206. ``suffix_ranges``: whether ``bytes=-N`` did.
    ``multipart``: whether two ranges in one request got multipart/byteranges.
    ``max_ranges``: the most ranges one request got a multipart answer for;
    ``refused_ranges``: the fewest it was refused for (so the cap lies in between).
    ``first_byte``: seconds from the first request to the first response head; ``elapsed``:
    the whole probe. ``headers``: the first usable answer's headers (lower-case names).
    """

    url: str
    final_url: str
    size: int | None
    etag: str | None
    etag_weak: bool | None
    last_modified: str | None
    content_type: str | None
    ranges: bool | None
    suffix_ranges: bool | None
    multipart: bool | None
    max_ranges: int | None
    refused_ranges: int | None
    redirects: tuple[Hop, ...]
    requests: int
    first_byte: float | None
    elapsed: float
    headers: Mapping[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        """A header of the first usable answer (any case), or None."""
        return self.headers.get(name.lower())


class _NotingExchange(RangeExchange):
    """A RangeExchange that notes each answer's URL, status and headers, and when the first
    one came, for the probe (the exchange still decides everything)."""

    def __init__(
        self, probe: Probe, spec: RangeSpec | Sequence[RangeSpec] | None, **kwargs: Any
    ) -> None:
        super().__init__(spec, **kwargs)
        self._probe = probe
        self._asked: Request | None = None

    def next_request(self, now: float) -> Request | None:
        request = super().next_request(now)
        if request is not None:
            self._probe.note_request(now)
            self._asked = request
        return request

    def on_response(self, status: int, headers: Mapping[str, str], now: float) -> Action:
        assert self._asked is not None
        self._probe.note_answer(self._asked.url, status, headers, now)
        return super().on_response(status, headers, now)


class Probe:
    """The probe of ``url`` (see the module). ``max_ranges`` bounds the cap search (2: only
    whether multipart works; 0: no multipart request at all)."""

    def __init__(self, url: str, options: FileOptions, *, max_ranges: int = 2) -> None:
        if max_ranges < 0 or max_ranges == 1:
            raise ValueError("max_ranges must be 0 (no multipart test) or at least 2")
        self.url = url
        self._options = options
        self._max_ranges = max_ranges
        self.step = Step.SUFFIX
        self._target = ResolvedUrl(url)
        self._identity: Identity | None = None
        self._size: int | None = None
        self._ranges: bool | None = None
        self._suffix: bool | None = None
        self._multipart: bool | None = None
        self._cap = RangeCap(max(max_ranges, 2))
        self._asking = 0  # ranges in the multipart request in flight
        self._multipart_asked = False
        self._content_type: str | None = None
        self._headers: dict[str, str] | None = None
        self._hops: list[Hop] = []
        self._started: float | None = None
        self._first_byte: float | None = None
        self.requests = 0
        self._running = False

    # -- transitions ------------------------------------------------------------------------

    def next_exchange(self) -> RangeExchange | None:
        """The exchange to run next, or None when the probe is over."""
        if self._running:
            raise RuntimeError("the previous exchange has not been reported")
        step = self.step
        if step is Step.DONE:
            return None
        method = "GET"
        max_body: int | None = MAX_PROBE_BODY
        spec: RangeSpec | list[RangeSpec] | None
        if step is Step.SUFFIX:
            spec = RangeSpec.suffix(1)
        elif step is Step.PREFIX:
            spec = RangeSpec.closed(0, 1)
        elif step is Step.HEAD:
            spec, method, max_body = None, "HEAD", None
        else:
            assert self._size is not None
            spec = spread(min(self._cap.limit(), self._size // 2), self._size)
            self._asking = len(spec)
            self._multipart_asked = True
        self._running = True
        return _NotingExchange(
            self,
            spec,
            first_url=self.url,
            target=self._target,
            user_headers=self._options.headers,
            pinned=self._identity,
            retry=self._options.retries,
            max_full_body=max_body,
            method=method,
            allow_downgrade=self._options.allow_https_downgrade,
        )

    def on_result(self, result: Result) -> None:
        """The exchange ended with ``result``: read it, and move on."""
        self._running = False
        self._target = result.url
        step = self.step
        if step is Step.MULTIPART:
            if result.multipart:
                self._cap.answered(self._asking)
            elif result.full:
                self._cap.refused(self._asking)
            else:
                self._cap.unusable()  # one part for ranges far apart
            self._after_multipart()
            return
        self._identity = result.identity.merged(Identity(size=result.total))
        self._content_type = result.content_type
        if step is Step.HEAD:
            self._size = result.total
            self.step = Step.DONE
            return
        if result.unsatisfiable:  # an empty file: no byte to ask for
            self._size = 0
            self.step = Step.DONE
            return
        self._size = result.total
        honoured = not result.full
        self._ranges = honoured
        if step is Step.SUFFIX:
            self._suffix = honoured
        if not honoured:
            self._suffix = False if self._suffix is None else self._suffix
            self._multipart = False  # a server that ignores Range honours no range
            self.step = Step.DONE
            return
        self._start_multipart()

    def on_failure(self, error: RangeioError) -> None:
        """The exchange failed with ``error``: raise it if it ends the probe, else move on."""
        self._running = False
        step = self.step
        if step is Step.SUFFIX and isinstance(error, (HTTPStatusError, ProtocolError)):
            status = None if isinstance(error, ProtocolError) else error.status
            if suffix_refused(status):
                self._suffix = False
                self.step = Step.PREFIX
                return
        if step in (Step.SUFFIX, Step.PREFIX) and isinstance(error, RangeNotSupportedError):
            # Ranges ignored and the whole file too big to read here: ask for the size.
            self._ranges = False
            self._suffix = False if self._suffix is None else self._suffix
            self._multipart = False
            self.step = Step.HEAD
            return
        if step is Step.MULTIPART and isinstance(
            error, (RangeNotSupportedError, ProtocolError, HTTPStatusError)
        ):
            if isinstance(error, RangeNotSupportedError):
                self._cap.refused(self._asking)  # a 200 too big to read
            else:
                self._cap.unusable()
            self._after_multipart()
            return
        raise error

    def _start_multipart(self) -> None:
        size = self._size
        if self._max_ranges < 2 or size is None or size < MIN_MULTIPART_SIZE:
            self.step = Step.DONE
            return
        self.step = Step.MULTIPART

    def _after_multipart(self) -> None:
        cap = self._cap
        self._multipart = cap.state is CapState.MULTIPART
        assert self._size is not None
        # Go on while the cap says a larger group is worth asking and the file holds it.
        next_count = min(cap.limit(), self._size // 2)
        if cap.state is CapState.MULTIPART and next_count > cap.largest_answered:
            return
        if cap.state is CapState.REFUSING and next_count >= 2:
            return
        self.step = Step.DONE

    # -- notes from the exchanges -----------------------------------------------------------

    def note_request(self, now: float) -> None:
        self.requests += 1
        if self._started is None:
            self._started = now

    def note_answer(self, url: str, status: int, headers: Mapping[str, str], now: float) -> None:
        if self._first_byte is None and self._started is not None:
            self._first_byte = max(now - self._started, 0.0)
        if 300 <= status < 400:
            self._hops.append(Hop(status, url, headers.get("location")))
        elif self._headers is None and status in (200, 206) and self.step is not Step.MULTIPART:
            self._headers = dict(headers)

    # -- the answer -------------------------------------------------------------------------

    def facts(self, now: float) -> ProbeResult:
        """What the probe learnt; ``now`` is the clock at its end."""
        if self.step is not Step.DONE:
            raise RuntimeError("the probe is not over")
        identity = self._identity or Identity()
        etag = identity.etag
        cap = self._cap
        tested = self._multipart_asked
        return ProbeResult(
            url=self.url,
            final_url=self._target.url,
            size=self._size,
            etag=etag.header_value() if etag is not None else None,
            etag_weak=etag.weak if etag is not None else None,
            last_modified=identity.last_modified,
            content_type=self._content_type,
            ranges=self._ranges,
            suffix_ranges=self._suffix,
            multipart=self._multipart,
            max_ranges=(cap.largest_answered or None) if tested else None,
            refused_ranges=cap.smallest_refused if tested else None,
            redirects=tuple(self._hops),
            requests=self.requests,
            first_byte=self._first_byte,
            elapsed=max(now - self._started, 0.0) if self._started is not None else 0.0,
            headers=self._headers or {},
        )


def spread(count: int, size: int) -> list[RangeSpec]:
    """``count`` one-byte ranges over a file of ``size`` bytes: the first and the last byte and
    evenly between, never two adjacent (``size >= 2 * count - 1``)."""
    if count < 2 or size < 2 * count - 1:
        raise ValueError("need at least 2 ranges, and 2 bytes per range")
    last = size - 1
    starts = sorted({round(i * last / (count - 1)) for i in range(count)})
    return [RangeSpec.closed(s, s + 1) for s in starts]
