"""Deadlines for blocking exchanges: one thread shuts down the socket of an exchange that overran.

A blocking socket read can only be bounded per read, so a server that drips its status line a
byte a second, or sends chunked trailers forever, would hold a thread for as long as it likes.
Each response has a Guard; the sync runner arms it around every wait (the head, each body chunk)
and the one watchdog thread shuts the guarded socket down when a deadline passes, which wakes
the blocked read. The runner then reports the overrun (whatever the client made of the cut).

Arming is two attribute writes (bodies of 1-byte chunks arm once per chunk); the thread sleeps
until the earliest deadline, or indefinitely while nothing is armed.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

Shutdown = Callable[[], None]

_INFINITY = float("inf")


class Guard:
    """One response's deadline and how to cut its connection. Methods other than ``arm`` and
    ``disarm`` may be called from any thread."""

    __slots__ = ("deadline", "fired", "_shutdown", "_dog", "__weakref__")

    def __init__(self, dog: Watchdog) -> None:
        self.deadline: float | None = None
        self.fired = False
        self._shutdown: Shutdown | None = None
        self._dog = dog

    def attach(self, shutdown: Shutdown | None) -> None:
        """How to cut this exchange's connection (the first one given is kept)."""
        if shutdown is None or self._shutdown is not None:
            return
        self._shutdown = shutdown
        if self.fired:  # it overran before the client had a socket to hand over
            _quietly(shutdown)

    def arm(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        self.deadline = deadline
        if deadline < self._dog.wake_at:
            self._dog.wake()

    def disarm(self) -> bool:
        """Stop watching; True if the deadline passed (the connection is then cut)."""
        self.deadline = None
        return self.fired

    def release(self) -> None:
        """The response is closed: never fire again (its socket may serve another request)."""
        self.deadline = None
        self._dog.forget(self)

    def fire(self) -> None:
        self.fired = True
        self.deadline = None
        if self._shutdown is not None:
            _quietly(self._shutdown)


def _quietly(shutdown: Shutdown) -> None:
    try:
        shutdown()
    except Exception:  # already closed or released: nothing is left to cut
        pass


def socket_shutdown(sock: Any) -> Shutdown | None:
    """A Shutdown for a socket (an SSLSocket too: the plain socket method is used, so the TLS
    state another thread is reading through is left alone)."""
    if not isinstance(sock, socket.socket):
        return None
    return lambda: socket.socket.shutdown(sock, socket.SHUT_RDWR)


def connection_shutdown(response: Any) -> Shutdown | None:
    """A Shutdown for the socket under a urllib3 (or urllib3-future) response, found through
    its public ``connection`` property."""
    return socket_shutdown(getattr(getattr(response, "connection", None), "sock", None))


class Watchdog:
    """The process's one watchdog thread (started on first use, a daemon, so it never holds up
    interpreter exit) and the guards of open responses."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Condition(threading.Lock())
        self._guards: set[Guard] = set()
        self._thread: threading.Thread | None = None
        self.wake_at = _INFINITY  # when the thread next looks; arming earlier wakes it

    def guard(self) -> Guard:
        made = Guard(self)
        with self._lock:
            self._guards.add(made)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="rangeio-watchdog", daemon=True
                )
                self._thread.start()
        return made

    def __len__(self) -> int:
        """How many responses it guards (released ones are forgotten)."""
        with self._lock:
            return len(self._guards)

    def forget(self, guard: Guard) -> None:
        with self._lock:
            self._guards.discard(guard)

    def wake(self) -> None:
        with self._lock:
            self._lock.notify()

    def _run(self) -> None:
        with self._lock:
            while True:
                now = time.monotonic()
                for guard in [g for g in self._guards if _due(g, now)]:
                    guard.fire()
                # While looking, every arm wakes the thread; the earliest deadline is published
                # before a second look, so a guard armed after that look sees it and wakes the
                # thread (waiting on this lock) if its own deadline is earlier.
                self.wake_at = _INFINITY
                earliest = _earliest(self._guards)
                self.wake_at = earliest
                if _earliest(self._guards) < earliest:
                    continue
                self._lock.wait(None if earliest == _INFINITY else max(earliest - now, 0.0))


def _due(guard: Guard, now: float) -> bool:
    deadline = guard.deadline
    return deadline is not None and deadline <= now


def _earliest(guards: set[Guard]) -> float:
    return min((d for g in guards if (d := g.deadline) is not None), default=_INFINITY)


WATCHDOG = Watchdog()

# The guard of the request this thread is sending, for a client that hands over its socket
# only while it sends (rangeio's own urllib3 connections, httpx's trace extension).
_sending = threading.local()


def sending(guard: Guard | None) -> None:
    _sending.guard = guard


def attach_sending(shutdown: Shutdown | None) -> None:
    """Called by a client hook during a send: this is the socket the head arrives on."""
    guard: Guard | None = getattr(_sending, "guard", None)
    if guard is not None:
        guard.attach(shutdown)


if hasattr(os, "register_at_fork"):  # POSIX: the thread and the lock's holder stay behind
    os.register_at_fork(after_in_child=WATCHDOG._reset)
