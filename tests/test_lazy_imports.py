"""Start-up: `import rangeio`, `rangeio.open`, `import rangeio.aio` and `rangeio --version` load only
what they need (a fresh interpreter each, `sys.modules` read after), and every public name still
resolves, for the interpreter and for type checkers."""

from __future__ import annotations

import ast
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import rangeio
import rangeio.aio

SRC = Path(__file__).resolve().parents[1] / "src"

# Loaded on first use only. Each is a real cost (asyncio, urllib3, the download engine) or an
# optional dependency that may not even be installed.
DOWNLOAD_ENGINE = {
    "rangeio._engine.download",
    "rangeio._core.download",
    "rangeio._core.control",
    "rangeio._core.digests",
    "rangeio._core.segments",
    "rangeio._disk",
    "rangeio._sync.download",
}
ADAPTERS = {
    "rangeio._transport._urllib3",
    "rangeio._transport._requests",
    "rangeio._transport._httpx",
    "rangeio._transport._niquests",
    "rangeio._async.transports",
}
THIRD_PARTY = {"urllib3", "requests", "httpx", "aiohttp", "niquests", "fsspec", "h11"}
ALWAYS_HEAVY = (
    {"rangeio.cli", "rangeio.fsspec", "rangeio.formats", "rangeio.testing", "rangeio.demo"}
    | {"rangeio.compat", "rangeio.compat.hctef", "rangeio.compat.range_streams"}
    | {"rangeio.compat.pyhaul"}
    | {"rangeio._async.file", "rangeio._async.download", "rangeio._async.bulk"}
    | {"rangeio._async.formats"}
    | {"rangeio._sync.streams", "rangeio._engine.streams", "asyncio"}
    | DOWNLOAD_ENGINE
    | ADAPTERS
    | THIRD_PARTY
)
# What `import rangeio` may load of rangeio: the package, its lazy-name helper and the errors.
IMPORT_RANGEIO = {"rangeio", "rangeio._lazy", "rangeio.errors"}


# Writes sys.modules at exit to the file the test names; imports nothing that rangeio might.
_HOOK = """\
import atexit, os, sys
def _report():
    with open(os.environ["RANGEIO_TEST_MODULES"], "w") as out:
        out.write("\\n".join(sorted(sys.modules)))
atexit.register(_report)
"""


def modules_after(tmp_path: Path, *argv: str, expect: int = 0) -> set[str]:
    """The modules a fresh interpreter has loaded after running ``argv`` (``-c CODE`` or ``-m
    MODULE ARGS``), read at its exit. The exit status must be ``expect``."""
    if argv[0] == "-c":
        code = _HOOK + argv[1]
    else:  # -m: run the module as `python -m` does (runpy), after the hook
        assert argv[0] == "-m"
        code = (
            f"{_HOOK}import runpy\nsys.argv = {[argv[1], *argv[2:]]!r}\n"
            f"runpy.run_module({argv[1]!r}, run_name='__main__', alter_sys=True)\n"
        )
    report = tmp_path / f"modules-{len(list(tmp_path.iterdir()))}.txt"
    env = {**os.environ, "PYTHONPATH": str(SRC), "RANGEIO_TEST_MODULES": str(report)}
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == expect, proc.stderr
    return set(report.read_text().split("\n"))


@pytest.fixture
def baseline(tmp_path: Path) -> set[str]:
    """What the interpreter loads with no rangeio at all."""
    return modules_after(tmp_path, "-c", "pass")


def test_import_rangeio_loads_only_the_errors(baseline: set[str], tmp_path: Path) -> None:
    loaded = modules_after(tmp_path, "-c", "import rangeio")
    ours = {m for m in loaded if m == "rangeio" or m.startswith("rangeio.")}
    assert ours == IMPORT_RANGEIO
    # Nor anything heavy of the standard library: no typing, no dataclasses (and inspect).
    assert (
        sorted(loaded & (ALWAYS_HEAVY | {"typing", "dataclasses", "threading", "ssl", "socket"}))
        == []
    )
    new = loaded - baseline - ours
    assert new <= {"__future__", "warnings"}, sorted(new)


def test_rangeio_open_loads_the_file_engine_only(tmp_path: Path) -> None:
    """Resolving `rangeio.open` loads the file's engine; not urllib3 (the first open does),
    not the download engine, the async shell or the formats."""
    loaded = modules_after(
        tmp_path, "-c", "import rangeio; rangeio.open, rangeio.HttpFile, rangeio.Timeout"
    )
    assert {"rangeio._sync.file", "rangeio._engine.remote"} <= loaded
    assert sorted(loaded & ALWAYS_HEAVY) == []
    # The disk cache's files load with the first file that has a cache_dir.
    assert "rangeio._diskcache" not in loaded


def test_first_open_loads_urllib3_and_nothing_else_heavy(tmp_path: Path) -> None:
    # The default transport is what the first rangeio.open() creates: urllib3 loads then.
    code = "import rangeio; from rangeio._transport import make_transport; make_transport()"
    loaded = modules_after(tmp_path, "-c", code)
    assert {"urllib3", "rangeio._transport._urllib3"} <= loaded
    assert sorted(loaded & (ALWAYS_HEAVY - {"urllib3", "rangeio._transport._urllib3"})) == []


def test_download_loads_no_file_reader_extras(tmp_path: Path) -> None:
    loaded = modules_after(tmp_path, "-c", "import rangeio; rangeio.download, rangeio.haul")
    assert loaded >= DOWNLOAD_ENGINE
    assert sorted(loaded & (ALWAYS_HEAVY - DOWNLOAD_ENGINE)) == []


def test_import_rangeio_aio_loads_no_asyncio_until_used(tmp_path: Path) -> None:
    assert sorted(modules_after(tmp_path, "-c", "import rangeio.aio") & ALWAYS_HEAVY) == []
    loaded = modules_after(tmp_path, "-c", "import rangeio.aio; rangeio.aio.open")
    shell = {"asyncio", "rangeio._async.file", "rangeio._async.transports"}
    assert loaded >= shell
    # aiohttp (or httpx, niquests) loads when the first file opens, not before.
    assert sorted(loaded & (ALWAYS_HEAVY - shell)) == []


def test_cli_version_loads_no_engine_and_no_urllib3(tmp_path: Path) -> None:
    loaded = modules_after(tmp_path, "-m", "rangeio", "--version")
    # The cli package's own modules (exits, names, progress, commands, main) are light.
    ours = {
        m
        for m in loaded
        if (m == "rangeio" or m.startswith("rangeio.")) and not m.startswith("rangeio.cli.")
    }
    assert ours == IMPORT_RANGEIO | {"rangeio.cli"}
    assert sorted(loaded & (ALWAYS_HEAVY - {"rangeio.cli"})) == []
    assert (
        sorted(loaded & {"typing", "dataclasses", "threading", "ssl", "socket", "json", "email"})
        == []
    )


def test_cli_cat_loads_the_file_engine_only(tmp_path: Path) -> None:
    """A real command up to its first connect (refused: exit 7) loads urllib3 and the file
    engine, but not the download engine, asyncio or the formats (not even to map its error)."""
    with socket.socket() as refusing:
        refusing.bind(("127.0.0.1", 0))  # bound, never listening: a connect is refused
        url = f"http://127.0.0.1:{refusing.getsockname()[1]}/file"
        loaded = modules_after(tmp_path, "-m", "rangeio", "cat", "--retries", "0", url, expect=7)
    engine = {"rangeio.cli", "rangeio._sync.file", "urllib3", "rangeio._transport._urllib3"}
    assert loaded >= engine
    assert sorted(loaded & (ALWAYS_HEAVY - engine)) == []


def test_modules_after_sees_an_eager_import(tmp_path: Path) -> None:
    """The control: the probe does see a heavy module that is imported."""
    loaded = modules_after(
        tmp_path, "-c", "import rangeio, rangeio.cli; rangeio.download; import asyncio"
    )
    assert {"rangeio.cli", "rangeio._engine.download", "asyncio"} <= loaded


@pytest.mark.parametrize("package", ["rangeio", "rangeio.aio"])
def test_every_public_name_resolves_in_a_fresh_interpreter(package: str) -> None:
    code = (
        f"import json, {package} as p\n"
        "names = [*p.__all__] + ([] if p.__name__ != 'rangeio' else ['aio', 'formats'])\n"
        "print(json.dumps({n: f'{type(getattr(p, n)).__name__} {getattr(p, n).__name__}'"
        " for n in names}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    resolved = json.loads(out.stdout)
    module = sys.modules[package]
    assert set(resolved) >= set(module.__all__)
    # `from rangeio import *` gives the same objects as attribute access.
    namespace: dict[str, object] = {}
    exec(f"from {package} import *", namespace)
    assert {n for n in namespace if not n.startswith("__")} == set(module.__all__)
    for name in module.__all__:
        assert namespace[name] is getattr(module, name)
        assert name in dir(module)


def test_public_names_are_the_objects_of_their_modules() -> None:
    from rangeio._async.streams import AsyncRangeStream
    from rangeio._sync.download import download, haul
    from rangeio._sync.file import HttpFile, open

    assert rangeio.haul is haul and rangeio.download is download
    assert rangeio.open is open and rangeio.HttpFile is HttpFile
    assert rangeio.aio.RangeStream is AsyncRangeStream
    assert rangeio.aio is sys.modules["rangeio.aio"]
    assert {"aio", "formats", "open", "haul"} <= set(dir(rangeio))
    assert not hasattr(rangeio, "opne")
    with pytest.raises(AttributeError, match="rangeio.aio' has no attribute 'nope'"):
        rangeio.aio.nope  # noqa: B018


@pytest.mark.parametrize("path", ["__init__.py", "aio.py"])
def test_type_checkers_see_every_lazy_name(path: str) -> None:
    """Each lazy name has its import under `if TYPE_CHECKING` (else mypy and IDEs lose it), from
    the module the lazy table loads it from, and `__all__` lists only names that exist."""
    tree = ast.parse((SRC / "rangeio" / path).read_text())
    seen: dict[str, str] = {}
    eager: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            branch = node.orelse if isinstance(node.test, ast.UnaryOp) else node.body
            for stmt in branch:
                if isinstance(stmt, ast.ImportFrom) and stmt.module:
                    for alias in stmt.names:
                        name = alias.asname or alias.name
                        # A submodule imported from its package (`from rangeio import aio`)
                        # is a module target, `package.sub`; any other name is `module:name`.
                        where = SRC.joinpath(*stmt.module.split("."), alias.name)
                        submodule = where.is_dir() or where.with_suffix(".py").exists()
                        seen[name] = (
                            f"{stmt.module}.{alias.name}"
                            if submodule
                            else f"{stmt.module}:{alias.name}"
                        )
        elif isinstance(node, ast.ImportFrom):
            eager.update(alias.asname or alias.name for alias in node.names)
    module = sys.modules["rangeio" if path == "__init__.py" else "rangeio.aio"]
    table: dict[str, str] = module._LAZY
    assert seen == table
    assert set(module.__all__) <= eager | set(table)
