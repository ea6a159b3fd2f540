"""Sends whose head the watchdog cannot cut run on helper threads; a late head is abandoned.

A borrowed requests or niquests session, a borrowed urllib3 PoolManager and httpx on a kept-alive
connection read the response head without handing over its socket (they have no supported hook
for it), so the watchdog has nothing to shut down and a head dripped forever would hold the
calling thread forever. For a transport that says so (``cuts_head`` False, `_transport/base.py`),
the send runs on a helper thread and the caller waits at most until the head deadline. Past it
the caller gets the overrun at once and the exchange is *abandoned*: whenever the client finally
returns, the helper cuts and closes the response it got and releases its watchdog guard.

Helpers are daemon threads, so one still held by a server that never finishes a head never keeps
the interpreter from exiting (no ``concurrent.futures`` pool: it joins its threads at exit). An
idle helper is reused: the hop then costs two lock handoffs (benchmarks/head_handoff.py).
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from rangeio._core.exchange import Request
from rangeio._core.options import Timeout
from rangeio._engine.fork import ForkHooks
from rangeio._transport.watchdog import Guard, sending

# At most this many helpers at once, busy or held by an abandoned exchange. A helper holds a send
# only until its head arrives, so this is far above the heads a process has in flight (each file
# sends at most ``max_concurrency`` at once); it bounds the threads a server that never finishes
# its heads can pin. Beyond it a send waits for a helper, within its own head deadline.
HELPER_LIMIT = 64
# An idle helper exits after this long: a burst's helpers go once it is over (a new one costs
# about a thread start, far below a request).
IDLE_SECONDS = 60.0


class Abandoned(Exception):
    """The head did not arrive within the deadline: the caller has stopped waiting for it."""


# A Handoff's states. QUEUED -> RUNNING -> DONE, or abandoned by the caller from QUEUED or
# RUNNING; an abandoned send that had not started never starts.
_QUEUED, _RUNNING, _DONE, _ABANDONED = "queued", "running", "done", "abandoned"


class Handoff:
    """One send handed to a helper, and its result. ``wait`` is the caller's side, ``perform``
    and ``finish`` the helper's."""

    __slots__ = ("_send", "_guard", "_lock", "_done", "state", "_result", "_error")

    def __init__(self, transport: Any, request: Request, timeout: Timeout, guard: Guard) -> None:
        self._send = (transport, request, timeout)
        self._guard = guard
        self._lock = threading.Lock()
        self._done = threading.Lock()
        self._done.acquire()  # released by the helper once there is a result
        self.state = _QUEUED
        self._result: Any = None
        self._error: BaseException | None = None

    def wait(self, seconds: float) -> Any:
        """The response, or raise the send's error; Abandoned once ``seconds`` have passed. An
        interruption (KeyboardInterrupt) abandons the send too, then propagates."""
        try:
            arrived = self._done.acquire(timeout=seconds)
        except BaseException:
            self._abandon()
            raise
        if not arrived and self._abandon():
            raise Abandoned
        error, self._error = self._error, None
        if error is not None:
            raise error
        return self._result

    def _abandon(self) -> bool:
        """Stop waiting; False if the result arrived first (the caller takes it after all)."""
        with self._lock:
            if self.state == _DONE:
                return False
            self.state = _ABANDONED
            return True

    def perform(self) -> None:
        """Run the send on this (helper) thread, unless the caller has given up already."""
        with self._lock:
            abandoned = self.state == _ABANDONED
            self.state = _ABANDONED if abandoned else _RUNNING
        if abandoned:
            self._drop()
            return
        transport, request, timeout = self._send
        sending(self._guard)  # a client that announces a new connection's socket attaches it
        try:
            self._result = transport.send(request, timeout)
        except BaseException as exc:  # handed to the caller, whose error it is
            self._error = exc
        finally:
            sending(None)
        with self._lock:
            if self.state == _RUNNING:
                self.state = _DONE
                return
        self._drop()

    def _drop(self) -> None:
        """The caller is gone: cut and close what the send returned, and release the guard."""
        response, self._result, self._error = self._result, None, None
        self._guard.fire()  # from now on the guard cuts whatever is attached to it
        if response is not None:
            try:
                self._guard.attach(getattr(response, "shutdown", None))
                response.close()
            except Exception:  # closing is best effort: the connection is dropped either way
                pass
        self._guard.release()

    def finish(self) -> None:
        """Wake the caller (if it still waits)."""
        self._done.release()


class Helpers:
    """The process's helper threads: idle ones waiting for a send, and sends waiting for a
    helper once HELPER_LIMIT are busy."""

    def __init__(self, limit: int = HELPER_LIMIT) -> None:
        self._limit = limit
        self._reset()
        _HELPERS.add(self)

    def _reset(self) -> None:
        """A fresh start (also in a forked child: the threads and the lock's holder stayed in
        the parent; the parent's sends are its own)."""
        self._lock = threading.Lock()
        self._idle: list[_Helper] = []
        self._waiting: deque[Handoff] = deque()
        self._threads = 0

    def send(
        self, transport: Any, request: Request, timeout: Timeout, guard: Guard, within: float
    ) -> Any:
        """``transport.send`` on a helper thread; Abandoned after ``within`` seconds."""
        handoff = Handoff(transport, request, timeout, guard)
        with self._lock:
            helper = self._idle.pop() if self._idle else None
            start = helper is None and self._threads < self._limit
            if start:
                self._threads += 1
            elif helper is None:
                self._waiting.append(handoff)
        if start:  # outside the lock: starting a thread takes a while
            try:
                helper = _Helper(self)
            except BaseException:  # no thread to be had (RuntimeError): nothing was handed off
                with self._lock:
                    self._threads -= 1
                raise
        if helper is not None:
            helper.give(handoff)
        return handoff.wait(within)

    def next_for(self, helper: _Helper) -> Handoff | None:
        """A waiting send for ``helper``, else None (it is idle from now on)."""
        with self._lock:
            if self._waiting:
                return self._waiting.popleft()
            self._idle.append(helper)
            return None

    def retire(self, helper: _Helper) -> bool:
        """Whether an idle ``helper`` may exit (False: it was just given a send)."""
        with self._lock:
            if helper not in self._idle:
                return False
            self._idle.remove(helper)
            self._threads -= 1
            return True


class _Helper:
    """One helper thread: woken with a send, then takes waiting ones until there are none."""

    __slots__ = ("_helpers", "_wake", "_handoff")

    def __init__(self, helpers: Helpers) -> None:
        self._helpers = helpers
        self._wake = threading.Lock()
        self._wake.acquire()
        self._handoff: Handoff | None = None
        threading.Thread(target=self._run, name="rangeio-head", daemon=True).start()

    def give(self, handoff: Handoff) -> None:
        self._handoff = handoff
        self._wake.release()

    def _run(self) -> None:
        while True:
            if not self._wake.acquire(timeout=IDLE_SECONDS):
                if self._helpers.retire(self):
                    return
                self._wake.acquire()  # a send is being given to it right now
            handoff, self._handoff = self._handoff, None
            while handoff is not None:
                handoff.perform()
                following = self._helpers.next_for(self)
                handoff.finish()  # after going idle, so the caller's next send finds it
                handoff = following


_HELPERS = ForkHooks(after_in_child="_reset")

HELPERS = Helpers()
