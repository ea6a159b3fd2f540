"""Start nginx on loopback from a generated config, serving a directory of generated files."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

NGINX_CANDIDATES = (
    "nginx",
    "/usr/sbin/nginx",
    "/usr/local/sbin/nginx",
    "/usr/local/nginx/sbin/nginx",
)

CONFIG = """
worker_processes 1;
daemon off;
{user}
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 512; }}
http {{
    # Which connection served each request, and its number on that connection: tests of
    # keep-alive count connections here (tests/test_keepalive_drain.py).
    log_format conns '$connection $connection_requests $status "$request"';
    access_log {root}/access.log conns;
    client_body_temp_path {root}/tmp_body;
    proxy_temp_path {root}/tmp_proxy;
    fastcgi_temp_path {root}/tmp_fastcgi;
    uwsgi_temp_path {root}/tmp_uwsgi;
    scgi_temp_path {root}/tmp_scgi;
    types {{ application/octet-stream bin; }}
    default_type application/octet-stream;
    keepalive_requests 100000;
    server {{
        listen 127.0.0.1:{port};
        root {root}/www;
        max_ranges 1000;
        location / {{ }}
        # nginx answers a request for more ranges than this with 200 and the whole file.
        location /capped/ {{ alias {root}/www/; max_ranges 64; }}
    }}
}}
"""


def find_nginx() -> str | None:
    for name in NGINX_CANDIDATES:
        path = shutil.which(name) or (name if os.path.exists(name) else None)
        if path:
            return path
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Nginx:
    def __init__(self, root: Path) -> None:
        binary = find_nginx()
        if binary is None:
            raise RuntimeError(
                "nginx is not installed: the nginx tests need it (.ci/run installs it with "
                "apt-get install nginx-light)"
            )
        self.binary = binary
        self.root = root
        self.www = root / "www"
        self.www.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, name: str) -> str:
        return f"{self.origin}/{name}"

    def add_file(self, name: str, data: bytes) -> str:
        path = self.www / name
        path.write_bytes(data)
        return self.url(name)

    def connections_since(self, mark: int, requests: int, timeout: float = 10.0) -> set[str]:
        """The connections that served the first ``requests`` requests logged after line
        ``mark`` of the access log (polled: nginx logs a request once it has answered it)."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.log_lines()[mark:]
            if len(lines) >= requests:
                return {line.split(" ", 1)[0] for line in lines[:requests]}
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {requests} logged requests, got {len(lines)}")
            time.sleep(0.01)

    def log_lines(self) -> list[str]:
        """The access log: one line per request, ``connection number status "request"``."""
        path = self.root / "access.log"
        return path.read_text().splitlines() if path.exists() else []

    def start(self) -> None:
        # Workers run as root only when we are root: tmp dirs are private to the user.
        user = "user root;" if os.geteuid() == 0 else ""
        conf = self.root / "nginx.conf"
        conf.write_text(CONFIG.format(root=self.root, port=self.port, user=user))
        self.process = subprocess.Popen(
            [self.binary, "-c", str(conf), "-p", str(self.root)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"nginx exited: {err}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("nginx did not start listening within 10 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stderr:
            self.process.stderr.close()
