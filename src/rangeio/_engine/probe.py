"""The probe's program: runs each exchange `_core/probe.py` Probe asks for, written once for both runners."""

from __future__ import annotations

from rangeio._core.options import FileOptions
from rangeio._core.probe import Probe, ProbeResult
from rangeio._engine.ops import Program, now
from rangeio._engine.remote import RemoteFile
from rangeio.errors import RangeioError


def probe(url: str, options: FileOptions, *, max_ranges: int = 2) -> Program[ProbeResult]:
    """Probe ``url``: the core decides each request and reads each answer; this only runs them
    (through RemoteFile.drive: the same sending, body reading and releasing as every read)."""
    remote = RemoteFile(url, options)
    machine = Probe(remote.url, options, max_ranges=max_ranges)
    while (exchange := machine.next_exchange()) is not None:
        try:
            yield from remote.drive(exchange, pauses=False)
        except RangeioError as exc:
            machine.on_failure(exc)  # raises when the failure ends the probe
        else:
            machine.on_result(exchange.result)
    finished = yield from now()
    return machine.facts(finished)
