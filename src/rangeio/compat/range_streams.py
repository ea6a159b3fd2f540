"""range-streams' ``RangeStream`` on rangeio: ``from rangeio.compat.range_streams import RangeStream``.

The values of ``ranges`` are rangeio's ``RangeResponse`` (``read()`` gives bytes); a
python-ranges ``Range`` or a ``(start, stop)`` tuple names a range, as in range-streams.
"""

from __future__ import annotations

from typing import Any

from rangeio._core.ranges import ByteRange
from rangeio._engine.streams import RangeOverlapError
from rangeio._sync.streams import RangeResponse
from rangeio._sync.streams import RangeStream as _RangeStream

# range-streams' example URLs (its README imports them). rangeio's tests point them at local
# servers.
_EXAMPLE_DATA_URL = "https://github.com/lmmx/range-streams/raw/master/data/"
_EXAMPLE_URL = f"{_EXAMPLE_DATA_URL}example_text_file.txt"
_EXAMPLE_ZIP_URL = f"{_EXAMPLE_DATA_URL}example_text_file.txt.zip"
_EXAMPLE_TAR_URL = f"{_EXAMPLE_DATA_URL}data.tar"
_EXAMPLE_PNG_URL = f"{_EXAMPLE_DATA_URL}red_square_rgba_semitransparent.png"
example_url = _EXAMPLE_URL


class RangeStream(_RangeStream):
    """range-streams' signature (``pruning_level`` and ``single_request`` may be positional;
    ``chunk_size`` is accepted and unused: rangeio reads each body as its client delivers it).
    Everything else is ``rangeio.RangeStream``."""

    def __init__(
        self,
        url: str,
        client: Any = None,
        byte_range: Any = (0, 0),
        pruning_level: int = 0,
        single_request: bool = False,
        chunk_size: int | None = None,
        **options: Any,
    ) -> None:
        super().__init__(
            url,
            client,
            byte_range,
            pruning_level=pruning_level,
            single_request=single_request,
            **options,
        )

    def add(self, byte_range: Any = (0, 0), activate: bool = True, name: str = "") -> RangeResponse:
        """range-streams' argument order (``activate`` and ``name`` may be positional)."""
        return super().add(byte_range, name=name, activate=activate)

    # range-streams' other names for the same members.
    handle_byte_range = add

    @property
    def _ranges(self) -> Any:
        return self.ranges

    @property
    def total_range(self) -> ByteRange:
        return ByteRange(0, self.total_bytes)


__all__ = ["RangeOverlapError", "RangeResponse", "RangeStream", "example_url"]
