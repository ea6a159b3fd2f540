"""The origin for the download benchmark: nginx on 127.0.0.1 (started through
tests/servers/nginx.py) with an access log to count requests and connections, and the
generated source files it serves."""

from __future__ import annotations

import hashlib
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024
PIECE = 64 * MiB

# One line per request: nginx's connection serial number, the request's number on it, the
# method, status, body bytes sent and the Range header.
LOG_FORMAT = (
    "log_format rangeio_dl '$connection $connection_requests $request_method $status "
    '$body_bytes_sent "$http_range"\'; access_log {root}/access.log rangeio_dl;'
)


def _nginx_module() -> Any:
    tests = str(REPO / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    import servers.nginx as nginx_module

    return nginx_module


def start_nginx(root: Path) -> Any:
    """tests/servers/nginx.py's Nginx, its generated config given an access log.

    The helper formats its module-level CONFIG template when it starts; the template's one
    ``access_log`` directive (off, or the tests' own format) is swapped for this log's for the
    duration of ``start()`` only."""
    module = _nginx_module()
    template = module.CONFIG
    directives = re.findall(r"^\s*access_log [^;]*;", template, re.MULTILINE)
    if len(directives) != 1:
        raise RuntimeError("tests/servers/nginx.py's config changed: not one access_log line")
    server = module.Nginx(root)
    module.CONFIG = template.replace(directives[0].strip(), LOG_FORMAT)
    try:
        server.start()
    finally:
        module.CONFIG = template
    return server


class AccessLog:
    """Counts the requests nginx logged since the last ``mark()``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def _size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def mark(self) -> None:
        self.offset = self._size()

    def settle(self, quiet: float = 0.1, limit: float = 2.0) -> None:
        """Wait (at most ``limit`` s) until the log has not grown for ``quiet`` s: nginx logs a
        request when it finishes sending it, which may trail the client's exit a little."""
        deadline = time.monotonic() + limit
        size, since = self._size(), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.02)
            now_size = self._size()
            if now_size != size:
                size, since = now_size, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return

    def counts(self) -> dict[str, Any]:
        """Requests, distinct connections, statuses and body bytes since the mark."""
        with self.path.open("rb") as f:
            f.seek(self.offset)
            lines = f.read().decode("latin-1").splitlines()
        connections: set[str] = set()
        statuses: dict[str, int] = {}
        body = 0
        for line in lines:
            parts = line.split(" ", 5)
            if len(parts) < 5:
                continue
            connections.add(parts[0])
            statuses[parts[3]] = statuses.get(parts[3], 0) + 1
            if parts[4].isdigit():
                body += int(parts[4])
        return {
            "requests": len(lines),
            "connections": len(connections),
            "statuses": statuses,
            "body_bytes": body,
        }


@dataclass(frozen=True)
class Source:
    path: Path
    size: int
    sha256: str


def make_source(path: Path, size: int) -> Source:
    """``size`` random bytes (os.urandom, 64 MiB at a time), hashed as they are written, then
    synced so that their write-back does not overlap the timed downloads."""
    digest = hashlib.sha256()
    with path.open("wb") as f:
        left = size
        while left:
            piece = os.urandom(min(PIECE, left))
            digest.update(piece)
            f.write(piece)
            left -= len(piece)
        f.flush()
        os.fsync(f.fileno())
    return Source(path, size, digest.hexdigest())


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while piece := f.read(8 * MiB):
            digest.update(piece)
    return digest.hexdigest()
