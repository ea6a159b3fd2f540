"""Where rangeio.download's time goes: until the last body byte, and after it.

Runs ``rangeio.download`` in this process (no subprocess, no peers) against the same origin as
run.py, timing the last ``on_progress`` call: what comes after it is the finish (the last
checkpoint, the wait for the hash thread, the rename and its fsyncs). CPU is this process's
(every thread: receiving, the hash thread, checkpoints), not nginx's. With
``--no-checkpoints`` a second row uses a DownloadPolicy whose thresholds are never reached, to
show what the mid-file checkpoints (fdatasync every 8 MiB or 1 s) cost.

    .venv/bin/python benchmarks/download/breakdown.py                    # 1 GiB, like scenario A
    .venv/bin/python benchmarks/download/breakdown.py --no-checkpoints
    .venv/bin/python benchmarks/download/breakdown.py --shaped --size-mib 256 --connections 8
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from origin import MiB, make_source, start_nginx  # noqa: E402
from shaper import ShaperProcess  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--shaped", action="store_true", help="through shaper.py: +40 ms/request, 25 MB/s/conn"
    )
    parser.add_argument(
        "--no-checkpoints", action="store_true", help="also run without mid-file checkpoints"
    )
    parser.add_argument("--tmp-dir", type=Path, help="default: the system temp dir")
    args = parser.parse_args()

    import rangeio

    policies: list[tuple[str, rangeio.DownloadPolicy | None]] = [("default policy", None)]
    if args.no_checkpoints:
        never = rangeio.DownloadPolicy(checkpoint_bytes=1 << 62, checkpoint_seconds=1e12)
        policies.append(("no mid-file checkpoints", never))
    with tempfile.TemporaryDirectory(prefix="rangeio-dl-breakdown-", dir=args.tmp_dir) as tmp:
        root = Path(tmp)
        nginx = start_nginx(root / "nginx")
        shaper = None
        try:
            make_source(nginx.www / "f.bin", args.size_mib * MiB)
            url = nginx.url("f.bin")
            if args.shaped:
                shaper = ShaperProcess(nginx.port, 40.0, 25.0)
                url = f"{shaper.origin}/f.bin"
            dest = root / "download.bin"
            print(f"{args.size_mib} MiB, connections={args.connections}, {url}")
            for _ in range(max(args.repeats, 1)):
                for label, policy in policies:
                    last = [0.0]

                    def progress(done: int, total: int | None, last: list[float] = last) -> None:
                        last[0] = time.perf_counter()

                    os.sync()
                    cpu = time.process_time()
                    started = time.perf_counter()
                    result = rangeio.download(
                        url,
                        dest,
                        connections=args.connections,
                        on_progress=progress,
                        policy=policy,
                    )
                    ended = time.perf_counter()
                    cpu = time.process_time() - cpu
                    print(
                        f"  {label:24} total {ended - started:6.2f} s   last body byte at "
                        f"{last[0] - started:6.2f} s   after it {ended - last[0]:5.2f} s   "
                        f"CPU {cpu:5.2f} s   {result.requests} request(s)"
                    )
                    dest.unlink()
        finally:
            if shaper is not None:
                shaper.close()
            nginx.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
