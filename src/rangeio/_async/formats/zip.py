"""rangeio.aio.formats.zip: a remote zip on AsyncHttpFile, running rangeio.formats.zip's programs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rangeio._async.formats._runner import AsyncRunner, AsyncSourceHolder, Opening
from rangeio.formats.zip import (
    OPEN_OPTIONS,
    MemberDecoder,
    Zip64EndRecord,
    ZipEndRecord,
    ZipFacts,
    ZipMember,
    read_index,
)

__all__ = ["AsyncZipStream", "Zip64EndRecord", "ZipEndRecord", "ZipMember", "open"]


class AsyncZipStream(ZipFacts, AsyncSourceHolder):
    """A remote zip archive read through an AsyncHttpFile: ``rangeio.formats.zip.ZipStream``'s
    members and requests (the same programs), its reads awaited. Made by ``open()``."""

    @classmethod
    async def _opened(cls, source: Any, client: Any, options: dict[str, Any]) -> AsyncZipStream:
        face = cls.__new__(cls)
        await face._attach(source, client, options, **OPEN_OPTIONS)
        face._index = await face._load(read_index(face._size))
        return face

    async def file_range(self, name: str | ZipMember) -> tuple[int, int]:
        """Where a member's (compressed) data lies in the file (see ZipStream.file_range)."""
        return (await self.file_ranges([name]))[0]

    async def file_ranges(self, names: Iterable[str | ZipMember]) -> list[tuple[int, int]]:
        """Where each member's data lies in the file (see ZipStream.file_ranges)."""
        return await self._run(self._index.file_ranges(names))

    async def read(self, name: str | ZipMember) -> bytes:
        """A member's content, decompressed and checked against its size and CRC-32."""
        return (await self.read_many([name]))[0]

    async def read_many(self, names: Iterable[str | ZipMember]) -> list[bytes]:
        """Several members' contents with one ``read_ranges`` call (see ZipStream.read_many)."""
        return await self._run(self._index.read_many(names))

    async def open(self, name: str | ZipMember) -> AsyncMemberReader:
        """A streaming reader over a member's decompressed content (see ZipStream.open)."""
        return AsyncMemberReader(await self._run(self._index.open_member(name)), self._runner)


class AsyncMemberReader:
    """A member's decompressed bytes, read in order: ``await r.read(n)`` (all that is left with
    -1), checked against the size and CRC-32 at the end; ``async with`` closes it."""

    def __init__(self, decoder: MemberDecoder, runner: AsyncRunner) -> None:
        self._decoder = decoder
        self._runner = runner
        self.closed = False

    async def read(self, n: int = -1) -> bytes:
        if self.closed:
            raise ValueError("I/O operation on closed file.")
        return await self._runner.run(self._decoder.read(n))

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            await self._runner.run(self._decoder.close())

    async def __aenter__(self) -> AsyncMemberReader:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def open(  # noqa: A001 - the module's entry point, as rangeio.formats.zip.open
    source: Any, client: Any = None, **options: Any
) -> Opening[AsyncZipStream]:
    """Open a remote zip: ``async with rangeio.aio.formats.zip.open(url) as z``. ``source`` is
    a URL (opened as ``rangeio.aio.open`` would, with ``client`` and ``options``) or an open
    AsyncHttpFile (left open)."""
    return Opening(lambda: AsyncZipStream._opened(source, client, options))
