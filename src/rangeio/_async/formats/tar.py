"""rangeio.aio.formats.tar: a remote tar on AsyncHttpFile, running rangeio.formats.tar's programs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rangeio._async.formats._runner import AsyncSourceHolder, Opening
from rangeio.formats._common import prefetched_head
from rangeio.formats.tar import OPEN_OPTIONS, TarFacts, TarMember, walk

__all__ = ["AsyncTarIndex", "TarMember", "open"]


class AsyncTarIndex(TarFacts, AsyncSourceHolder):
    """A remote uncompressed tar's members, read through an AsyncHttpFile:
    ``rangeio.formats.tar.TarIndex``'s walk and requests (the same programs), awaited. Made by
    ``open()``."""

    @classmethod
    async def _opened(cls, source: Any, client: Any, options: dict[str, Any]) -> AsyncTarIndex:
        face = cls.__new__(cls)
        await face._attach(source, client, options, **OPEN_OPTIONS)
        head = prefetched_head(face._source, face._owned)
        face._found(await face._load(walk(face._size, head)))
        return face

    async def read(self, name: str | TarMember) -> bytes:
        """A member's content: one range request (none if the bytes are cached)."""
        return (await self.read_many([name]))[0]

    async def read_many(self, names: Iterable[str | TarMember]) -> list[bytes]:
        """Several members' contents with one ``read_ranges`` call."""
        return await self._run(self._read_many(names))


def open(  # noqa: A001 - the module's entry point, as rangeio.formats.tar.open
    source: Any, client: Any = None, **options: Any
) -> Opening[AsyncTarIndex]:
    """Open a remote tar: ``async with rangeio.aio.formats.tar.open(url) as t``."""
    return Opening(lambda: AsyncTarIndex._opened(source, client, options))
