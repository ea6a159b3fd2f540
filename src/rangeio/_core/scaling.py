"""Adaptive segmentation: from measured throughput, when a download opens another connection and when it stops adding."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

# The most connections ``connections="auto"`` opens to one server. 8 is what segmented
# downloaders are commonly run with (aria2c -x8 -s8, the benchmark's peer; aria2 allows at most
# 16 per server, and its default is 1), and where servers and CDNs are still known to accept
# them: many start refusing above 12 to 16 concurrent range requests from one client (see
# `_core/options.py`). curl's --parallel-max (50) bounds transfers of many files, not one.
AUTO_MAX_CONNECTIONS = 8

# An added connection must raise the total throughput by at least this share of what it was
# before, or adding stops for good. A flow's rate varies by several percent window to window
# on a quiet link and by more on a busy machine: with samples 30 % off either way, 15 % let a
# flat link keep a needless second connection in 4 % of simulated runs, 20 % in 2 %
# (tests/core/test_scaling.py's model, the default windows). A connection that scales linearly adds 100 % at the first
# step and still 14 % at the eighth, so 20 % costs a capped link nothing before the cap.
GROWTH_MARGIN = 0.2

# A step whose gain per added connection is at least this share of one connection's rate
# before it scaled (nearly) linearly: each connection is capped on its own (per-flow shaping,
# a window-limited long path), so the next step multiplies the count by BOOST_FACTOR instead
# of adding one. 1 -> 2 -> 8 reaches aria2c's -x8 in two measured steps; doubling would cost
# one more window. 0.6, not nearer 1: on a busy machine the probe's window measured as little
# as 0.73 of a connection's rate on a link that scales exactly; a boost too many is undone.
LINEAR_SHARE = 0.6
BOOST_FACTOR = 4

# A total rate (bytes per second) at which adding stops, whatever the last step gained: past
# it the download's other stages are the floor, not the network. Judgement call from this
# machine (issue 16): an fdatasync'ed write-back of about 300 MB/s, SHA-256 at about 1 GB/s.
# More connections then cannot finish sooner, and on a disk they spread the writes over as
# many far-apart regions (measured before this limit: auto went to 8 connections and took
# 2.1x one connection's time for 512 MiB from loopback nginx). A link capped at 25 MB/s per connection reaches 200 MB/s with
# 8, below it.
ENOUGH_RATE = 250_000_000

# A measurement window lasts at least WINDOW_SECONDS and WINDOW_BYTES (so that a slow link's
# window still holds enough chunks to mean something), and at most MAX_WINDOW_SECONDS (a
# link slower than WINDOW_BYTES in that long is measured on what arrived). Each window is
# time the ramp to 8 connections takes (two windows and three round trips in all), so it is
# as short as the noise allows: 0.07 s is 1.75 MB of a 25 MB/s connection, seven times a
# token bucket's burst (256 KiB in the benchmark's shaper). With samples 30 % off either way,
# a flat link keeps a needless second connection in 2 % of simulated runs (4 % with 0.1 s
# windows sampled half as often; tests/core/test_scaling.py), and the ramp is 0.06 s shorter.
WINDOW_SECONDS = 0.07
WINDOW_BYTES = 1024 * 1024
MAX_WINDOW_SECONDS = 2.0

# How often an "auto" download's coordinator wakes: it samples the bytes received (a 0.07 s
# window gets 7 samples) and makes the checkpoints that are due (10 ms late at most, against
# a 1 s / 8 MiB interval); 100 wake-ups a second cost it nothing measurable.
SAMPLE_SECONDS = 0.01

# How long added connections may take to deliver their first byte (connect, TLS, the
# request's round trip) before the step is measured with those that did.
START_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class ScalingPolicy:
    """How ``connections="auto"`` grows: the cap, the margin a connection must add, how long
    each measurement lasts. The constants above give each default its reason."""

    max_connections: int = AUTO_MAX_CONNECTIONS
    growth_margin: float = GROWTH_MARGIN
    linear_share: float = LINEAR_SHARE
    boost_factor: int = BOOST_FACTOR
    window_seconds: float = WINDOW_SECONDS
    window_bytes: int = WINDOW_BYTES
    max_window_seconds: float = MAX_WINDOW_SECONDS
    start_seconds: float = START_SECONDS
    sample_seconds: float = SAMPLE_SECONDS
    enough_rate: float = ENOUGH_RATE

    def __post_init__(self) -> None:
        if self.max_connections < 1:
            raise ValueError("max_connections must be >= 1")
        if not self.growth_margin > 0:
            raise ValueError("growth_margin must be > 0")
        if not 0 < self.linear_share <= 1:
            raise ValueError("linear_share must be in (0, 1]")
        if self.boost_factor < 2:
            raise ValueError("boost_factor must be >= 2")
        if self.window_seconds <= 0 or self.max_window_seconds < self.window_seconds:
            raise ValueError("need 0 < window_seconds <= max_window_seconds")
        if self.enough_rate <= 0:
            raise ValueError("enough_rate must be > 0")
        if self.window_bytes < 0 or self.start_seconds <= 0 or self.sample_seconds <= 0:
            raise ValueError("window_bytes must be >= 0, start_seconds and sample_seconds > 0")


def takes_ranges(headers: Mapping[str, str]) -> bool:
    """Whether a whole-file 200 says its server takes byte ranges (``Accept-Ranges: bytes``,
    RFC 9110 §14.3), so that "auto" may split the rest of it over more connections. One that
    does not say so keeps its one connection: nothing is lost, the 200 carries the whole file
    (``headers`` folded: lower-case names)."""
    units = headers.get("accept-ranges", "")
    return any(unit.strip().lower() == "bytes" for unit in units.split(","))


class Phase(Enum):
    WAITING = "waiting"  # connections opened, not all delivering yet (or none yet at all)
    MEASURING = "measuring"  # a window of a steady set of delivering connections
    DONE = "done"  # adding stopped for good: the count only falls from here


class ScalingStateError(RuntimeError):
    """The Scaler was fed samples out of order (time going back, bytes shrinking)."""


@dataclass(frozen=True, slots=True)
class Step:
    """One measured window: ``connections`` delivering, ``rate`` bytes per second in all."""

    connections: int
    rate: float


class Scaler:
    """Decides, from samples of a download's total bytes received, how many connections to add.

    Feed it ``observe(at, received, delivering, starting)`` as bytes arrive: ``at`` the runner's
    monotonic time, ``received`` the bytes received so far in all, ``delivering`` the
    connections that have received body bytes and are still open, ``starting`` the ones opened
    but not delivering yet. It answers how many connections to open now (mostly 0).

    It starts with one connection and measures a window once every opened connection delivers;
    then it adds one and measures again. A step that raised the total by less than
    ``growth_margin`` ends the growth for good, closing what that step opened (so a single fast
    link goes back to one connection); noisy samples never flap, since nothing is tried again
    once growth has ended. A step that scaled nearly linearly multiplies the count by
    ``boost_factor``; any other gain adds one more. A total of ``enough_rate`` ends the growth
    too (one connection that fast never gets a probe). Never beyond ``max_connections``, nor past
    ``limit`` (what the file's size allows: `_core/segments.py` ``initial_workers``)."""

    def __init__(self, policy: ScalingPolicy, *, limit: int) -> None:
        self.policy = policy
        self.cap = max(1, min(policy.max_connections, limit))
        self.phase = Phase.WAITING if self.cap > 1 else Phase.DONE
        self.steps: list[Step] = []  # what each finished window measured, in order
        self._waiting_since: float | None = None
        self._window_at = 0.0
        self._window_bytes = 0
        self._window_connections = 0
        self._last_at: float | None = None
        self._last_received = 0

    @property
    def done(self) -> bool:
        return self.phase is Phase.DONE

    def observe(self, at: float, received: int, delivering: int, starting: int) -> int:
        """How many connections to open now; negative: how many to close (the last step added
        them and did not pay), after which the Scaler is done."""
        if self._last_at is not None and (at < self._last_at or received < self._last_received):
            raise ScalingStateError("samples must not go back in time or in bytes")
        if delivering < 0 or starting < 0:
            raise ScalingStateError("connection counts must be >= 0")
        self._last_at, self._last_received = at, received
        if self.phase is Phase.DONE:
            return 0
        if self.phase is Phase.WAITING:
            return self._wait(at, received, delivering, starting)
        return self._measure(at, received, delivering, starting)

    def stop(self) -> None:
        """No more connections, whatever the samples say (the download is ending)."""
        self.phase = Phase.DONE

    # -- the phases --------------------------------------------------------------------------

    def _wait(self, at: float, received: int, delivering: int, starting: int) -> int:
        if self._waiting_since is None:
            self._waiting_since = at
        late = at - self._waiting_since >= self.policy.start_seconds
        if delivering == 0:
            if starting == 0 and self.steps:
                self.phase = Phase.DONE  # every connection ended: the download is ending
            return 0
        if starting and not late:
            return 0
        if self.steps and delivering <= self.steps[-1].connections:
            # The step opened nothing that delivers (no segment left to split, or the new
            # connections failed): there is nothing more to gain by asking again.
            self.phase = Phase.DONE
            return 0
        self._begin_window(at, received, delivering)
        return 0

    def _begin_window(self, at: float, received: int, delivering: int) -> None:
        self.phase = Phase.MEASURING
        self._window_at, self._window_bytes, self._window_connections = at, received, delivering
        self._waiting_since = None

    def _measure(self, at: float, received: int, delivering: int, starting: int) -> int:
        if delivering != self._window_connections or starting:
            # A connection ended (its segment done) or another started: this window's rate is
            # not one set's. Measure afresh with the set there is now.
            if delivering == 0:
                self.phase = Phase.DONE
                return 0
            self._begin_window(at, received, delivering)
            return 0
        elapsed = at - self._window_at
        got = received - self._window_bytes
        policy = self.policy
        if elapsed < policy.window_seconds:
            return 0
        if got < policy.window_bytes and elapsed < policy.max_window_seconds:
            return 0
        step = Step(delivering, got / elapsed)
        self.steps.append(step)
        wanted = self._next_count(step)
        if wanted <= delivering:
            self.phase = Phase.DONE
            return wanted - delivering
        self.phase = Phase.WAITING
        self._waiting_since = at
        return wanted - delivering

    def _next_count(self, step: Step) -> int:
        """The count the next step measures: more only while the last step paid."""
        if step.connections >= self.cap:
            return step.connections
        if len(self.steps) == 1:
            if step.rate >= self.policy.enough_rate:
                return step.connections  # one connection already brings enough: stay

            return step.connections + 1  # the first window: probe with one more
        before = self.steps[-2]
        gain = step.rate - before.rate
        added = step.connections - before.connections
        if step.rate >= self.policy.enough_rate and gain >= self.policy.growth_margin * before.rate:
            return step.connections  # it paid, and the total is enough: keep it, add no more
        if before.rate <= 0 or gain < self.policy.growth_margin * before.rate:
            # The last step did not pay: stop, and undo what it added (a single fast link
            # goes back to one connection), but never below what was there before it.
            return before.connections if added > 0 else step.connections
        per_connection = before.rate / before.connections
        if added > 0 and gain >= self.policy.linear_share * per_connection * added:
            return min(self.cap, step.connections * self.policy.boost_factor)
        return min(self.cap, step.connections + 1)
