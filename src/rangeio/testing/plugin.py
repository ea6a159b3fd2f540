"""A pytest plugin: the ``range_server`` fixture, a fault-injecting range server for your tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from rangeio.testing.server import FaultServer


@pytest.fixture
def range_server() -> Iterator[FaultServer]:
    """A FaultServer on 127.0.0.1 with no files yet: ``range_server.add_file("/x", data)``,
    ``range_server.url("/x")``, switch faults with ``range_server.faults = Faults(...)`` and
    inspect ``range_server.requests``. Stopped after the test.

    The server needs h11 (``pip install rangeio[testing]``); it is imported only when a test
    asks for the fixture, so the plugin costs nothing to projects that do not use it.
    """
    from rangeio.testing.server import FaultServer

    with FaultServer() as server:
        yield server
