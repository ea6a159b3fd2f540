"""Test helpers: a loopback HTTP range server that injects faults on demand (needs h11)."""

from __future__ import annotations

from rangeio.testing.server import Faults, FaultServer, RecordedRequest

__all__ = ["FaultServer", "Faults", "RecordedRequest"]
