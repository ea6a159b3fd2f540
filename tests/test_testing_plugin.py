"""The public ``range_server`` fixture (rangeio's pytest plugin) as a user's test would use it."""

from __future__ import annotations

import pytest

import rangeio
from rangeio.testing import Faults, FaultServer


def test_range_server_fixture(range_server: FaultServer) -> None:
    range_server.add_file("/report.bin", b"x" * 10_000)
    with rangeio.open(range_server.url("/report.bin")) as f:
        assert f.read(5) == b"xxxxx"
    assert range_server.requests[0].range == "bytes=-1048576"
    range_server.faults = Faults(status=503, retry_after="0")
    with pytest.raises(rangeio.HTTPStatusError):
        rangeio.open(range_server.url("/report.bin"), retries=0)
