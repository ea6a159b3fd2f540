"""conda_info: a remote .conda package's metadata and info files, without its payload."""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field
from typing import Any

from rangeio.formats._common import (
    BytesSource,
    FormatError,
    MiB,
    RangeSource,
    inflate_all,
    zstd_inflater,
)
from rangeio.formats.tar import TarIndex, TarMember
from rangeio.formats.zip import ZipStream

__all__ = ["CondaInfo", "conda_info"]

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
        infos = [n for n in names if fnmatch.fnmatchcase(n, "info-*.tar.zst") and "/" not in n]
        if len(infos) != 1:
            raise FormatError(
                f"not a .conda package: expected one info-*.tar.zst, found {len(infos)}"
            )
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
