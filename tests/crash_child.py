"""A downloader process for crash tests: `python crash_child.py URL DEST FSIZE_LIMIT CHECKPOINT`.

Prints its progress (bytes written) one per line, so that whoever kills it knows how far it got;
exits 3 on a local OSError (a full disk), printing the errno.
"""

from __future__ import annotations

import signal
import sys

import rangeio


def main(url: str, dest: str, fsize_limit: int, checkpoint: int) -> int:
    if fsize_limit:
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize_limit, fsize_limit))
    policy = rangeio.DownloadPolicy(checkpoint_bytes=checkpoint)
    try:
        rangeio.download(
            url, dest, policy=policy, retries=0, on_progress=lambda done, _: print(done, flush=True)
        )
    except OSError as exc:
        print("error", type(exc).__name__, getattr(exc, "errno", None), flush=True)
        return 3
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
