"""The sans-IO core must stay free of I/O: checked statically (AST) and dynamically (import
under a finder that refuses every I/O module), with control runs proving both checks can fail."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "rangeio"
CORE = PACKAGE / "_core"

BANNED = frozenset(
    {
        "socket",
        "ssl",
        "asyncio",
        "threading",
        "concurrent",
        "selectors",
        "subprocess",
        "multiprocessing",
        "os",
        "io",
        "time",
        "urllib3",
        "requests",
        "httpx",
        "aiohttp",
        "niquests",
        "logging",
    }
)
# Ways around an import scan: dynamic imports, and opening files directly.
BANNED_CALLS = frozenset({"open", "__import__"})
BANNED_DYNAMIC = frozenset({"importlib"})
# Inside the package, the core may only depend on itself and on the error classes.
ALLOWED_OWN = ("rangeio._core", "rangeio.errors")


def checked_files(package: Path = PACKAGE) -> list[Path]:
    return [*sorted((package / "_core").glob("*.py")), package / "errors.py"]


def violations_in(source: str, filename: str, own: str = "rangeio") -> list[str]:
    """Every banned import or call in ``source``, as ``file:line: what``."""
    found: list[str] = []
    allowed_own = tuple(a.replace("rangeio", own, 1) for a in ALLOWED_OWN)
    for node in ast.walk(ast.parse(source, filename)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == own:
                names = [f"{own}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else None
            if name in BANNED_CALLS:
                found.append(f"{filename}:{node.lineno}: call to {name}()")
            continue
        where = f"{filename}:{getattr(node, 'lineno', '?')}"
        for name in names:
            top = name.split(".")[0]
            if top in BANNED:
                found.append(f"{where}: import of {name} (I/O module {top})")
            elif top in BANNED_DYNAMIC:
                found.append(f"{where}: import of {name} (dynamic import)")
            elif top == own and not any(name == a or name.startswith(a + ".") for a in allowed_own):
                found.append(f"{where}: import of {name} (outside the core)")
    return found


# -- static ---------------------------------------------------------------------------------


def test_the_scan_sees_the_whole_core() -> None:
    names = {p.name for p in checked_files()}
    assert {"ranges.py", "headers.py", "validate.py", "exchange.py", "errors.py"} <= names


@pytest.mark.parametrize("path", checked_files(), ids=lambda p: p.name)
def test_core_file_has_no_io_imports(path: Path) -> None:
    found = violations_in(path.read_text(encoding="utf-8"), str(path.relative_to(SRC)))
    assert not found, "the sans-IO core must not do I/O:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("source", "what"),
    [
        ("import socket", "socket"),
        ("import os.path", "os.path"),
        ("from concurrent.futures import Future", "concurrent.futures"),
        ("import time as _t", "time"),
        ("def f():\n    import logging", "logging"),
        ("from urllib3 import PoolManager", "urllib3"),
        ("import importlib", "dynamic import"),
        ("x = __import__('socket')", "__import__()"),
        ("data = open('x').read()", "open()"),
        ("from rangeio._sync import remote", "outside the core"),
        ("from rangeio import testing", "outside the core"),
    ],
)
def test_the_scan_catches_io(source: str, what: str) -> None:
    found = violations_in(source, "sample.py")
    assert len(found) == 1 and what in found[0], found


def test_the_scan_allows_pure_code() -> None:
    source = textwrap.dedent(
        """
        from __future__ import annotations
        import re
        from email.utils import parsedate_to_datetime
        from rangeio.errors import ProtocolError
        from rangeio._core.ranges import ByteRange
        from . import headers
        f = lambda x: x.open()
        """
    )
    assert violations_in(source, "sample.py") == []


# -- dynamic --------------------------------------------------------------------------------

HARNESS = r"""
import ast, importlib, sys, traceback, types
from pathlib import Path

src, own = Path(sys.argv[1]), sys.argv[2]
BANNED = frozenset(sys.argv[3].split(","))
package = src / own
files = [*sorted((package / "_core").glob("*.py")), package / "errors.py"]

# The stdlib modules the core names itself (re, random, email.utils, datetime, ...) are loaded
# first: some of them use os or time internally, which is their business, not the core's.
wanted = set()
for path in files:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            wanted.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            wanted.add(node.module)
for name in sorted(wanted):
    top = name.split(".")[0]
    if top not in BANNED and top not in (own, "__future__"):
        importlib.import_module(name)

# Then every banned module is forgotten, so that even `import os` (loaded at startup) has to
# go through the finder below instead of being served from sys.modules.
for name in list(sys.modules):
    if name.split(".")[0] in BANNED:
        del sys.modules[name]

refused = []


def importer():
    frame = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename
        if "importlib" not in filename and filename != __file__:
            return f"{filename}:{frame.f_lineno}"
        frame = frame.f_back
    return "?"


class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BANNED:
            where = importer()
            refused.append(f"{name} (imported at {where})")
            raise ImportError(f"BANNED MODULE {name!r} imported at {where}")
        return None


sys.meta_path.insert(0, Refuse())

# A bare package: rangeio/__init__.py (which pulls in transports) is not executed.
pkg = types.ModuleType(own)
pkg.__path__ = [str(package)]
sys.modules[own] = pkg

names = [f"{own}.errors", f"{own}._core"]
names += [f"{own}._core.{p.stem}" for p in files if p.parent.name == "_core" and p.stem != "__init__"]
failed = False
for name in names:
    try:
        importlib.import_module(name)
    except BaseException:
        failed = True
        print(f"FAILED to import {name}:", file=sys.stderr)
        traceback.print_exc()
leaked = sorted(m for m in sys.modules if m.split(".")[0] in BANNED)
if refused or leaked or failed:
    print("the sans-IO core reached for I/O modules:", file=sys.stderr)
    for line in refused:
        print("  refused:", line, file=sys.stderr)
    for line in leaked:
        print("  loaded:", line, file=sys.stderr)
    sys.exit(1)
print("imported", len(names), "modules:", ", ".join(names))
"""


def run_harness(src: Path, own: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "harness.py"
    script.write_text(HARNESS, encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-I", str(script), str(src), own, ",".join(sorted(BANNED))],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_core_imports_with_io_modules_refused(tmp_path: Path) -> None:
    proc = run_harness(SRC, "rangeio", tmp_path)
    assert proc.returncode == 0, (
        "importing the sans-IO core needed an I/O module:\n" + proc.stdout + proc.stderr
    )
    for path in checked_files():
        module = "rangeio.errors" if path.name == "errors.py" else f"rangeio._core.{path.stem}"
        if path.stem != "__init__":
            assert module in proc.stdout, f"{module} was not imported: {proc.stdout}"


@pytest.mark.parametrize(
    ("evil", "banned"),
    [
        ("import socket", "socket"),
        ("import os", "os"),
        ("from time import monotonic", "time"),
        ("import logging", "logging"),
        ("def later():\n    pass\nimport threading", "threading"),
    ],
)
def test_harness_catches_a_banned_import(tmp_path: Path, evil: str, banned: str) -> None:
    """Control: a fake package whose core imports an I/O module must make the harness fail,
    even for modules (os) that the interpreter loaded before the core."""
    fake = tmp_path / "src" / "fakepkg"
    (fake / "_core").mkdir(parents=True)
    (fake / "__init__.py").write_text("raise RuntimeError('must not run')\n")
    (fake / "errors.py").write_text("class E(Exception):\n    pass\n")
    (fake / "_core" / "__init__.py").write_text("")
    (fake / "_core" / "good.py").write_text("import re\nfrom fakepkg.errors import E\n")
    (fake / "_core" / "evil.py").write_text(evil + "\n")
    proc = run_harness(tmp_path / "src", "fakepkg", tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"BANNED MODULE {banned!r}" in proc.stderr, proc.stderr
    assert "evil.py" in proc.stderr, "the message names the importing file"
    assert violations_in(evil, "evil.py", own="fakepkg"), "the static scan agrees"


def test_harness_passes_a_clean_fake_package(tmp_path: Path) -> None:
    """Control: the harness itself does not fail a package that is clean."""
    fake = tmp_path / "src" / "fakepkg"
    (fake / "_core").mkdir(parents=True)
    (fake / "__init__.py").write_text("raise RuntimeError('must not run')\n")
    (fake / "errors.py").write_text("class E(Exception):\n    pass\n")
    (fake / "_core" / "__init__.py").write_text("from fakepkg._core import good\n")
    (fake / "_core" / "good.py").write_text(
        "import random\nfrom email.utils import parsedate_to_datetime\nR = random.Random()\n"
    )
    proc = run_harness(tmp_path / "src", "fakepkg", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "fakepkg._core.good" in proc.stdout
