"""The probe's state machine, fed scripted answers (no network): what each answer means, misuse."""

from __future__ import annotations

import pytest

from rangeio._core.exchange import ReadBody, Skip
from rangeio._core.options import FileOptions
from rangeio._core.probe import Probe, Step, spread
from rangeio.errors import HTTPStatusError

URL = "http://example.test/f"
OPTIONS = FileOptions.from_kwargs(retries=0)


def answer(probe: Probe, status: int, headers: dict[str, str], body: bytes = b"") -> None:
    """Run the probe's next exchange against one scripted answer."""
    exchange = probe.next_exchange()
    assert exchange is not None
    assert exchange.next_request(1000.0) is not None
    try:
        action = exchange.on_response(status, headers, 1000.5)
        if isinstance(action, ReadBody):
            if body:
                exchange.on_data(body)
            assert exchange.on_end() is None
        else:
            assert isinstance(action, Skip)
    except HTTPStatusError as exc:
        probe.on_failure(exc)
    else:
        probe.on_result(exchange.result)


def test_suffix_then_multipart() -> None:
    probe = Probe(URL, OPTIONS)
    answer(
        probe, 206, {"content-range": "bytes 9-9/10", "content-length": "1", "etag": '"a"'}, b"x"
    )
    assert probe.step is Step.MULTIPART
    boundary = "B"
    body = (
        b"--B\r\nContent-Range: bytes 0-0/10\r\n\r\na\r\n"
        b"--B\r\nContent-Range: bytes 9-9/10\r\n\r\nx\r\n--B--\r\n"
    )
    answer(
        probe,
        206,
        {"content-type": f"multipart/byteranges; boundary={boundary}", "etag": '"a"'},
        body,
    )
    facts = probe.facts(1002.0)
    assert (facts.size, facts.ranges, facts.suffix_ranges, facts.multipart) == (
        10,
        True,
        True,
        True,
    )
    assert facts.etag == '"a"' and facts.requests == 2
    assert facts.first_byte == 0.5 and facts.elapsed == 2.0


def test_refused_suffix_falls_back_to_a_prefix() -> None:
    probe = Probe(URL, OPTIONS, max_ranges=0)
    answer(probe, 501, {"content-length": "0"})
    assert probe.step is Step.PREFIX
    answer(probe, 206, {"content-range": "bytes 0-0/10", "content-length": "1"}, b"a")
    facts = probe.facts(1002.0)
    assert (facts.ranges, facts.suffix_ranges, facts.multipart) == (True, False, None)


def test_a_200_means_no_ranges() -> None:
    probe = Probe(URL, OPTIONS)
    answer(probe, 200, {"content-length": "3"}, b"abc")
    facts = probe.facts(1002.0)
    assert (facts.size, facts.ranges, facts.suffix_ranges, facts.multipart) == (
        3,
        False,
        False,
        False,
    )


def test_a_404_ends_the_probe() -> None:
    probe = Probe(URL, OPTIONS)
    with pytest.raises(HTTPStatusError):
        answer(probe, 404, {"content-length": "0"})


def test_misuse_raises() -> None:
    probe = Probe(URL, OPTIONS)
    with pytest.raises(RuntimeError):
        probe.facts(0.0)  # not over
    assert probe.next_exchange() is not None
    with pytest.raises(RuntimeError):
        probe.next_exchange()  # the previous one was not reported
    with pytest.raises(ValueError):
        Probe(URL, OPTIONS, max_ranges=1)


def test_spread_never_adjacent() -> None:
    for size in range(3, 200):
        for count in range(2, size // 2 + 1):
            starts = [s.start for s in spread(count, size)]
            assert starts[0] == 0 and starts[-1] == size - 1
            assert all(b - a >= 2 for a, b in zip(starts, starts[1:], strict=False))
    with pytest.raises(ValueError):
        spread(3, 4)
