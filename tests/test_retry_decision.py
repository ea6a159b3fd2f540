"""One retry decision (`_core/retry.py` is_retryable) at every site: a file read, a download,
a parallel download's workers, and haul retry the same failures and give up on the same."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import rangeio
from rangeio._core.retry import is_retryable
from rangeio.testing import Faults, FaultServer
from tests.adapters import Opener

DATA = "/data.bin"
FAST_RETRY = rangeio.RetryPolicy(attempts=3, backoff=0.01, max_backoff=0.05)
SEGMENTS = rangeio.DownloadPolicy(min_segment_bytes=4 * 1024 * 1024)  # 2 connections: 2 segments

# (fault, whether asking again may succeed); each fault hits once, then the server behaves.
KINDS = {
    "503": (Faults(status=503, times=1), True),
    "reset": (Faults(reset_after=0, times=1), True),
    "404": (Faults(status=404, times=1), False),
    "403": (Faults(status=403, times=1), False),
}


def _gets(server: FaultServer) -> list[Any]:
    return [r for r in server.requests if r.method == "GET"]


def _no_range_asked_twice(server: FaultServer) -> None:
    counts = Counter(r.headers.get("range") for r in _gets(server))
    assert max(counts.values()) == 1, counts


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("site", ["read", "download", "workers"])
def test_every_site_retries_the_same_failures(
    fault_server: FaultServer, opener: Opener, tmp_path: Path, kind: str, site: str
) -> None:
    faults, retryable = KINDS[kind]
    data = fault_server.get_file(DATA)
    url = fault_server.url(DATA)
    if site == "workers":
        # Big enough that the first answer cannot carry the whole file before the second
        # connection asks for its segment.
        data = bytes(range(256)) * (64 * 1024)
        fault_server.add_file("/big.bin", data)
        url = fault_server.url("/big.bin")
        # The first request works; the next (a worker's segment) gets the fault.
        faults = Faults(status=faults.status, reset_after=faults.reset_after, skip=1, times=1)
    fault_server.faults = faults
    fault_server.clear_log()

    def run() -> bytes:
        if site == "read":
            with opener(url, retries=FAST_RETRY, prefetch_bytes=0) as f:
                return f.read(1000)  # type: ignore[no-any-return]
        dest = tmp_path / "out.bin"
        connections = 2 if site == "workers" else 1
        opener.download(url, dest, retries=FAST_RETRY, connections=connections, policy=SEGMENTS)
        return dest.read_bytes()

    if retryable:
        got = run()
        assert got == (data[:1000] if site == "read" else data)
        gets = _gets(fault_server)
        if site == "workers":
            assert len(gets) > 2  # the fault hit a worker's request, which was asked again
        else:
            # The failed request was asked again: one more GET than ranges asked.
            assert len(gets) > len({r.headers.get("range") for r in gets})
    else:
        with pytest.raises(rangeio.HTTPStatusError) as info:
            run()
        assert info.value.status == faults.status
        assert not is_retryable(info.value)
        if site != "workers":  # a worker's segment may be split (stolen) by the time it fails
            _no_range_asked_twice(fault_server)


# Not "reset": aiohttp itself resends a request whose fresh connection was reset unanswered.
@pytest.mark.parametrize("kind", ["503", "404", "403"])
def test_haul_says_what_download_would_retry(
    fault_server: FaultServer, opener: Opener, tmp_path: Path, kind: str
) -> None:
    """haul makes one request and never retries: what it raises is retryable exactly when
    download would have asked again."""
    faults, retryable = KINDS[kind]
    fault_server.faults = faults
    fault_server.clear_log()
    with pytest.raises(rangeio.NetworkError) as info:
        opener.haul(fault_server.url(DATA), tmp_path / "out.bin")
    assert is_retryable(info.value) is retryable
    assert isinstance(info.value, rangeio.PartialDownloadError) is retryable
    assert len(_gets(fault_server)) == 1


def test_haul_takes_downloads_argument_order(fault_server: FaultServer, tmp_path: Path) -> None:
    """haul(url, dest, client=...) as download; the old haul(url, client, dest=...) still works
    with a DeprecationWarning; a shape that cannot be told apart is refused."""
    import urllib3

    data = fault_server.get_file(DATA)
    url = fault_server.url(DATA)
    with urllib3.PoolManager() as pool:
        rangeio.haul(url, tmp_path / "new", client=pool)
        with pytest.warns(DeprecationWarning, match="haul\\(url, dest, client=client\\)"):
            rangeio.haul(url, pool, dest=tmp_path / "old")
        with pytest.raises(TypeError):
            rangeio.haul(url, tmp_path / "x", pool)  # type: ignore[misc]
        with pytest.raises(TypeError):
            rangeio.haul(url, pool, dest=tmp_path / "y", client=pool)
    assert (tmp_path / "new").read_bytes() == (tmp_path / "old").read_bytes() == data


def test_retries_none_means_the_default_policy(fault_server: FaultServer, opener: Opener) -> None:
    """retries=None is "not given" for files too (it was "no retry"): a 503 once is retried."""
    fault_server.faults = Faults(status=503, retry_after="0", times=1)
    with opener(fault_server.url(DATA), retries=None, prefetch_bytes=0) as f:
        assert f.read(10) == fault_server.get_file(DATA)[:10]
