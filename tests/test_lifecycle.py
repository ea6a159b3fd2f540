"""Clients are borrowed, never closed; presigned redirect targets are refreshed when they expire."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import rangeio
from rangeio.testing import Faults, FaultServer
from tests.adapters import Opener

DATA = "/data.bin"


def test_borrowed_client_stays_open(fault_server: FaultServer, opener: Opener) -> None:
    data = fault_server.get_file(DATA)
    with opener(fault_server.url(DATA)) as f:
        f.read(10)
    # The client still works after the file closed: rangeio did not close it.
    with opener(fault_server.url(DATA)) as g:
        assert g.read(10) == data[:10]


def test_requests_session_headers_and_raw_bytes(fault_server: FaultServer) -> None:
    """A session's default Accept-Encoding (gzip) is overridden: bodies are identity, raw."""
    import requests

    data = fault_server.get_file(DATA)
    with requests.Session() as session:
        session.headers["X-From-Session"] = "yes"
        with rangeio.open(fault_server.url(DATA), client=session) as f:
            assert f.read(100) == data[:100]
    seen = fault_server.requests[0].headers
    assert seen["accept-encoding"] == "identity"
    assert seen["x-from-session"] == "yes"


def _amz_query(signed_at: float, lifetime: int) -> str:
    stamp = datetime.fromtimestamp(signed_at, tz=timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"X-Amz-Date={stamp}&X-Amz-Expires={lifetime}&X-Amz-Signature=abc"


def test_live_presigned_target_is_remembered(fault_server: FaultServer) -> None:
    target = f"{DATA}?{_amz_query(time.time(), 3600)}"
    fault_server.set_faults("/signed", Faults(redirect_to=target))
    with rangeio.open(fault_server.url("/signed"), prefetch_bytes=0) as f:
        f.seek(100)
        f.read(10)
    assert [r.path for r in fault_server.requests] == ["/signed", DATA, DATA]


def test_expired_presigned_target_is_refreshed(fault_server: FaultServer) -> None:
    data = fault_server.get_file(DATA)
    target = f"{DATA}?{_amz_query(time.time() - 3600, 60)}"
    fault_server.set_faults("/signed", Faults(redirect_to=target))
    with rangeio.open(fault_server.url("/signed"), prefetch_bytes=0) as f:
        f.seek(100)
        assert f.read(10) == data[100:110]
    # Each request starts again at the URL the user gave, to get a fresh signature.
    assert [r.path for r in fault_server.requests] == ["/signed", DATA, "/signed", DATA]


def test_stale_remembered_url_falls_back_to_original(fault_server: FaultServer) -> None:
    data = fault_server.get_file(DATA)
    fault_server.add_file("/v1.bin", data)
    fault_server.set_faults("/latest", Faults(redirect_to="/v1.bin"))
    with rangeio.open(fault_server.url("/latest"), prefetch_bytes=0) as f:
        fault_server.set_faults("/v1.bin", Faults(status=403))
        fault_server.set_faults("/latest", Faults(redirect_to=DATA))
        f.seek(100)
        assert f.read(10) == data[100:110]
    assert [r.path for r in fault_server.requests][-3:] == ["/v1.bin", "/latest", DATA]
