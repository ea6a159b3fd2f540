"""rangeio.aio.formats.parquet: a remote Parquet file on AsyncHttpFile, running
rangeio.formats.parquet's programs (pyarrow parses the fetched bytes)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rangeio._async.formats._runner import AsyncSourceHolder, Opening
from rangeio.formats.parquet import ParquetFacts, _pyarrow

__all__ = ["AsyncParquetPlan", "open"]


class AsyncParquetPlan(ParquetFacts, AsyncSourceHolder):
    """A remote Parquet file's metadata and column chunk ranges, read through an
    AsyncHttpFile: ``rangeio.formats.parquet.ParquetPlan``'s requests (the same programs),
    awaited. Made by ``open()``."""

    @classmethod
    async def _opened(cls, source: Any, client: Any, options: dict[str, Any]) -> AsyncParquetPlan:
        face = cls.__new__(cls)
        face._pa, face._pq = _pyarrow()
        await face._attach(source, client, options)
        await face._load(face._read_footer(face._size))
        return face

    async def read_columns(self, row_group: int, columns: Sequence[str] | None = None) -> Any:
        """One row group's columns as a ``pyarrow.Table`` (see ParquetPlan.read_columns)."""
        return await self._run(self._read_columns(row_group, columns))


def open(  # noqa: A001 - the module's entry point, as rangeio.formats.parquet.open
    source: Any, client: Any = None, **options: Any
) -> Opening[AsyncParquetPlan]:
    """Open a remote Parquet file: ``async with rangeio.aio.formats.parquet.open(url) as p``."""
    return Opening(lambda: AsyncParquetPlan._opened(source, client, options))
