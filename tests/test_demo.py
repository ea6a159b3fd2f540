"""`make demo` runs rangeio.demo: every job in its table must check out."""

from __future__ import annotations

import pytest

from rangeio import demo


def test_demo_runs_and_every_job_checks(capsys: pytest.CaptureFixture[str]) -> None:
    demo.main()
    out = capsys.readouterr().out
    table = out.split("job")[-1].strip().splitlines()[1:]
    assert len(table) == 4
    assert all(line.rstrip().endswith("ok") for line in table), out
