"""rangeio.aio.formats.png: a remote PNG on AsyncHttpFile, running rangeio.formats.png's programs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from rangeio._async.formats._runner import AsyncSourceHolder, Opening
from rangeio.formats._common import prefetched_head
from rangeio.formats.png import OPEN_OPTIONS, PngChunk, PngFacts, PngHeader, PngInfo, walk

__all__ = ["AsyncPngImage", "PngChunk", "PngHeader", "PngInfo", "open", "png_chunks"]


class AsyncPngImage(PngFacts, AsyncSourceHolder):
    """A remote PNG read through an AsyncHttpFile: ``rangeio.formats.png.PngImage``'s chunks
    (``info``, walked at open) and rows (the same programs), awaited. Made by ``open()``."""

    @classmethod
    async def _opened(cls, source: Any, client: Any, options: dict[str, Any]) -> AsyncPngImage:
        face = cls.__new__(cls)
        await face._attach(source, client, options, **OPEN_OPTIONS)
        face.info = await face._load(walk(face._size, prefetched_head(face._source, face._owned)))
        return face

    async def rows(self, stop: int | None = None) -> AsyncIterator[bytes]:
        """Rows ``0 .. stop`` (all by default), each decoded when reached (see PngImage.rows)."""
        decoder = self._rows(stop)
        try:
            while (row := await self._run(decoder.next_row())) is not None:
                yield row
        finally:
            await self._run(decoder.close())


def open(  # noqa: A001 - the module's entry point, as rangeio.formats.png.open
    source: Any, client: Any = None, **options: Any
) -> Opening[AsyncPngImage]:
    """Open a remote PNG: ``async with rangeio.aio.formats.png.open(url) as image``."""
    return Opening(lambda: AsyncPngImage._opened(source, client, options))


async def png_chunks(source: Any, client: Any = None, **options: Any) -> PngInfo:
    """A remote PNG's header and chunks (see rangeio.formats.png.png_chunks)."""
    async with open(source, client, **options) as image:
        return image.info
