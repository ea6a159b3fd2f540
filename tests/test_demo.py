"""`make demo` runs rangeio.demo: every job in its table must check out, and a job whose check
fails must make the demo fail."""

from __future__ import annotations

import pytest

from rangeio import demo
from rangeio.testing import Faults

pytestmark = pytest.mark.slow


def table(out: str) -> list[str]:
    return out.split("job")[-1].strip().splitlines()[1:]


def test_demo_runs_and_every_job_checks(capsys: pytest.CaptureFixture[str]) -> None:
    assert demo.main() == 0
    out = capsys.readouterr().out
    rows = table(out)
    assert len(rows) == 4
    assert all(line.rstrip().endswith("ok") for line in rows), out


def test_the_demo_fails_when_its_download_was_never_cut(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A server that never cuts: the "cut then resumed" job must say it proved nothing.
    monkeypatch.setattr(demo, "Faults", lambda **_: Faults())
    assert demo.main() == 1
    captured = capsys.readouterr()
    [row] = [line for line in table(captured.out) if line.startswith("download")]
    assert "FAIL" in row and "first attempt cut" in row and "two requests" in row
    assert "demo FAILED" in captured.err
    assert [line for line in table(captured.out) if line.rstrip().endswith("ok")]
