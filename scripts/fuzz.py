#!/usr/bin/env python3
"""The long fuzz run: each parser for a given number of inputs, reporting inputs and failures.

usage: .venv/bin/python scripts/fuzz.py [--inputs N] [--seconds S] [--engine atheris|python]
                                        [--seed N] [--artifacts DIR] [--corpus DIR] [TARGET ...]
       .venv/bin/python scripts/fuzz.py --replay FILE TARGET

Targets (all by default): range, content_range, multipart, control, zip, tar; they live in
tests/fuzz_targets.py, shared with the short run in tests/test_fuzz.py. Each target runs for
``--inputs`` inputs or ``--seconds`` seconds, whichever comes first. With atheris installed
(the default engine then), each target runs in its own coverage-guided libFuzzer process
seeded with the valid inputs; otherwise the seeded mutation engine of the short run is used.
Every failing input is printed (hex) and saved under ``--artifacts``; ``--replay`` runs one
saved input again, and ``--corpus DIR`` adds the files in DIR that are named after a target
(as saved failures are) to that target's starting inputs. The exit status is 1 when any target had a failure.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# An input taking longer than this is reported as a hang (an infinite loop, or a quadratic
# blow-up); every target handles its inputs in milliseconds.
HANG_SECONDS = 10
SHOWN_FAILURES = 3


class Hang(Exception):
    """An input ran past HANG_SECONDS."""


def _save(artifacts: Path, target: str, data: bytes) -> Path:
    artifacts.mkdir(parents=True, exist_ok=True)
    path = artifacts / f"{target}-{hashlib.sha1(data).hexdigest()[:16]}"
    path.write_bytes(data)
    return path


def _print_failure(failure: object, path: Path) -> None:
    # stdout: under atheris, stderr is libFuzzer's (kept only when the process dies).
    print(failure.describe())  # type: ignore[attr-defined]
    print(f"saved as {path}; replay: scripts/fuzz.py --replay {path} <target>\n", flush=True)


# -- the python engine -------------------------------------------------------------------------


def _extra(corpus: Path | None, name: str) -> list[Path]:
    if corpus is None:
        return []
    return sorted(p for p in corpus.glob(f"{name}-*") if p.is_file())


def _run_python(
    name: str, inputs: int, seconds: float, seed: int, artifacts: Path, corpus: Path | None
) -> dict[str, Any]:
    from tests.fuzz_targets import TARGETS, fuzz

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise Hang(f"one input took more than {HANG_SECONDS}s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    try:
        report = fuzz(
            TARGETS[name],
            count=inputs,
            seed=seed,
            seconds=seconds,
            keep=SHOWN_FAILURES,
            on_input=lambda: signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS),
            extra=[p.read_bytes() for p in _extra(corpus, name)],
        )
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    for failure in report.failures:
        path = _save(artifacts, name, failure.data)
        if failure.trace:
            _print_failure(failure, path)
    return {
        "inputs": report.inputs,
        "accepted": report.accepted,
        "failures": len(report.failures),
        "seconds": report.seconds,
    }


# -- the atheris engine: one libFuzzer process per target ---------------------------------------


def _run_atheris(
    name: str, inputs: int, seconds: float, seed: int, artifacts: Path, corpus: Path | None
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="rangeio-fuzz-") as tmp:
        report_path = Path(tmp) / "report.json"
        command = [
            sys.executable,
            __file__,
            "--child",
            name,
            "--inputs",
            str(inputs),
            "--seconds",
            str(seconds),
            "--seed",
            str(seed),
            "--artifacts",
            str(artifacts),
            "--report",
            str(report_path),
            *(["--corpus", str(corpus)] if corpus else []),
        ]
        started = time.monotonic()
        done = subprocess.run(command, stderr=subprocess.PIPE, text=True, errors="replace")
        if report_path.exists():
            result: dict[str, Any] = json.loads(report_path.read_text())
            return result
        # libFuzzer stopped the process itself: a hang (-timeout), memory (-rss_limit_mb) or a
        # crash in C code. Its own report names the input it saved.
        print(done.stderr[-4000:], file=sys.stderr)
        return {
            "inputs": None,
            "accepted": None,
            "failures": 1,
            "seconds": time.monotonic() - started,
            "died": done.returncode,
        }


def _child(
    name: str,
    inputs: int,
    seconds: float,
    seed: int,
    artifacts: Path,
    report: Path,
    extra: Path | None,
) -> None:
    import atheris

    # Instrument rangeio for coverage feedback: it must be imported for the first time here.
    with atheris.instrument_imports(include=["rangeio"]):
        from tests.fuzz_targets import TARGETS, Failure, check, max_len

    target = TARGETS[name]
    counts = {"inputs": 0, "accepted": 0, "failures": 0}
    started = time.monotonic()
    deadline = started + seconds

    def finish() -> None:
        counts_out = {**counts, "seconds": time.monotonic() - started}
        report.write_text(json.dumps(counts_out))
        sys.stdout.flush()
        sys.stderr.flush()
        # libFuzzer never returns from Fuzz(); this is how a bounded run ends.
        os._exit(0)

    def one_input(data: bytes) -> None:
        outcome = check(target, data)
        counts["inputs"] += 1
        if isinstance(outcome, Failure):
            counts["failures"] += 1
            path = _save(artifacts, name, data)
            if counts["failures"] <= SHOWN_FAILURES:
                _print_failure(outcome, path)
        elif outcome:
            counts["accepted"] += 1
        if counts["inputs"] >= inputs or time.monotonic() > deadline:
            finish()

    corpus = Path(tempfile.mkdtemp(prefix=f"rangeio-fuzz-{name}-"))
    seeds = target.seeds()
    for i, data in enumerate(seeds):
        (corpus / f"seed-{i}").write_bytes(data)
    for path in _extra(extra, name):
        (corpus / path.name).write_bytes(path.read_bytes())
    argv = [
        sys.argv[0],
        f"-seed={seed + 1}",
        f"-max_len={max_len(seeds)}",
        f"-timeout={HANG_SECONDS}",
        "-rss_limit_mb=2048",
        f"-max_total_time={int(seconds) + 60}",
        f"-artifact_prefix={artifacts}/{name}-libfuzzer-",
        "-print_final_stats=0",
        str(corpus),
    ]
    artifacts.mkdir(parents=True, exist_ok=True)
    atheris.Setup(argv, one_input)
    atheris.Fuzz()
    finish()  # Fuzz() returned: libFuzzer's own limit (-max_total_time) came first


# -- the command ------------------------------------------------------------------------------


def _replay(path: Path, name: str) -> int:
    from tests.fuzz_targets import TARGETS, Failure, check

    outcome = check(TARGETS[name], path.read_bytes())
    if isinstance(outcome, Failure):
        print(outcome.describe(), file=sys.stderr)
        return 1
    print(f"{name}: {'accepted' if outcome else 'refused with a typed error'}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", help="target names (default: all)")
    parser.add_argument("--inputs", type=int, default=200_000, help="inputs per target")
    parser.add_argument("--seconds", type=float, default=120.0, help="time cap per target")
    parser.add_argument("--engine", choices=("atheris", "python"), default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--artifacts",
        type=Path,
        default=Path(tempfile.gettempdir()) / "rangeio-fuzz-artifacts",
        help="where failing inputs are saved",
    )
    parser.add_argument("--replay", type=Path, help="run one saved input against TARGET")
    parser.add_argument("--corpus", type=Path, help="extra starting inputs: DIR/<target>-*")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--report", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        _child(
            args.child,
            args.inputs,
            args.seconds,
            args.seed,
            args.artifacts,
            args.report,
            args.corpus,
        )
        return 0

    from tests.fuzz_targets import TARGETS

    names = args.targets or list(TARGETS)
    unknown = [n for n in names if n not in TARGETS]
    if unknown or (args.replay and len(names) != 1):
        parser.error(f"name one or more of {', '.join(TARGETS)} (exactly one with --replay)")
    if args.replay:
        return _replay(args.replay, names[0])
    engine = args.engine
    if engine is None:
        try:
            import atheris  # noqa: F401

            engine = "atheris"
        except ImportError:
            engine = "python"
    run = _run_atheris if engine == "atheris" else _run_python

    total_failures = 0
    for name in names:
        result = run(name, args.inputs, args.seconds, args.seed, args.artifacts, args.corpus)
        total_failures += result["failures"]
        died = f", process died ({result['died']})" if "died" in result else ""
        print(
            f"{name:14} {engine:8} inputs {result['inputs']}  accepted {result['accepted']}  "
            f"failures {result['failures']}  {result['seconds']:.1f}s{died}",
            flush=True,
        )
    if total_failures:
        print(f"{total_failures} failing input(s), saved under {args.artifacts}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
