"""RemoteFile's programs (open, read_missing, read_ranges, a stream) against the scripted runner: the
exact operations each asks for."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import rangeio
from rangeio._core.exchange import Request
from rangeio._core.options import FileOptions
from rangeio._engine.ops import Abandon, Advance, Close, NextChunk, Send, Sleep
from rangeio._engine.remote import Cursor, RemoteFile
from rangeio._engine.streams import StreamSet
from rangeio.errors import HTTPStatusError, NetworkError
from tests.engine.fake import Answer, FakeRunner, asked_range, partial

URL = "https://example.test/data.bin"
DATA = bytes(range(256)) * 64  # 16 KiB
ETAG = '"v1"'


def remote(**options: object) -> RemoteFile:
    # No prefetch, no streaming read-ahead surprises: a test names the bytes it wants.
    options.setdefault("prefetch_bytes", 1024)
    options.setdefault("retries", rangeio.RetryPolicy(attempts=3, backoff=0.25))
    return RemoteFile(URL, FileOptions.from_kwargs(**options))


def opening_answer() -> Answer:
    tail = DATA[-1024:]
    return Answer(206, partial(tail, len(DATA) - 1024, len(DATA), etag=ETAG), [tail])


def test_an_open_is_one_send_of_the_prefetch_range_whose_body_is_read_then_closed() -> None:
    runner = FakeRunner([opening_answer()])
    file = remote()
    runner.run(file.open())
    [request] = runner.sent
    assert request.method == "GET" and request.url == URL
    assert request.headers["Range"] == "bytes=-1024"
    assert "If-Match" not in request.headers  # nothing pinned yet
    assert runner.kinds() == ["Send", "NextChunk", "Close"]
    assert runner.responses[0].finished and runner.responses[0].closed
    assert file.size == len(DATA)
    assert file.identity is not None and file.identity.etag is not None
    assert file.identity.etag.opaque == "v1"


def cut_after(n: int) -> Callable[[Request], Answer]:
    """The range asked for, cut after ``n`` bytes of its body."""

    def answer(request: Request) -> Answer:
        start, stop = asked_range(request, len(DATA))
        body = DATA[start:stop]
        cut = NetworkError("connection reset by peer")
        return Answer(206, partial(body, start, len(DATA), etag=ETAG), [body[:n], cut])

    return answer


def whole_range(request: Request) -> Answer:
    start, stop = asked_range(request, len(DATA))
    return Answer(206, partial(DATA[start:stop], start, len(DATA), etag=ETAG), [DATA[start:stop]])


def test_a_cut_body_is_resumed_from_the_first_missing_byte_with_if_match() -> None:
    # The read's answer is cut after 1000 bytes; the resume brings the rest.
    runner = FakeRunner([opening_answer(), cut_after(1000), whole_range])
    file = remote(cache_bytes=4096 * 4)
    runner.run(file.open())
    out = bytearray(4096)
    got = runner.run(file.read_missing(0, memoryview(out), Cursor(file)))
    assert got > 1000 and bytes(out[:got]) == DATA[:got]
    read, resume = runner.sent[1:]
    start, stop = asked_range(read, len(DATA))
    assert start == 0 and stop >= got
    assert read.headers.get("If-Match") == ETAG
    assert resume.headers["Range"] == f"bytes=1000-{stop - 1}"
    assert resume.headers.get("If-Match") == ETAG
    # The cut response is closed (dropped, not drained), and the resume waited its backoff.
    assert runner.responses[1].closed
    assert runner.kinds(wire=True)[3:] == [
        "Send",
        "NextChunk",
        "Close",
        "Sleep",
        "Send",
        "NextChunk",
        "Close",
    ]
    [sleep] = [op for op in runner.ops if isinstance(op, Sleep)]
    assert sleep.seconds > 0
    assert file.stats.retries == 1


def test_a_404_body_is_drained_then_closed_and_raises() -> None:
    runner = FakeRunner([Answer(404, {"content-length": "9"}, [b"not found"])])
    file = remote()
    with pytest.raises(HTTPStatusError) as raised:
        runner.run(file.open())
    assert raised.value.status == 404
    # A 404 is not retried: one request; its small body is read to its end so that the
    # connection is kept, then the response is closed.
    assert len(runner.sent) == 1
    assert runner.kinds() == ["Send", "NextChunk", "Close"]
    assert runner.responses[0].finished and runner.responses[0].closed
    nexts = [op for op in runner.ops if isinstance(op, NextChunk)]
    assert len(nexts) == 2  # the 9 bytes, then the end


def test_a_503_with_retry_after_sleeps_that_long_then_asks_again() -> None:
    runner = FakeRunner(
        [Answer(503, {"retry-after": "2", "content-length": "0"}), opening_answer()]
    )
    file = remote(retries=rangeio.RetryPolicy(attempts=2, backoff=0.1, max_backoff=5.0))
    runner.run(file.open())
    assert [type(op).__name__ for op in runner.ops if not isinstance(op, NextChunk)] == [
        "Send",
        "Close",
        "Sleep",
        "Send",
        "Close",
    ]
    [sleep] = [op for op in runner.ops if isinstance(op, Sleep)]
    assert sleep.seconds == pytest.approx(2.0)
    assert runner.sent[0].headers == runner.sent[1].headers


def test_read_ranges_of_cached_bytes_sends_nothing_and_of_two_holes_one_multipart() -> None:
    boundary = "B0UND"
    parts = [(2000, 2100), (6000, 6100)]
    body = (
        b"".join(
            f"--{boundary}\r\nContent-Range: bytes {a}-{b - 1}/{len(DATA)}\r\n\r\n".encode()
            + DATA[a:b]
            + b"\r\n"
            for a, b in parts
        )
        + f"--{boundary}--\r\n".encode()
    )
    runner = FakeRunner(
        [
            opening_answer(),
            Answer(
                206,
                {
                    "content-type": f"multipart/byteranges; boundary={boundary}",
                    "content-length": str(len(body)),
                    "etag": ETAG,
                },
                [body],
            ),
        ]
    )
    file = remote(multipart=True, coalesce_gap_bytes=0, multipart_gap_bytes=0)
    runner.run(file.open())
    # The open's prefetch holds the tail: read from the cache, no request.
    tail = runner.run(file.read_ranges([(len(DATA) - 100, len(DATA))]))
    assert tail == [DATA[-100:]] and len(runner.sent) == 1
    got = runner.run(file.read_ranges(parts))
    assert got == [DATA[a:b] for a, b in parts]
    assert len(runner.sent) == 2
    ranges = runner.sent[1].headers["Range"]
    assert ranges == "bytes=2000-2099,6000-6099"
    assert runner.sent[1].headers.get("If-Match") == ETAG
    assert all(r.closed for r in runner.responses)


def test_every_response_the_programs_open_is_closed_exactly_once() -> None:
    runner = FakeRunner([opening_answer()])
    runner.run(remote().open())
    closes = [op.response for op in runner.ops if isinstance(op, Close)]
    sends = [op for op in runner.ops if isinstance(op, Send)]
    assert len(closes) == len(sends) and len({id(r) for r in closes}) == len(closes)


def test_a_stream_sends_its_range_once_pauses_per_chunk_and_is_abandoned_at_close() -> None:
    span = DATA[1000:9000]
    chunks = [span[i : i + 1000] for i in range(0, len(span), 1000)]
    runner = FakeRunner(
        [opening_answer(), Answer(206, partial(span, 1000, len(DATA), etag=ETAG), list(chunks))]
    )
    file = remote()
    runner.run(file.open())
    streams = StreamSet(file, 0)
    part = runner.run(streams.add((1000, 9000), "part"))
    assert runner.run(part.read(2500)) == span[:2500]
    [_, request] = runner.sent
    assert request.headers["Range"] == "bytes=1000-8999"
    assert request.headers.get("If-Match") == ETAG
    # Each Advance runs the response's program to its next chunk: the reader gets bytes as they
    # arrive, and 2500 bytes take 3 chunks, not the whole body.
    assert runner.responses[1].read == 3
    assert any(isinstance(op, Advance) for op in runner.ops)
    runner.run(streams.close())
    assert isinstance(runner.ops[-1], Abandon)
    assert len(runner.sent) == 2  # the rest of the body was never asked for again
