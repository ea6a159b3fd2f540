"""The download program against the scripted runner: the requests a cut download makes."""

from __future__ import annotations

from pathlib import Path

import rangeio
from rangeio._engine.download import download, new_job
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
