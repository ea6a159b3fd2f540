"""rangeio.aio.formats.conda: a remote .conda on AsyncHttpFile, running rangeio.formats.conda's
programs."""

from __future__ import annotations

from typing import Any

from rangeio._async.formats._runner import Opening
from rangeio._async.formats.zip import AsyncZipStream
from rangeio.formats._inflate import zstd_inflater
from rangeio.formats.conda import CondaFacts, CondaInfo
from rangeio.formats.tar import TarMember

__all__ = ["AsyncCondaPackage", "CondaInfo", "conda_info", "conda_payload", "open"]


class AsyncCondaPackage(CondaFacts, AsyncZipStream):
    """A remote .conda package read through an AsyncHttpFile: an AsyncZipStream with
    ``await info()`` and ``await payload()`` (see rangeio.formats.conda.CondaPackage)."""

    @classmethod
    async def _opened(cls, source: Any, client: Any, options: dict[str, Any]) -> AsyncCondaPackage:
        zstd_inflater("conda")  # fail before any request when zstd is missing
        face = await super()._opened(source, client, options)
        assert isinstance(face, AsyncCondaPackage)
        return face

    async def info(self) -> CondaInfo:
        return await self._run(self._info())

    async def payload(self) -> list[TarMember]:
        return await self._run(self._payload())


def open(  # noqa: A001 - the module's entry point, as rangeio.formats.conda.open
    source: Any, client: Any = None, **options: Any
) -> Opening[AsyncCondaPackage]:
    """Open a remote .conda: ``async with rangeio.aio.formats.conda.open(url) as package``."""
    return Opening(lambda: AsyncCondaPackage._opened(source, client, options))


async def conda_info(source: Any, client: Any = None, **options: Any) -> CondaInfo:
    """metadata.json and the info tarball, never the payload (see rangeio.formats.conda)."""
    async with open(source, client, **options) as package:
        return await package.info()


async def conda_payload(source: Any, client: Any = None, **options: Any) -> list[TarMember]:
    """The payload tarball's members, streamed once (see rangeio.formats.conda)."""
    async with open(source, client, **options) as package:
        return await package.payload()
