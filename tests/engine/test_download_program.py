"""The download program against the scripted runner: the requests a cut download makes."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

import rangeio
from rangeio._engine.download import DownloadResult, download, haul, new_job
from rangeio._engine.ops import Sleep
from rangeio.errors import NetworkError
from tests.engine.fake import Answer, FakeRunner, partial

URL = "https://example.test/big.bin"
DATA = bytes(range(256)) * 256  # 64 KiB
ETAG = '"v7"'


def test_a_cut_download_resumes_from_the_first_missing_byte_with_if_range(tmp_path: Path) -> None:
    headers = {"content-length": str(len(DATA)), "etag": ETAG, "accept-ranges": "bytes"}
    cut = NetworkError("connection reset by peer")
    runner = FakeRunner(
        [
            Answer(200, headers, [DATA[:20000], cut]),
            Answer(206, partial(DATA[20000:], 20000, len(DATA), etag=ETAG), [DATA[20000:]]),
        ]
    )
    dest = tmp_path / "big.bin"
    job = new_job(
        URL,
        dest,
        headers=None,
        sha256=None,
        timeout=None,
        retries=rangeio.RetryPolicy(attempts=2, backoff=0.5),
        policy=None,
    )
    runner.run(download(job))
    assert dest.read_bytes() == DATA
    first, resume = runner.sent
    assert "Range" not in first.headers  # a fresh download asks for the whole file
    assert resume.headers["Range"] == "bytes=20000-"
    assert resume.headers["If-Range"] == ETAG
    assert [op.seconds > 0 for op in runner.ops if isinstance(op, Sleep)] == [True]


CDN = "https://cdn.example.test/big.bin?X-Amz-Expires=600&X-Amz-Signature=one"
FRESH = "https://cdn.example.test/big.bin?X-Amz-Expires=600&X-Amz-Signature=two"


def test_a_download_is_one_exchange_redirects_resumes_and_the_presigned_fallback(
    tmp_path: Path,
) -> None:
    """The exact requests of a download whose presigned target expires mid-body: the cut is
    resumed at the target (If-Range), its 403 sends the exchange back to the URL the user gave,
    which hands out a fresh target, and the rest is appended; one retry spent, one sleep."""
    whole = {"content-length": str(len(DATA)), "etag": ETAG}
    cut = NetworkError("connection reset by peer")
    runner = FakeRunner(
        [
            Answer(302, {"location": CDN, "content-length": "0"}),
            Answer(200, whole, [DATA[:30000], cut]),
            Answer(403, {"content-length": "0"}),
            Answer(302, {"location": FRESH, "content-length": "0"}),
            Answer(206, partial(DATA[30000:], 30000, len(DATA), etag=ETAG), [DATA[30000:]]),
        ]
    )
    dest = tmp_path / "big.bin"
    job = new_job(
        URL,
        dest,
        headers={"Authorization": "Bearer t"},
        sha256=None,
        timeout=None,
        retries=rangeio.RetryPolicy(attempts=2, backoff=0.5),
        policy=None,
    )
    result = runner.run(download(job))
    assert dest.read_bytes() == DATA
    sent = [(r.url, r.headers.get("Range"), r.headers.get("If-Range")) for r in runner.sent]
    assert sent == [
        (URL, None, None),
        (CDN, None, None),
        (CDN, "bytes=30000-", ETAG),
        (URL, "bytes=30000-", ETAG),
        (FRESH, "bytes=30000-", ETAG),
    ]
    # Credentials only on the URL the user gave, never on the CDN's origin.
    assert ["Authorization" in r.headers for r in runner.sent] == [True, False, False, True, False]
    assert runner.kinds(wire=True) == [
        "Send", "NextChunk", "Close",  # 302 (its empty body drained)
        "Send", "NextChunk", "Close",  # 200, cut
        "Sleep",
        "Send", "NextChunk", "Close",  # 403 from the expired target
        "Send", "NextChunk", "Close",  # 302 to a fresh target
        "Send", "NextChunk", "Close",  # 206 of the rest
    ]  # fmt: skip
    assert [op.seconds > 0 for op in runner.ops if isinstance(op, Sleep)] == [True]
    assert (result.requests, result.bytes_transferred, result.bytes_reused) == (5, len(DATA), 0)
    assert all(r.closed for r in runner.responses)


def test_a_haul_is_one_request_and_raises_with_its_durable_progress(tmp_path: Path) -> None:
    """haul: no retry inside (the cut ends the call), and the next haul resumes from the bytes
    it made durable, If-Range pinned, with one request."""
    whole = {"content-length": str(len(DATA)), "etag": ETAG}
    runner = FakeRunner(
        [
            Answer(200, whole, [DATA[:25000], NetworkError("reset")]),
            Answer(206, partial(DATA[25000:], 25000, len(DATA), etag=ETAG), [DATA[25000:]]),
        ]
    )
    dest = tmp_path / "big.bin"

    def one_haul() -> DownloadResult:
        job = new_job(URL, dest, headers=None, sha256=None, timeout=None, retries=0, policy=None)
        return runner.run(haul(job))

    with pytest.raises(rangeio.PartialDownloadError) as cut:
        one_haul()
    assert cut.value.bytes_done == 25000 and len(runner.sent) == 1
    assert not [op for op in runner.ops if isinstance(op, Sleep)]
    result = one_haul()
    assert dest.read_bytes() == DATA
    assert runner.sent[1].headers["Range"] == "bytes=25000-"
    assert runner.sent[1].headers["If-Range"] == ETAG
    assert result.bytes_reused == 25000 and result.requests == 1


def test_a_resumed_206_s_content_md5_is_of_its_part_not_of_the_file(tmp_path: Path) -> None:
    """The finish reads the digests of the last answer: after a cut 200 (Content-MD5 of the
    file) resumed by a 206 (Content-MD5 of its part, RFC 1864), the part's is not taken for
    the file's. Both answers' bytes make the right file."""

    def md5(data: bytes) -> str:
        return base64.b64encode(hashlib.md5(data).digest()).decode()

    whole = {"content-length": str(len(DATA)), "etag": ETAG, "content-md5": md5(DATA)}
    rest = partial(DATA[40000:], 40000, len(DATA), etag=ETAG)
    rest["content-md5"] = md5(DATA[40000:])
    runner = FakeRunner(
        [
            Answer(200, whole, [DATA[:40000], NetworkError("reset")]),
            Answer(206, rest, [DATA[40000:]]),
        ]
    )
    dest = tmp_path / "big.bin"
    job = new_job(
        URL,
        dest,
        headers=None,
        sha256=hashlib.sha256(DATA).hexdigest(),
        timeout=None,
        retries=rangeio.RetryPolicy(attempts=2, backoff=0.0),
        policy=None,
    )
    result = runner.run(download(job))
    assert dest.read_bytes() == DATA and result.requests == 2
