"""The 1,043-member tar of issue 12 (mixed member sizes, fixed seed), for tests and benchmarks."""

from __future__ import annotations

import io
import random
import tarfile

KiB = 1024
MEMBERS = 1043
SEED = 12


def member_size(rng: random.Random) -> int:
    """Most members small (source files, metadata), some medium, a few large."""
    roll = rng.random()
    if roll < 0.6:
        return rng.randint(0, 3 * KiB)
    if roll < 0.9:
        return rng.randint(3 * KiB, 128 * KiB)
    return rng.randint(64 * KiB, 320 * KiB)


def make_member_tar(members: int = MEMBERS, seed: int = SEED) -> tuple[bytes, dict[str, bytes]]:
    """The archive (written by ``tarfile``, GNU format) and its members' bytes, in order."""
    rng = random.Random(seed)
    buf = io.BytesIO()
    contents: dict[str, bytes] = {}
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for i in range(members):
            name = f"data/part-{i // 100:02d}/file-{i:05d}.bin"
            payload = rng.randbytes(member_size(rng))
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            info.mtime = 1_700_000_000
            tar.addfile(info, io.BytesIO(payload))
            contents[name] = payload
    return buf.getvalue(), contents
