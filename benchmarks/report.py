"""Plain-text tables and JSON for the scenarios."""

from __future__ import annotations

from typing import Any

from scenarios import Scenario

COLUMNS = (
    ("library", "<", 36),
    ("req", ">", 5),
    ("RTs", ">", 5),
    ("conns", ">", 5),
    ("MiB", ">", 8),
    ("wall s", ">", 8),
    ("target", "<", 30),
    ("result", "<", 8),
)


def _line(values: list[str]) -> str:
    cells = [f"{v:{align}{width}}" for v, (_, align, width) in zip(values, COLUMNS)]
    return "  ".join(cells).rstrip()


def format_scenario(scenario: Scenario) -> str:
    out = [f"{scenario.number}. {scenario.title}"]
    out.append(_line([name for name, _, _ in COLUMNS]))
    out.append(_line(["-" * width for _, _, width in COLUMNS]))
    for row in scenario.rows:
        out.append(
            _line(
                [
                    row.library,
                    str(row.requests),
                    str(row.round_trips),
                    str(row.connections),
                    f"{row.mib:.3f}",
                    f"{row.wall_s:.3f}",
                    row.target,
                    row.status,
                ]
            )
        )
    for row in scenario.rows:
        if row.notes:
            out.append(f"    {row.library}: {'; '.join(row.notes)}")
        if row.error:
            out.append(f"    {row.library}: {row.error}")
    for note in scenario.notes:
        out.append(f"    ({note})")
    return "\n".join(out) + "\n"


def print_scenario(scenario: Scenario) -> None:
    print(format_scenario(scenario), flush=True)


def scenario_json(scenario: Scenario) -> dict[str, Any]:
    return {
        "key": scenario.key,
        "number": scenario.number,
        "title": scenario.title,
        "notes": scenario.notes,
        "rows": [row.as_json() for row in scenario.rows],
        **scenario.extra,
    }
