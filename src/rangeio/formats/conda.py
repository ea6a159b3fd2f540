"""conda_info: a remote .conda package's metadata and info files, without its payload;
conda_payload: the payload tarball's listing, streamed once and never held.

Both are programs over the package's zip directory (``_program.py``), run by the sync face
here (CondaPackage, ``open``) and by ``rangeio.aio.formats.conda``.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field
from typing import Any

from rangeio.formats._common import FormatError, MiB, Source
from rangeio.formats._inflate import InflateStream, inflate_all, zstd_inflater
from rangeio.formats._program import Forward, Program, in_memory, through
from rangeio.formats.tar import TarFacts, TarMember, walk
from rangeio.formats.zip import ZipIndex, ZipStream

__all__ = ["CondaInfo", "CondaPackage", "conda_info", "conda_payload", "open"]

# The info tarball is decompressed in memory; real ones are kilobytes, so a bigger one is
# refused as a decompression bomb rather than held.
MAX_INFO_BYTES = 256 * MiB


@dataclass(frozen=True)
class CondaInfo:
    """What a .conda holds besides its payload: ``metadata`` is metadata.json parsed,
    ``members`` the info tarball's members and ``files`` its regular files' contents."""

    metadata: dict[str, Any]
    info_name: str
    members: list[TarMember] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)

    def json(self, name: str) -> Any:
        """An info file parsed as JSON, e.g. ``info.json("info/index.json")``."""
        try:
            return json.loads(self.files[name])
        except (ValueError, UnicodeDecodeError) as exc:
            raise FormatError(f"conda info file {name!r} is not valid JSON: {exc}") from exc

    @property
    def index(self) -> dict[str, Any]:
        """info/index.json: name, version, build, depends, ..."""
        value = self.json("info/index.json")
        if not isinstance(value, dict):
            raise FormatError("conda info/index.json is not a JSON object")
        return value


def read_info(index: ZipIndex) -> Program[CondaInfo]:
    """The program that reads a .conda's metadata.json and its ``info-*.tar.zst``: one
    ``read_ranges`` for the two members, then decompressed and listed in memory."""
    names = [m.name for m in index.members]
    if "metadata.json" not in names:
        raise FormatError("not a .conda package: it has no metadata.json")
    infos = _one_tarball(names, "info")
    raw_metadata, compressed = yield from index.read_many(["metadata.json", infos[0]])
    try:
        metadata = json.loads(raw_metadata)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FormatError(f"conda metadata.json is not valid JSON: {exc}") from exc
    if not isinstance(metadata, dict):
        raise FormatError("conda metadata.json is not a JSON object")
    tar = inflate_all(zstd_inflater("conda"), compressed, MAX_INFO_BYTES, infos[0])
    listing = TarFacts()
    listing._found(in_memory(walk(len(tar)), tar))
    members = listing.members()
    regular = [m for m in members if m.is_file and not m.sparse]
    files = dict(zip((m.name for m in regular), in_memory(listing._read_many(regular), tar)))
    return CondaInfo(metadata, infos[0], members, files)


def read_payload(index: ZipIndex) -> Program[list[TarMember]]:
    """The program that lists a .conda's ``pkg-*.tar.zst`` payload: the member streamed once
    (its CRC-32 checked at its end), zstd-decompressed on the way, its tar headers walked
    forward (``Forward``) and only they kept, the rest read to the end (zstd's checks)."""
    (name,) = _one_tarball([m.name for m in index.members], "pkg")
    decoder = yield from index.open_member(name)
    try:
        stream = InflateStream(decoder.read_some, lambda: zstd_inflater("conda"), name)
        tar = Forward(stream.read, name)
        members = yield from through(walk(Forward.UNKNOWN, forward=True), tar)
        yield from tar.drain()
    finally:
        yield from decoder.close()
    return members


class CondaFacts:
    """What CondaPackage and rangeio.aio's AsyncCondaPackage share: the programs, on the
    package's zip directory."""

    _index: ZipIndex

    def _info(self) -> Program[CondaInfo]:
        return read_info(self._index)

    def _payload(self) -> Program[list[TarMember]]:
        return read_payload(self._index)


class CondaPackage(CondaFacts, ZipStream):
    """A remote .conda package: a ZipStream (its directory read at open) with ``info()`` (see
    ``conda_info``) and ``payload()`` (see ``conda_payload``). Needs zstd (``pip install
    'rangeio[conda]'``): checked before any request."""

    def __init__(self, source: Source, client: Any = None, **options: Any) -> None:
        zstd_inflater("conda")  # fail before any request when zstd is missing
        super().__init__(source, client, **options)

    def info(self) -> CondaInfo:
        return self._run(self._info())

    def payload(self) -> list[TarMember]:
        return self._run(self._payload())


def open(  # noqa: A001 - the module's entry point, as zip's
    source: Source, client: Any = None, **options: Any
) -> CondaPackage:
    """Open a remote .conda package: see CondaPackage."""
    return CondaPackage(source, client, **options)


def conda_info(source: Source, client: Any = None, **options: Any) -> CondaInfo:
    """Read a .conda package's metadata.json and its ``info-*.tar.zst`` (decompressed with
    zstd: ``pip install 'rangeio[conda]'``), never the ``pkg-*.tar.zst`` payload.

    Costs the zip's open and directory (one request when the package's last 1 MiB holds the
    directory) and one ``read_ranges`` for the two members (the info tarball is stored last by
    conda's tools, so it usually comes with the open's prefetch).
    """
    with CondaPackage(source, client, **options) as package:
        return package.info()


def _one_tarball(names: list[str], kind: str) -> list[str]:
    """The package's one ``{kind}-*.tar.zst`` (at the top level), as a one-item list."""
    found = [n for n in names if fnmatch.fnmatchcase(n, f"{kind}-*.tar.zst") and "/" not in n]
    if len(found) != 1:
        raise FormatError(
            f"not a .conda package: expected one {kind}-*.tar.zst, found {len(found)}"
        )
    return found


def conda_payload(source: Source, client: Any = None, **options: Any) -> list[TarMember]:
    """The members of a .conda package's ``pkg-*.tar.zst`` payload (``pip install
    'rangeio[conda]'``): names, sizes, types, modes, links. A zstd stream cannot be entered in
    the middle, so this costs the payload's compressed bytes, fetched once as one sequential
    read (rangeio streams it) and decompressed on the way, with only headers kept: memory
    stays bounded whatever the payload's size (headers, a read-ahead window, zstd's window).
    The stream is read to its end, so the member's CRC-32 and the zstd frames are checked. A
    member's ``data_range`` is its position in the decompressed tarball.
    """
    with CondaPackage(source, client, **options) as package:
        return package.payload()
