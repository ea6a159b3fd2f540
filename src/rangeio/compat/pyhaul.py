"""pyhaul's ``haul`` / ``haul_async`` on rangeio: ``from rangeio.compat.pyhaul import haul``.

One call is one request, as in pyhaul and ``rangeio.haul``. The exception names are aliases of
rangeio's classes, so ``except PartialHaulError`` catches ``rangeio.PartialDownloadError``.
The result is rangeio's ``HaulResult`` (``sha256``, ``etag``, ``elapsed``, ...). The one thing
this module adds is pyhaul's ``HaulState`` bag, filled from the result or the error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rangeio._core.control import ControlRecordError as ControlFileError
from rangeio._engine.download import HaulResult as CompleteHaul
from rangeio.errors import HTTPStatusError as UnexpectedStatusError
from rangeio.errors import PartialDownloadError as PartialHaulError
from rangeio.errors import ProtocolError as ContentRangeError
from rangeio.errors import ProtocolError as ServerMisconfiguredError
from rangeio.errors import RangeioError as HaulError
from rangeio.errors import UnsafePathError as DestinationError


@dataclass
class HaulState:
    """pyhaul's progress bag, updated in place by ``haul(..., state=)``: after a success, or
    after a ``PartialHaulError`` (``valid_length`` bytes are durable, of ``reported_length``)."""

    is_complete: bool = False
    bytes_read: int = 0
    valid_length: int = 0
    reported_length: int | None = None


ProgressHook = Callable[[HaulState], Any]


def _options(state: HaulState, headers: Any, on_progress: ProgressHook | None) -> dict[str, Any]:
    """rangeio.haul's keyword arguments for pyhaul's ``headers`` and ``on_progress``."""
    options: dict[str, Any] = {"headers": headers}
    if on_progress is not None:

        def report(done: int, total: int | None) -> None:
            state.valid_length, state.reported_length = done, total
            on_progress(state)

        options["on_progress"] = report
    return options


def _finished(state: HaulState, result: CompleteHaul) -> CompleteHaul:
    state.is_complete = True
    state.bytes_read += result.bytes_transferred
    state.valid_length = state.reported_length = result.size
    return result


def _stopped(state: HaulState, error: PartialHaulError) -> None:
    state.valid_length, state.reported_length = error.bytes_done, error.total


def haul(
    url: str,
    client: Any,
    *,
    dest: str | Path,
    headers: Mapping[str, str] | None = None,
    state: HaulState | None = None,
    chunk_size: int | None = None,
    flush_every: int | None = None,
    on_progress: ProgressHook | None = None,
) -> CompleteHaul:
    """pyhaul's signature over ``rangeio.haul``; ``chunk_size`` and ``flush_every`` are accepted
    and unused (rangeio checkpoints by ``DownloadPolicy``)."""
    import rangeio

    state = HaulState() if state is None else state
    try:
        result = rangeio.haul(url, dest, client=client, **_options(state, headers, on_progress))
    except PartialHaulError as error:
        _stopped(state, error)
        raise
    return _finished(state, result)


async def haul_async(
    url: str,
    client: Any,
    *,
    dest: str | Path,
    headers: Mapping[str, str] | None = None,
    state: HaulState | None = None,
    chunk_size: int | None = None,
    flush_every: int | None = None,
    on_progress: ProgressHook | None = None,
) -> CompleteHaul:
    """pyhaul's ``haul_async`` over ``rangeio.aio.haul``."""
    import rangeio.aio

    state = HaulState() if state is None else state
    try:
        result = await rangeio.aio.haul(
            url, dest, client=client, **_options(state, headers, on_progress)
        )
    except PartialHaulError as error:
        _stopped(state, error)
        raise
    return _finished(state, result)


__all__ = [
    "CompleteHaul",
    "ContentRangeError",
    "ControlFileError",
    "DestinationError",
    "HaulError",
    "HaulState",
    "PartialHaulError",
    "ServerMisconfiguredError",
    "UnexpectedStatusError",
    "haul",
    "haul_async",
]
