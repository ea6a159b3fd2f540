"""Download progress on stderr: tqdm when installed, else a one-line bar."""

from __future__ import annotations

import os
import time

TYPE_CHECKING = False  # not typing's: see rangeio/cli/__init__.py
if TYPE_CHECKING:
    from typing import IO, Any


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover - the loop always returns


class _PlainBar:
    """A one-line progress bar for when tqdm is not installed."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._start = time.monotonic()
        self._first: int | None = None
        self._last_draw = 0.0

    def update(self, done: int, total: int | None) -> None:
        now = time.monotonic()
        if self._first is None:
            self._first, self._start = done, now
        if now - self._last_draw < 0.2 and done != total:
            return
        self._last_draw = now
        elapsed = max(now - self._start, 1e-6)
        rate = (done - self._first) / elapsed
        if total:
            eta = f"{(total - done) / rate:.0f}s" if rate > 0 else "?"
            line = (
                f"{100 * done / total:5.1f}% {human(done)}/{human(total)} {human(rate)}/s ETA {eta}"
            )
        else:
            line = f"{human(done)} {human(rate)}/s"
        self._stream.write("\r" + line + "\x1b[K")
        self._stream.flush()

    def close(self) -> None:
        self._stream.write("\n")
        self._stream.flush()


def _columns(stream: IO[str]) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError):
        return 0


class Progress:
    """Draws download progress on stderr (tqdm when installed); the callback for
    ``rangeio.download(on_progress=...)``."""

    def __init__(self, stream: IO[str], description: str) -> None:
        self._stream = stream
        self._description = description
        self._bar: Any = None
        self._plain: _PlainBar | None = None
        self._shown = 0

    def __call__(self, done: int, total: int | None) -> None:
        if self._bar is None and self._plain is None:
            try:
                from tqdm import tqdm
            except ImportError:
                self._plain = _PlainBar(self._stream)
            else:
                sized = _columns(self._stream) > 0
                self._bar = tqdm(
                    total=total,
                    initial=done,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=self._description,
                    file=self._stream,
                    # A terminal that reports no size (a fresh pty) draws nothing: give it 80x24.
                    dynamic_ncols=sized,
                    ncols=None if sized else 80,
                    nrows=None if sized else 24,
                    mininterval=0.2,
                )
                self._shown = done
                return
        if self._plain is not None:
            self._plain.update(done, total)
        elif self._bar is not None:
            if total is not None and self._bar.total != total:
                self._bar.total = total
            if done > self._shown:
                self._bar.update(done - self._shown)
                self._shown = done

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self._plain is not None:
            self._plain.close()
