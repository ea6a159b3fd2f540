"""conda_info: a remote .conda package's metadata and info files, without its payload;
conda_payload: the payload tarball's listing, streamed once and never held."""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field
from typing import Any

from rangeio.formats._common import (
    BytesSource,
    FormatError,
    ForwardSource,
    MiB,
    RangeSource,
    decompression_errors,
    inflate_all,
    zstd_inflater,
    zstd_reader,
)
from rangeio.formats.tar import TarIndex, TarMember
from rangeio.formats.zip import ZipStream

__all__ = ["CondaInfo", "conda_info", "conda_payload"]

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


def conda_info(source: str | RangeSource, client: Any = None, **options: Any) -> CondaInfo:
    """Read a .conda package's metadata.json and its ``info-*.tar.zst`` (decompressed with
    zstd: ``pip install 'rangeio[conda]'``), never the ``pkg-*.tar.zst`` payload.

    Costs the zip's open and directory (one request when the package's last 1 MiB holds the
    directory) and one ``read_ranges`` for the two members (the info tarball is stored last by
    conda's tools, so it usually comes with the open's prefetch).
    """
    zstd_inflater("conda")  # fail before any request when zstd is missing
    with ZipStream(source, client, **options) as archive:
        names = archive.namelist()
        if "metadata.json" not in names:
            raise FormatError("not a .conda package: it has no metadata.json")
        infos = _one_tarball(names, "info")
        raw_metadata, compressed = archive.read_many(["metadata.json", infos[0]])
    try:
        metadata = json.loads(raw_metadata)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FormatError(f"conda metadata.json is not valid JSON: {exc}") from exc
    if not isinstance(metadata, dict):
        raise FormatError("conda metadata.json is not a JSON object")
    tar = inflate_all(zstd_inflater("conda"), compressed, MAX_INFO_BYTES, infos[0])
    index = TarIndex(BytesSource(tar))
    members = index.members()
    regular = [m for m in members if m.is_file and not m.sparse]
    files = dict(zip((m.name for m in regular), index.read_many(regular)))
    return CondaInfo(metadata, infos[0], members, files)


def _one_tarball(names: list[str], kind: str) -> list[str]:
    """The package's one ``{kind}-*.tar.zst`` (at the top level), as a one-item list."""
    found = [n for n in names if fnmatch.fnmatchcase(n, f"{kind}-*.tar.zst") and "/" not in n]
    if len(found) != 1:
        raise FormatError(
            f"not a .conda package: expected one {kind}-*.tar.zst, found {len(found)}"
        )
    return found


def conda_payload(source: str | RangeSource, client: Any = None, **options: Any) -> list[TarMember]:
    """The members of a .conda package's ``pkg-*.tar.zst`` payload (``pip install
    'rangeio[conda]'``): names, sizes, types, modes, links. A zstd stream cannot be entered in
    the middle, so this costs the payload's compressed bytes, fetched once as one sequential
    read (rangeio streams it) and decompressed on the way, with only headers kept: memory
    stays bounded whatever the payload's size (headers, a read-ahead window, zstd's window). The stream is read to its end, so the
    member's CRC-32 and the zstd frames are checked. A member's ``data_range`` is its
    position in the decompressed tarball.
    """
    zstd_inflater("conda")  # fail before any request when zstd is missing
    with ZipStream(source, client, **options) as archive:
        (name,) = _one_tarball(archive.namelist(), "pkg")
        with archive.open(name) as compressed:
            reader = zstd_reader(compressed, "conda")
            tar = ForwardSource(reader.read, name)
            try:
                members = TarIndex(tar).members()
                tar.drain()
            except decompression_errors() as exc:
                raise FormatError(f"{name}: corrupt compressed data ({exc})") from exc
            finally:
                reader.close()
    return members
