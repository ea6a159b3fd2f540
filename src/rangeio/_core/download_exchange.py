"""The download mode of the exchange: a download's requests (If-Range resumes) and answers, bytes handed to a sink as they arrive."""

from __future__ import annotations

from collections.abc import Mapping

from rangeio._core.download import (
    Complete,
    Reset,
    Restart,
    Resume,
    download_spec,
    if_range,
    meaning_of,
)
from rangeio._core.exchange import (
    Action,
    ExchangeStateError,
    RangeExchange,
    ReadBody,
    Skip,
    State,
    _Chunks,
)
from rangeio._core.headers import format_range
from rangeio._core.identity import Identity
from rangeio._core.redirects import ResolvedUrl
from rangeio._core.retry import RetryPolicy, is_retryable
from rangeio._core.validate import Failure, Partial, Redirect, judge
from rangeio.errors import NetworkError, NetworkTimeoutError


class DownloadExchange(RangeExchange):
    """The download mode of the exchange: the bytes of the file from ``cursor`` (to its end, or
    to ``stop`` for a parallel segment) handed to a sink as they arrive, never buffered.

    The same machine as every other face (its states, redirects, retries with Retry-After, the
    presigned fallback to the first URL, the length check), with what a download adds:

    - A resume asks ``bytes=N-`` (or ``N-M`` for a segment) with If-Range of ``pinned`` (the
      record's version: `_core/download.py` ``if_range``). ``plain``: a first request asks the
      whole file without Range.
    - Each answer is judged by ``judge`` and read by ``meaning_of``: a 206 is a Resume (a
      widened one's bytes before the cursor are skipped, a shifted one past it refused), a 200
      a Restart, a 416 Complete or Reset. Complete and Reset end the exchange (``answer``).
    - A Restart is an event the caller must act on: the exchange waits in ``RESTART`` until
      ``restarted()`` says the old progress is reset durably; only then are bytes handed over,
      from byte 0.
    - ``take()`` hands over the bytes placed since the last call and the file offset they go
      to; a caller takes after every chunk, so memory is one chunk.
    - A cut body is resumed from the first byte not received (``position``), with If-Range of
      the version being written; a 206 that ends short of the end is followed by a request for
      the rest (no retry spent). ``one_request`` (haul): neither, the exchange ends instead
      (a cut raises, as its retry policy should be NO_RETRY; a short 206 ends it short).
    - ``limit(stop)``: a segment split by another connection wants nothing from ``stop`` on.
    """

    def __init__(
        self,
        cursor: int,
        stop: int | None,
        *,
        first_url: str,
        target: ResolvedUrl,
        user_headers: Mapping[str, str],
        pinned: Identity | None,
        retry: RetryPolicy,
        allow_downgrade: bool = False,
        follow_redirects: bool = True,
        plain: bool = False,
        one_request: bool = False,
    ) -> None:
        if plain and (cursor or stop is not None or pinned is not None):
            raise ValueError("only a first request from byte 0 to the end is a plain GET")
        if stop is not None and not cursor < stop:
            raise ValueError(f"an empty segment [{cursor}, {stop})")
        super().__init__(
            None if plain else download_spec(cursor, stop),
            first_url=first_url,
            target=target,
            user_headers=user_headers,
            pinned=pinned,
            retry=retry,
            max_full_body=None,
            allow_downgrade=allow_downgrade,
            follow_redirects=follow_redirects,
        )
        self._range_start = cursor  # where the bytes of the next take() go
        self._limit = stop
        self._one_request = one_request
        self._answer: Resume | Restart | Complete | Reset | None = None
        self._skip = 0
        self._finished = False
        self.headers: Mapping[str, str] = {}

    # -- what the caller reads ---------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self._finished

    @property
    def answer(self) -> Resume | Restart | Complete | Reset:
        """What the last answer with a meaning meant: the body being received (Resume,
        Restart), or how the exchange ended (Complete, Reset, or the last body's)."""
        if self._answer is None:
            raise ExchangeStateError(f"answer of a download exchange in state {self._state.name}")
        return self._answer

    @property
    def position(self) -> int:
        """The file offset of the next byte to arrive in order (what a resume asks from)."""
        return self._cursor()

    @property
    def end(self) -> int | None:
        """Where the bytes this exchange is after end, as far as known: the segment's stop, or
        the file's size (None while unknown)."""
        if self._limit is not None:
            return self._limit
        answer = self._answer
        if isinstance(answer, Restart):
            return answer.length
        if isinstance(answer, Resume):
            return answer.total if answer.total is not None else answer.range.stop
        return self._pinned.size if self._pinned is not None else None

    @property
    def resolved(self) -> ResolvedUrl:
        """Where the requests of this exchange ended up (after redirects)."""
        return self._resolved()

    # -- what the caller says ----------------------------------------------------------------

    def restarted(self) -> None:
        """The old progress is reset durably (``PartFiles.begin``): bytes of the 200 may flow,
        placed from byte 0 (RESTART -> BODY)."""
        self._expect("restarted", State.RESTART)
        self._state = State.BODY

    def limit(self, stop: int) -> None:
        """Nothing from ``stop`` on is wanted any more (another connection took it over). In
        BODY the rest of the body is then unwanted once ``stop`` is reached (``body_wanted``);
        in READY a pending resume asks only up to it, or the exchange ends if nothing is left."""
        self._expect("limit", State.READY, State.BODY)
        if self._limit is None or stop < self._limit:
            self._limit = stop
        if self._cursor() < self._limit:
            if self._state is State.READY and self._resume_specs:
                self._resume_specs = (download_spec(self._cursor(), self._limit),)
            return
        if self._state is State.BODY:
            self._enough = True
        else:
            self._finished = True
            self._state = State.DONE

    def start_over(self) -> None:
        """The bytes received cannot be resumed from (the caller could not make them durable:
        a version no record can hold): the next request asks for the whole file, with
        nothing pinned, and its answer restarts the file (READY; a whole file only)."""
        self._expect("start_over", State.READY)
        if self._limit is not None:
            raise ExchangeStateError("start_over() of a segment: only a whole file starts over")
        self._resume_specs = ()
        self._pinned = None
        self._buffer = _Chunks()
        self._range_start = 0
        self._answer = None

    # -- the machine -------------------------------------------------------------------------

    def _request_headers(self) -> dict[str, str]:
        """Range, and If-Range of the version being resumed (never If-Match: a changed file
        must come back whole, as a Restart, instead of failing)."""
        if not self._resume_specs:
            return {}
        return {"Range": format_range(self._resume_specs), **if_range(self._pinned)}

    def _settle(self, action: Action | None) -> None:
        super()._settle(action)
        if self._state is State.BODY and isinstance(self._answer, Restart):
            self._state = State.RESTART

    def _on_response(self, status: int, headers: Mapping[str, str], now: float) -> Action:
        requested = self._resume_specs
        verdict = judge(requested, status, headers, self._pinned, now=now)
        if isinstance(verdict, Redirect):
            return self._follow(verdict, now)
        if isinstance(verdict, Failure):
            return self._after_failure(verdict)
        answer = meaning_of(
            requested, verdict, status, headers, self._pinned, self._cursor(), now=now
        )
        if self._url != self._first_url:
            self._tried_first_url = False  # this target works (see RangeExchange)
        self.headers = headers
        self._answer = answer
        if isinstance(answer, (Complete, Reset)):
            self._finished = True
            return Skip()
        if isinstance(answer, Restart):
            # A new file from byte 0: nothing before counts, and its own version is the one a
            # resume of this body asks If-Range for (a segment's stop no longer applies).
            self._buffer = _Chunks()
            self._range_start = 0
            self._limit = None
            self._pinned = answer.identity
            self._skip = 0
            self._expected = answer.length
            return ReadBody(answer.length)
        assert isinstance(verdict, Partial)
        self._pinned = (
            answer.identity if self._pinned is None else self._pinned.merged(answer.identity)
        )
        self._skip = answer.skip
        self._expected = verdict.range.length
        return ReadBody(verdict.range.length)

    def _on_data(self, chunk: bytes | bytearray | memoryview) -> None:
        size = len(chunk)
        self._check_length(size)
        self._received += size
        piece: bytes | bytearray | memoryview = chunk
        if self._skip:
            # A widened 206: its first bytes lie before our cursor, already on disk.
            dropped = min(self._skip, size)
            self._skip -= dropped
            piece = memoryview(chunk)[dropped:]
        if self._limit is not None:
            room = self._limit - self._cursor()
            if len(piece) >= room:
                piece = memoryview(piece)[: max(room, 0)]
                self._enough = True  # the rest of the body is another connection's
        if len(piece):
            self._buffer.append(piece)

    def _on_end(self) -> Action | None:
        if self._expected is not None and self._received < self._expected and not self._enough:
            return self._cut()
        end = self.end
        if (
            not self._enough
            and not self._one_request
            and isinstance(self._answer, Resume)
            and end is not None
            and self._cursor() < end
        ):
            # A 206 that stopped short of what was asked (a server capping its answers): ask
            # for the rest. Not a failure, so no retry is spent; each answer brings at least
            # one byte asked for (judge()), so this ends.
            self._resume_from_position()
            return Skip()
        self._finished = True
        return None

    def _on_error(self, error: NetworkError) -> Action:
        if not is_retryable(error):
            raise error
        if self._answer is not None and not self._finished:
            return self._cut(error)
        return self._retry_or_raise(error)

    def _cut(self, error: NetworkError | None = None) -> Action:
        end = self.end
        if self._enough or (end is not None and self._cursor() >= end):
            if isinstance(error, NetworkTimeoutError):
                # Every byte arrived but the body never ended (endless chunked trailers, cut
                # by the low-speed floor): a retry would not end it either.
                raise error
            # Every byte wanted arrived, then the connection went (before a chunked body's
            # last chunk, say): that is a success, not a cut.
            self._finished = True
            return Skip()
        self._resume_from_position()
        return self._retry_or_raise(
            error or NetworkError(f"connection closed before the body ended, from {self._url}")
        )

    def _resume_from_position(self) -> None:
        """The next request asks from the first byte not received, of the version pinned by
        the last answer (If-Range)."""
        self._resume_specs = (download_spec(self._cursor(), self._limit),)
        self._answer = None
        self._verdict = None


__all__ = ["DownloadExchange"]
