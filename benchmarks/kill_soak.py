"""Kill a downloader with SIGKILL many times at random moments; report what each resume re-fetched.

    .venv/bin/python benchmarks/kill_soak.py --kills 200

Every byte of the final file is checked. "re-fetched" is how far the killed process had written
beyond the point the next process resumed from; it must stay within the checkpoint interval.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

import rangeio  # noqa: E402
from rangeio.testing import Faults, FaultServer  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--rate-mib", type=float, default=4.0, help="server send rate, MiB/s")
    parser.add_argument("--checkpoint-kib", type=int, default=256)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    data = random.Random(args.seed + 1).randbytes(args.size_mib << 20)
    checkpoint = args.checkpoint_kib << 10
    child = str(ROOT / "tests" / "crash_child.py")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    refetched: list[int] = []
    kills = 0
    with tempfile.TemporaryDirectory() as tmp, FaultServer({"/f.bin": data}) as server:
        dest = Path(tmp) / "out.bin"
        server.faults = Faults(throttle=args.rate_mib * (1 << 20))
        last_written: int | None = None
        started = time.monotonic()
        while kills < args.kills:
            before = len(server.requests)
            proc = subprocess.Popen(
                [sys.executable, child, server.url("/f.bin"), str(dest), "0", str(checkpoint)],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                env=env,
            )
            time.sleep(rng.uniform(0.15, 0.6))
            proc.send_signal(signal.SIGKILL)
            out, _ = proc.communicate(timeout=30)
            requests = server.requests[before:]
            if requests and last_written is not None and requests[0].range:
                resumed_at = int(requests[0].range.split("=")[1].split("-")[0])
                refetched.append(max(last_written - resumed_at, 0))
            printed = [int(x) for x in out.split() if x.isdigit()]
            last_written = printed[-1] if printed else last_written
            if "done" in out:
                break
            kills += 1
            if dest.exists():
                print("FAIL: a partial file appeared at the destination")
                return 1
        server.clear_faults()
        rangeio.download(server.url("/f.bin"), dest)
        ok = dest.read_bytes() == data
        elapsed = time.monotonic() - started
    print(f"kills: {kills}  elapsed: {elapsed:.1f}s  final bytes {'ok' if ok else 'CORRUPT'}")
    if refetched:
        print(
            f"re-fetched per resume: median {statistics.median(refetched) / 1024:.0f} KiB, "
            f"max {max(refetched) / 1024:.0f} KiB (checkpoint interval {args.checkpoint_kib} KiB)"
        )
    return 0 if ok and all(r <= checkpoint + (256 << 10) for r in refetched) else 1


if __name__ == "__main__":
    sys.exit(main())
