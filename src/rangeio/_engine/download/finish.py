"""The end of a download: verify the complete ``.part`` (length, SHA-256, header digests), then move it into place."""

from __future__ import annotations

from collections.abc import Mapping

from rangeio._core import control, digests
from rangeio._disk import PartFile
from rangeio._engine.download.job import DownloadJob, DownloadResult, result_of
from rangeio._engine.ops import (
    Blocking,
    Program,
)
from rangeio.errors import (
    ChecksumMismatchError,
)


def finish(
    job: DownloadJob,
    fd: PartFile,
    total: int,
    record: control.ControlRecord | None,
    headers: Mapping[str, str],
    *,
    whole: bool,
) -> Program[DownloadResult]:
    """Verify the complete ``.part`` (length, SHA-256, header digests), then move it into place."""
    files = job.files
    expected = digests.from_headers(headers, body_is_representation=whole)
    algorithms = algorithms_for(headers, whole=whole)
    known = yield Blocking(fd.hashes, (total,))  # may wait for the hash thread
    hashes = yield Blocking(files.finish, (fd.fd, total, algorithms, known))
    if job.sha256 is not None and hashes["sha256"] != job.sha256:
        raise ChecksumMismatchError(
            f"SHA-256 of {job.url} is {hashes['sha256']}, expected {job.sha256}; "
            f"the data stays in {files.part}",
            expected=job.sha256,
            actual=hashes["sha256"],
            algorithm="sha256",
        )
    for digest in expected:
        if hashes[digest.algorithm] != digest.hex:
            raise ChecksumMismatchError(
                f"{digest.source} says {digest.algorithm} {digest.hex}, "
                f"the file has {hashes[digest.algorithm]}; the data stays in {files.part}",
                expected=digest.hex,
                actual=hashes[digest.algorithm],
                algorithm=digest.algorithm,
            )
    yield Blocking(files.commit)
    return result_of(job, total, hashes["sha256"], record)


def algorithms_for(headers: Mapping[str, str], *, whole: bool) -> tuple[str, ...]:
    """SHA-256 always (the result reports it), plus whatever digest headers announce."""
    expected = digests.from_headers(headers, body_is_representation=whole)
    return tuple(sorted({"sha256", *(e.algorithm for e in expected)}))
