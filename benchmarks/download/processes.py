"""Run one download client as a child process and measure it: wall time, CPU time (user+sys)
and peak RSS.

CPU time comes from ``os.wait4`` (the child's own rusage, its waited-for children included).
Peak RSS cannot: on Linux a child's ``ru_maxrss`` starts from its parent's high-water mark at
fork (exec keeps the larger value), so every child of this ~60 MiB Python process would show at
least ~60 MiB. The child is therefore started by GNU time (``/usr/bin/time -f %M``), a small C
program whose own child's ``ru_maxrss`` is the real one."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

READY_SECONDS = 60.0  # a Python child's interpreter start and imports
GNU_TIME = "/usr/bin/time"


def gnu_time_available() -> bool:
    return os.access(GNU_TIME, os.X_OK)


@dataclass
class ProcessRun:
    wall_s: float = 0.0
    cpu_s: float = 0.0
    user_s: float = 0.0
    sys_s: float = 0.0
    peak_rss_kib: int | None = None  # None without GNU time
    returncode: int | None = None
    timed_out: bool = False
    startup_cpu_s: float = 0.0  # Python children: interpreter + imports, left out of cpu_s
    answer: dict[str, Any] = field(default_factory=dict)  # Python children: their JSON line
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


class _Reaper(threading.Thread):
    """Blocks in os.wait4 for one pid and notes when it returned."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.status = 0
        self.usage: Any = None
        self.exited_at = 0.0
        self.done = threading.Event()

    def run(self) -> None:
        try:
            _, self.status, self.usage = os.wait4(self.pid, 0)
        finally:
            self.exited_at = time.perf_counter()
            self.done.set()


def _read_line(fd: int, deadline: float) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("child did not report ready in time")
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 1)
        if not chunk:
            raise RuntimeError("child exited before reporting ready")
        data += chunk
    return data


def run(argv: list[str], *, timeout: float, handshake: bool = False) -> ProcessRun:
    """Run ``argv`` to completion (killed after ``timeout`` s).

    Without ``handshake`` the clock runs from just before the fork to the child's exit. With it
    (python_peer.py) the child first prints a ready line once its imports are done, and the
    clock starts when it is told to go: interpreter start-up is not the download's time, and
    its CPU (the child reports it) is subtracted from the child's total."""
    out = ProcessRun()
    with tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile() as peak:
        if gnu_time_available():
            argv = [GNU_TIME, "-f", "%M", "-o", peak.name, *argv]
        started = time.perf_counter()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if handshake else subprocess.DEVNULL,
            stdout=subprocess.PIPE if handshake else subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,  # its own process group: killed as a whole on timeout
        )
        reaper = _Reaper(proc.pid)
        reaper.start()
        try:
            if handshake:
                assert proc.stdin is not None and proc.stdout is not None
                line = _read_line(proc.stdout.fileno(), time.monotonic() + READY_SECONDS)
                out.startup_cpu_s = float(json.loads(line).get("startup_cpu_s", 0.0))
                started = time.perf_counter()
                proc.stdin.write(b"go\n")
                proc.stdin.flush()
            if not reaper.done.wait(timeout):
                out.timed_out = True
        finally:
            if not reaper.done.is_set():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                reaper.done.wait(10)
            if reaper.done.is_set():
                proc.returncode = os.waitstatus_to_exitcode(reaper.status)
            if proc.stdin:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
        out.wall_s = reaper.exited_at - started
        out.returncode = proc.returncode
        if reaper.usage is not None:
            out.user_s = reaper.usage.ru_utime
            out.sys_s = reaper.usage.ru_stime
            out.cpu_s = max(out.user_s + out.sys_s - out.startup_cpu_s, 0.0)
        if gnu_time_available():
            lines = peak.read().decode(errors="replace").split()
            if lines and lines[-1].isdigit():
                out.peak_rss_kib = int(lines[-1])
        if handshake and proc.stdout is not None:
            rest = proc.stdout.read().decode(errors="replace").strip().splitlines()
            proc.stdout.close()
            for text in reversed(rest):
                with contextlib.suppress(ValueError):
                    out.answer = dict(json.loads(text))
                    break
        err.seek(0)
        out.stderr = err.read()[-4000:].decode(errors="replace")
    return out
