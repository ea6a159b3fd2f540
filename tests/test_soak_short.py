"""A 20-second soak (benchmarks/soak.py): random faults under mixed reads and downloads give
right bytes or typed errors, never corrupt results, untyped exceptions or hangs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Seconds each: a `make test` runs them, `pytest -m "not slow"` skips them.
pytestmark = pytest.mark.slow


@pytest.mark.timeout(150)
def test_short_soak_is_clean() -> None:
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "soak.py"),
            "--minutes",
            "0.33",
            "--workers",
            "3",
            "--seed",
            "7",
        ],
        capture_output=True,
        text=True,
        timeout=140,
    )
    report = run.stdout + run.stderr
    assert run.returncode == 0, report
    assert "corrupt results: 0" in report
    assert "untyped exceptions: 0" in report
    # It did real work: many operations, and faults were hit.
    operations = int(report.split(" operations,")[0].rsplit(" ", 1)[-1])
    assert operations > 50, report
    assert "faults hit" in report
