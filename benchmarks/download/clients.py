"""The download clients compared, as command lines, and a check of which are installed."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYTHON_PEER = HERE / "python_peer.py"
AUTO = 0  # Client.connections of rangeio's default, connections="auto"


@dataclass(frozen=True)
class Client:
    name: str  # the row's label
    kind: str  # "curl", "curl-sync", "aria2c", "rangeio", "pyhaul", "reference"
    connections: int  # AUTO (0): rangeio's connections="auto"
    argv: Callable[[str, Path], list[str]]  # (url, dest file) -> command line
    handshake: bool = False  # a python_peer.py child: the clock starts after its imports

    @property
    def is_rangeio(self) -> bool:
        return self.kind == "rangeio"


def curl() -> Client:
    return Client("curl", "curl", 1, lambda url, dest: ["curl", "-s", "-o", str(dest), url])


# The directory is synced too: rangeio's download ends with a rename made durable (an fsync of
# the directory), and curl's new name is durable only once its directory is.
_SYNC = 'sync -d "$1" && sync "${1%/*}"'


def curl_synced() -> Client:
    """The issue's durable peer: ``curl -o f URL && sync f`` (its data and its name on disk)."""
    script = f'curl -s -o "$1" "$2" && {_SYNC}'
    return Client(
        "curl && sync -d",
        "curl-sync",
        1,
        lambda url, dest: ["sh", "-c", script, "sh", str(dest), url],
    )


def curl_durable() -> Client:
    """Like for like: curl, then everything rangeio adds to the same download (the file's data
    and name made durable, its SHA-256 computed), one step after the other."""
    # openssl's SHA-256 is the one rangeio's hashlib uses; coreutils' sha256sum (9.1 here, not
    # built on libcrypto) is 4x slower, which would flatter rangeio.
    if shutil.which("openssl"):
        digest, label = 'openssl dgst -sha256 "$1"', "openssl sha256"
    else:
        digest, label = 'sha256sum "$1"', "sha256sum"
    script = f'curl -s -o "$1" "$2" && {_SYNC} && {digest} >/dev/null'
    return Client(
        f"curl && sync -d && {label}",
        "reference",
        1,
        lambda url, dest: ["sh", "-c", script, "sh", str(dest), url],
    )


def aria2c(connections: int) -> Client:
    # Allocation by fallocate (what rangeio does too) rather than aria2c's default "prealloc",
    # which can write the whole file once before downloading; no config file, no console output.
    common = [
        "aria2c",
        "--no-conf",
        "-q",
        "--file-allocation=falloc",
        "--allow-overwrite=true",
        "--auto-file-renaming=false",
    ]
    split = ["-x1", "-s1"] if connections == 1 else [f"-x{connections}", f"-s{connections}", "-k1M"]

    def argv(url: str, dest: Path) -> list[str]:
        return [*common, *split, "-d", str(dest.parent), "-o", dest.name, url]

    return Client(f"aria2c {' '.join(split)}", "aria2c", connections, argv)


def rangeio_client(connections: int) -> Client:
    """rangeio with ``connections`` (AUTO: the default, "auto", no count given)."""
    asked = "auto" if connections == AUTO else str(connections)

    def argv(url: str, dest: Path) -> list[str]:
        return [sys.executable, str(PYTHON_PEER), "rangeio", url, str(dest), "--connections", asked]

    name = "rangeio (default: auto)" if connections == AUTO else f"rangeio connections={asked}"
    return Client(name, "rangeio", connections, argv, True)


def pyhaul_client() -> Client:
    def argv(url: str, dest: Path) -> list[str]:
        return [sys.executable, str(PYTHON_PEER), "pyhaul", url, str(dest)]

    return Client("pyhaul (niquests)", "pyhaul", 1, argv, True)


# -- what is installed ------------------------------------------------------------------------


def first_line(argv: list[str]) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else None


def availability() -> tuple[dict[str, str | None], list[str]]:
    """Versions of the tools found (None: missing), and the 'X: unavailable (...)' lines."""
    versions: dict[str, str | None] = {}
    unavailable: list[str] = []
    versions["curl"] = first_line(["curl", "--version"]) if shutil.which("curl") else None
    if versions["curl"] is None:
        unavailable.append("curl: unavailable (not installed: apt-get install -y curl)")
    versions["aria2c"] = first_line(["aria2c", "--version"]) if shutil.which("aria2c") else None
    if versions["aria2c"] is None:
        unavailable.append("aria2c: unavailable")
    if sys.version_info < (3, 12):
        versions["pyhaul"] = None
        unavailable.append("pyhaul: unavailable (Python < 3.12)")
    elif importlib.util.find_spec("pyhaul") is None or importlib.util.find_spec("niquests") is None:
        versions["pyhaul"] = None
        unavailable.append("pyhaul: unavailable (not installed: pip install pyhaul niquests)")
    else:
        from importlib.metadata import version

        versions["pyhaul"] = version("pyhaul")
    return versions, unavailable
