"""rangeio.compat.hctef, .range_streams and .pyhaul: each seed's README examples run unchanged,
with only the import changed (and the example URLs pointed at local servers), and each seed's
exception names are rangeio's classes with the seed's bases."""

from __future__ import annotations

import ast
import asyncio
import importlib.util
import inspect
import socket
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import rangeio
from rangeio.testing import Faults, FaultServer
from tests.servers.nginx import Nginx
from tests.stand_ins import ranges_module, tenacity_module


@pytest.fixture(params=["nginx", "faults"])
def url_of(request: pytest.FixtureRequest, nginx: Nginx, fault_server: FaultServer) -> Any:
    if request.param == "nginx":
        return lambda name: nginx.url(name)
    return lambda name: fault_server.url("/" + name)


def run_example(source: str, imports: dict[str, str], urls: dict[str, str]) -> dict[str, Any]:
    """Run a README example as written, but for its imports (``{seed's: ours}``) and URLs. Top
    level ``await`` / ``async with`` run as the asyncio REPL runs them."""
    code = textwrap.dedent(source)
    for theirs, ours in {**imports, **urls}.items():
        assert theirs in code, theirs
        code = code.replace(theirs, ours)
    namespace: dict[str, Any] = {"__name__": "__example__"}
    compiled = compile(code, "<README example>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    pending = eval(compiled, namespace)  # noqa: S307 - the seeds' README examples, verbatim
    if pending is not None:  # top-level await: a coroutine to run
        asyncio.run(pending)
    return namespace


def needs(module: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The module an example imports beside the seed: the real one if installed, else the
    stand-in of tests/stand_ins.py, put where ``import`` finds it for this test only."""
    if importlib.util.find_spec(module) is not None:
        return __import__(module)
    stand_in = {"ranges": ranges_module, "tenacity": tenacity_module}[module]()
    monkeypatch.setitem(sys.modules, module, stand_in)
    return stand_in


# -- hctef (its README, /work/shared/seeds: hctef 0.1.1) -----------------------------------------

HCTEF = {"from hctef": "from rangeio.compat.hctef"}
EXAMPLE_URL = "https://example.com/large-file.bin"

HCTEF_SYNC = """
from hctef import HttpFile

url = "https://example.com/large-file.bin"

with HttpFile(url) as f:
    # Read first 100 bytes
    data = f.read(100)

    # Seek to a specific position
    f.seek(1000)

    # Read from current position
    more_data = f.read(50)

    # Get current position
    position = f.tell()

    # Seek relative to end of file
    f.seek(-100, 2)
"""

HCTEF_ASYNC = """
import asyncio
from hctef.aio import AsyncHttpFile

url = "https://example.com/large-file.bin"

async with AsyncHttpFile(url) as f:
    # Read first 100 bytes
    data = await f.read(100)

    # Seek to a specific position (synchronous - no I/O)
    f.seek(1000)

    # Read from current position
    more_data = await f.read(50)
"""

HCTEF_CURSORS = """
import asyncio
from hctef.aio import AsyncHttpFile

url = "https://example.com/large-file.bin"

async with AsyncHttpFile(url) as f:
    # Create independent cursors for parallel reading
    cursor1 = f.clone()
    cursor2 = f.clone()

    # Position each cursor at different locations
    f.seek(0)
    cursor1.seek(1000)
    cursor2.seek(2000)

    # Read from all three positions in parallel
    # All cursors share the same cache and HTTP session
    results = await asyncio.gather(
        f.read(100),        # Read bytes 0-100
        cursor1.read(100),  # Read bytes 1000-1100
        cursor2.read(100),  # Read bytes 2000-2100
    )

    # Each cursor maintains independent position
    print(f.tell())        # 100
    print(cursor1.tell())  # 1100
    print(cursor2.tell())  # 2100
"""

HCTEF_ERRORS = """
from hctef import HttpFile
from hctef.exceptions import HctefNetworkError, HctefUrlError

try:
    with HttpFile("https://example.com/file.bin") as f:
        data = f.read(100)
except HctefNetworkError as e:
    print(f"Network error: {e}")
except HctefUrlError as e:
    print(f"Invalid URL: {e}")
"""


def test_hctef_sync_example(url_of: Any, sample_files: dict[str, bytes]) -> None:
    data = sample_files["data.bin"]
    ns = run_example(HCTEF_SYNC, HCTEF, {EXAMPLE_URL: url_of("data.bin")})
    assert ns["data"] == data[:100]
    assert ns["more_data"] == data[1000:1050]
    assert ns["position"] == 1050
    assert ns["f"].closed


def test_hctef_async_examples(
    url_of: Any, sample_files: dict[str, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    data = sample_files["data.bin"]
    ns = run_example(HCTEF_ASYNC, HCTEF, {EXAMPLE_URL: url_of("data.bin")})
    assert (ns["data"], ns["more_data"]) == (data[:100], data[1000:1050])
    ns = run_example(HCTEF_CURSORS, HCTEF, {EXAMPLE_URL: url_of("data.bin")})
    assert ns["results"] == [data[:100], data[1000:1100], data[2000:2100]]
    assert capsys.readouterr().out == "100\n1100\n2100\n"


@pytest.fixture
def refused_url() -> Iterator[str]:
    with socket.socket() as refusing:
        refusing.bind(("127.0.0.1", 0))  # bound, never listening: a connect is refused
        yield f"http://127.0.0.1:{refusing.getsockname()[1]}/file.bin"


@pytest.mark.parametrize(
    ("where", "printed"),
    [
        ("refused", "Network error: "),
        ("missing", "Network error: "),
        ("ftp", "Invalid URL: "),
    ],
)
def test_hctef_error_handling_example(
    where: str,
    printed: str,
    refused_url: str,
    fault_server: FaultServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = {
        "refused": refused_url,
        "missing": fault_server.url("/file.bin"),  # 404
        "ftp": "ftp://127.0.0.1/file.bin",
    }[where]
    # No retries: the refused connect and the 404 fail at once.
    imports = {**HCTEF, "HttpFile(url_here)": "HttpFile(url_here, retries=0)"}
    example = HCTEF_ERRORS.replace('HttpFile("https://example.com/file.bin")', "HttpFile(url_here)")
    run_example(example, imports, {"url_here": repr(url)})
    assert capsys.readouterr().out.startswith(printed)


def test_hctef_exceptions_are_rangeios_with_hctefs_bases() -> None:
    from rangeio.compat import hctef
    from rangeio.compat.hctef import exceptions

    assert issubclass(exceptions.HctefNetworkError, exceptions.HctefError)
    assert issubclass(exceptions.HctefNetworkError, IOError)
    assert issubclass(exceptions.HctefUrlError, exceptions.HctefError)
    assert issubclass(exceptions.HctefUrlError, ValueError)
    assert issubclass(exceptions.RangeRequestsUnsupportedError, exceptions.HctefNetworkError)
    # The same classes rangeio raises, so each `except` catches what its name says.
    assert exceptions.HctefNetworkError is rangeio.NetworkError
    assert exceptions.HctefUrlError is rangeio.UrlError
    assert exceptions.HctefError is rangeio.RangeioError
    assert hctef.HctefNetworkError is exceptions.HctefNetworkError
    with pytest.raises(exceptions.HctefUrlError):
        hctef.HttpFile("ftp://127.0.0.1/x")


def test_hctef_signatures_and_lazy_construction(
    fault_server: FaultServer, sample_files: dict[str, bytes]
) -> None:
    """hctef's HttpFile(url) makes no request; `with` opens it (one request, the END prefetch);
    the parameters and defaults are hctef's."""
    from rangeio.compat.hctef import HttpFile
    from rangeio.compat.hctef.aio import AsyncHttpFile

    for cls in (HttpFile, AsyncHttpFile):
        params = inspect.signature(cls).parameters
        assert [(p.name, p.default) for p in list(params.values())[:4]] == [
            ("url", inspect.Parameter.empty),
            ("minimum_range_request_bytes", 8192),
            ("prefetch_bytes", 1048576),
            ("prefetch_direction", "END"),
        ]
    data = sample_files["data.bin"]
    f = HttpFile(fault_server.url("/data.bin"))
    assert fault_server.requests == []
    with f:
        assert len(fault_server.requests) == 1
        assert fault_server.requests[0].range == "bytes=-1048576"
        f.seek(-100, 2)
        assert f.read() == data[-100:]  # prefetched: no request
        assert len(fault_server.requests) == 1
        # On purpose unlike hctef (which clamps): seek as io defines it (docs/migrating.md).
        assert f.seek(len(data) + 10) == len(data) + 10
        assert f.read(5) == b""
        with pytest.raises(OSError):
            f.seek(-len(data) - 1, 2)


# -- range-streams (its README, /work/shared/seeds) ----------------------------------------------

RANGE_STREAMS = {"from range_streams": "from rangeio.compat.range_streams"}

RANGE_STREAMS_PYPI = """
import httpx

from range_streams import RangeStream, _EXAMPLE_URL

stream = RangeStream(url=_EXAMPLE_URL, client=httpx.Client())
stream.add(byte_range=(0,3)) # or pass ranges.Range(0,3)

stream.ranges

stream.add(byte_range=(7,9))
stream.ranges
"""

RANGE_STREAMS_GITHUB = """
from range_streams import RangeStream, example_url
import httpx
from ranges import Range
c = httpx.Client()
s = RangeStream(url=example_url, client=c)
rng = Range(0,3)
s.handle_byte_range(rng)

print(s._ranges)
"""


def test_range_streams_pypi_example(
    url_of: Any, sample_files: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    from rangeio.compat import range_streams

    data = sample_files["small.bin"]
    monkeypatch.setattr(range_streams, "_EXAMPLE_URL", url_of("small.bin"))
    ns = run_example(RANGE_STREAMS_PYPI, RANGE_STREAMS, {})
    stream = ns["stream"]
    assert list(stream.ranges) == [rangeio.ByteRange(0, 3), rangeio.ByteRange(7, 9)]
    assert stream.ranges[(7, 9)].read() == data[7:9]
    assert stream.ranges[(0, 3)].read() == data[0:3]
    assert stream.total_bytes == len(data)
    stream.close()


def test_range_streams_github_example(
    url_of: Any,
    sample_files: dict[str, bytes],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    needs("ranges", monkeypatch)
    from rangeio.compat import range_streams

    data = sample_files["small.bin"]
    monkeypatch.setattr(range_streams, "example_url", url_of("small.bin"))
    ns = run_example(RANGE_STREAMS_GITHUB, RANGE_STREAMS, {})
    assert "[0, 3)" in capsys.readouterr().out
    assert ns["s"].ranges[ns["rng"]].read() == data[:3]


def test_range_streams_signature_and_names(fault_server: FaultServer) -> None:
    from rangeio.compat.range_streams import RangeOverlapError, RangeStream

    params = list(inspect.signature(RangeStream).parameters)
    assert params[:6] == [
        "url",
        "client",
        "byte_range",
        "pruning_level",
        "single_request",
        "chunk_size",
    ]
    with RangeStream(fault_server.url("/small.bin"), None, (0, 0), 2) as s:
        assert s.total_range == rangeio.ByteRange(0, 100)
        s.handle_byte_range((0, 10))
        s.add((50, 60), False, "later")  # range-streams' positional activate and name
        assert s.active.range == rangeio.ByteRange(0, 10)
        assert s.activate("later").read() == fault_server.get_file("/small.bin")[50:60]
        with pytest.raises(RangeOverlapError):
            s.add((5, 20))
        assert list(s._ranges) == [rangeio.ByteRange(0, 10), rangeio.ByteRange(50, 60)]


# -- pyhaul (its README) -------------------------------------------------------------------------

PYHAUL = {"from pyhaul": "from rangeio.compat.pyhaul"}

PYHAUL_QUICK = """
import httpx
from pathlib import Path
from pyhaul import haul, PartialHaulError

dest = Path("big.zip")
with httpx.Client() as client:
    for _ in range(10):
        try:
            result = haul("https://example.com/big.zip", client, dest=dest)
            break
        except PartialHaulError:
            pass  # only retryable error; others propagate

print(f"done: {dest.stat().st_size:,} bytes")
"""

PYHAUL_RETRIES = """
import time
from pathlib import Path

import httpx

from pyhaul import PartialHaulError, HaulState, haul

url = "https://example.com/big.iso"
dest = Path("big.iso")
state = HaulState()  # optional — tracks byte-level progress

with httpx.Client() as client:
    for attempt in range(1, 11):
        try:
            result = haul(url, client, dest=dest, state=state)
            print(f"done: {state.valid_length:,} bytes, sha256={result.sha256[:16]}…")
            break
        except PartialHaulError as exc:
            print(f"attempt {attempt}: {exc.reason} ({state.valid_length:,} bytes so far)")
            time.sleep(min(2**attempt, 30))
"""

PYHAUL_ASYNC = """
import asyncio
from pathlib import Path

import httpx
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from pyhaul import PartialHaulError, haul_async

URLS = [
    ("https://example.com/data/shard-001.bin", Path("downloads/shard-001.bin")),
    ("https://example.com/data/shard-002.bin", Path("downloads/shard-002.bin")),
    ("https://example.com/data/shard-003.bin", Path("downloads/shard-003.bin")),
]


@retry(
    retry=retry_if_exception_type(PartialHaulError),
    wait=wait_exponential_jitter(initial=2, max=30),
    stop=stop_after_attempt(10),
)
async def download_one(client: httpx.AsyncClient, url: str, dest: Path) -> None:
    await haul_async(url, client, dest=dest)


async def main() -> None:
    Path("downloads").mkdir(exist_ok=True)
    async with httpx.AsyncClient() as client, asyncio.TaskGroup() as tg:
        for url, dest in URLS:
            tg.create_task(download_one(client, url, dest))


asyncio.run(main())
"""


def test_pyhaul_quick_example_resumes_after_a_cut(
    fault_server: FaultServer,
    sample_files: dict[str, bytes],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = sample_files["data.bin"]
    monkeypatch.chdir(tmp_path)
    # The first answer is cut after 1 MiB: the loop calls haul again, which resumes.
    fault_server.set_faults("/data.bin", Faults(truncate_after=1 << 20, times=1))
    run_example(
        PYHAUL_QUICK, PYHAUL, {"https://example.com/big.zip": fault_server.url("/data.bin")}
    )
    assert (tmp_path / "big.zip").read_bytes() == data
    assert capsys.readouterr().out == f"done: {len(data):,} bytes\n"
    gets = [r for r in fault_server.requests if r.method == "GET"]
    assert [r.range for r in gets] == [None, f"bytes={1 << 20}-"]


def test_pyhaul_retry_example_reports_progress_in_its_state(
    fault_server: FaultServer,
    sample_files: dict[str, bytes],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = sample_files["data.bin"]
    monkeypatch.chdir(tmp_path)
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)  # the example's backoff, recorded
    fault_server.set_faults("/data.bin", Faults(truncate_after=1 << 20, times=1))
    ns = run_example(
        PYHAUL_RETRIES, PYHAUL, {"https://example.com/big.iso": fault_server.url("/data.bin")}
    )
    assert (tmp_path / "big.iso").read_bytes() == data
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("attempt 1: ") and out[0].endswith(f"({1 << 20:,} bytes so far)")
    assert out[1] == f"done: {len(data):,} bytes, sha256={ns['result'].sha256[:16]}…"
    assert slept == [2]
    assert ns["state"].is_complete and ns["state"].reported_length == len(data)


def test_pyhaul_async_example(
    fault_server: FaultServer,
    sample_files: dict[str, bytes],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    needs("tenacity", monkeypatch)
    monkeypatch.chdir(tmp_path)
    data = sample_files["data.bin"]
    urls = {}
    for i in (1, 2, 3):
        fault_server.add_file(f"/shard-00{i}.bin", data[: i << 20])
        urls[f"https://example.com/data/shard-00{i}.bin"] = fault_server.url(f"/shard-00{i}.bin")
    # The second shard's first answer is cut: tenacity calls haul_async again, which resumes.
    fault_server.set_faults("/shard-002.bin", Faults(truncate_after=1 << 20, times=1))
    run_example(PYHAUL_ASYNC, PYHAUL, urls)
    for i in (1, 2, 3):
        assert (tmp_path / f"downloads/shard-00{i}.bin").read_bytes() == data[: i << 20]
    second = [r.range for r in fault_server.requests if r.path == "/shard-002.bin"]
    assert second == [None, f"bytes={1 << 20}-"]


def test_pyhaul_exceptions_are_rangeios_with_pyhauls_hierarchy(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    from rangeio.compat import pyhaul

    for name in (
        "PartialHaulError",
        "UnexpectedStatusError",
        "ServerMisconfiguredError",
        "ContentRangeError",
        "ControlFileError",
        "DestinationError",
    ):
        assert issubclass(getattr(pyhaul, name), pyhaul.HaulError), name
    assert pyhaul.PartialHaulError is rangeio.PartialDownloadError
    assert pyhaul.UnexpectedStatusError is rangeio.HTTPStatusError
    assert pyhaul.CompleteHaul is rangeio.HaulResult
    with pytest.raises(pyhaul.UnexpectedStatusError) as caught:
        pyhaul.haul(fault_server.url("/missing.bin"), None, dest=tmp_path / "out")
    error = caught.value
    assert (error.status_code, error.is_transient, error.is_server_error) == (404, False, False)
    # A transient status is retryable: rangeio says so with PartialHaulError (pyhaul raises
    # UnexpectedStatusError with is_transient), the status error as its cause.
    fault_server.set_faults("/data.bin", Faults(status=503, retry_after="7"))
    with pytest.raises(pyhaul.PartialHaulError) as partial:
        pyhaul.haul(fault_server.url("/data.bin"), None, dest=tmp_path / "out")
    cause = partial.value.__cause__
    assert isinstance(cause, pyhaul.UnexpectedStatusError)
    assert (cause.status_code, cause.is_transient, cause.is_server_error) == (503, True, True)
    assert cause.retry_after_seconds == 7
    (tmp_path / "dir").mkdir()
    with pytest.raises(pyhaul.DestinationError):
        pyhaul.haul(fault_server.url("/small.bin"), None, dest=tmp_path / "dir")


def test_pyhaul_state_after_a_cut_and_after_success(
    fault_server: FaultServer, sample_files: dict[str, bytes], tmp_path: Path
) -> None:
    from rangeio.compat.pyhaul import HaulState, PartialHaulError, haul, haul_async

    data = sample_files["data.bin"]
    url = fault_server.url("/data.bin")
    fault_server.set_faults("/data.bin", Faults(truncate_after=1 << 20, times=1))
    state = HaulState()
    with pytest.raises(PartialHaulError) as caught:
        haul(url, None, dest=tmp_path / "a", state=state)
    assert caught.value.reason == str(caught.value)
    assert (state.is_complete, state.valid_length, state.reported_length) == (
        False,
        1 << 20,
        len(data),
    )
    result = asyncio.run(haul_async(url, None, dest=tmp_path / "a", state=state))
    assert (state.is_complete, state.valid_length) == (True, len(data))
    assert state.bytes_read == len(data) - (1 << 20) == result.bytes_transferred
    assert (tmp_path / "a").read_bytes() == data


@pytest.mark.parametrize("change", ["new version", "range ignored"])
def test_pyhaul_200_to_a_resume_is_written_from_byte_0_in_the_same_call(
    change: str, fault_server: FaultServer, sample_files: dict[str, bytes], tmp_path: Path
) -> None:
    """pyhaul: a 200 to a resume request (If-Range no longer matches, or Range ignored) is the
    whole representation: the same haul() rewinds and writes it from byte 0, one request."""
    from rangeio.compat.pyhaul import PartialHaulError, haul

    data = sample_files["data.bin"]
    url = fault_server.url("/data.bin")
    fault_server.set_faults("/data.bin", Faults(truncate_after=1 << 20, times=1))
    with pytest.raises(PartialHaulError):
        haul(url, None, dest=tmp_path / "out")
    new = data[::-1] if change == "new version" else data
    if change == "new version":
        fault_server.replace("/data.bin", new)
    else:
        fault_server.set_faults("/data.bin", Faults(ignore_range=True))
    fault_server.clear_log()
    haul(url, None, dest=tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == new
    assert len(fault_server.requests) == 1


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_pyhaul_on_progress_gets_the_state(
    kind: str, fault_server: FaultServer, sample_files: dict[str, bytes], tmp_path: Path
) -> None:
    from rangeio.compat.pyhaul import HaulState, haul, haul_async

    data = sample_files["data.bin"]
    seen: list[tuple[int, int | None]] = []

    def on_progress(state: HaulState) -> None:
        seen.append((state.valid_length, state.reported_length))

    url, dest = fault_server.url("/data.bin"), tmp_path / "out"
    if kind == "sync":
        haul(url, None, dest=dest, on_progress=on_progress)
    else:
        asyncio.run(haul_async(url, None, dest=dest, on_progress=on_progress))
    assert seen and seen[-1] == (len(data), len(data))
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
