"""The short fuzz run: every parser fed seeded mutations of valid inputs raises only typed errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rangeio.errors import HeaderParseError
from tests.fuzz_targets import REGRESSIONS, TARGETS, Failure, Target, check, fuzz

# Inputs per target, about 40 seconds in all on one core; the time cap only keeps a slow
# machine from running long (the inputs are the same, fewer of them are run).
SHORT_RUN = {
    "range": 100_000,
    "content_range": 100_000,
    "multipart": 60_000,
    "control": 80_000,
    "zip": 30_000,
    "tar": 30_000,
}
SECONDS_CAP = 20.0
REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_seeds_are_accepted(name: str) -> None:
    # Mutations start from the seeds: a seed the parser refuses would keep the run shallow.
    target = TARGETS[name]
    assert target.seeds()
    for seed in target.seeds():
        assert check(target, seed) is True, seed[:200]


@pytest.mark.parametrize(
    ("name", "data"), [(name, data) for name, examples in REGRESSIONS.items() for data in examples]
)
def test_regressions(name: str, data: bytes) -> None:
    outcome = check(TARGETS[name], data)
    assert not isinstance(outcome, Failure), outcome.describe()


def test_harness_reports_untyped_errors() -> None:
    def target(data: bytes) -> bool:
        if data == b"typed":
            raise HeaderParseError("refused, as parsers do")
        return [True][len(data)]  # IndexError for anything longer than 0 bytes

    probe = Target("probe", target, lambda: [b""])
    assert check(probe, b"") is True
    assert check(probe, b"typed") is False
    failure = check(probe, b"xx")
    assert isinstance(failure, Failure) and isinstance(failure.error, IndexError)
    report = fuzz(probe, count=50, seed=1)
    assert report.inputs == 50 and report.failures


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_short_run(name: str) -> None:
    report = fuzz(TARGETS[name], count=SHORT_RUN[name], seed=7, seconds=SECONDS_CAP)
    assert not report.failures, "\n\n".join(f.describe() for f in report.failures[:3])
    # Not a run of early rejects only: a good share of the mutated inputs got past the parser.
    assert report.accepted > report.inputs // 50


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS is Linux's")
def test_lzma_dictionary_is_bounded() -> None:
    # Overcommit hides a 4 GiB allocation; under a 1 GiB address-space limit it raises
    # MemoryError, unless the dictionary is bounded by what the member can decode to.
    code = (
        "import resource, sys\n"
        "from tests.fuzz_targets import TARGETS, check, lzma_zip\n"
        "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
        "outcome = check(TARGETS['zip'], lzma_zip(dict_size=0xFFFFFFFF))\n"
        "sys.exit(0 if outcome is True else str(outcome.describe()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
