"""The I/O-free members the sync and async shells share, written once: files, streams, ranges."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from rangeio._core.ranges import ByteRange
from rangeio._core.stats import Stats

if TYPE_CHECKING:  # a file alone must not import the stream machinery
    from rangeio._engine.remote import RemoteFile
    from rangeio._engine.streams import StreamRange


class FileFacts:
    """``name``, ``mode``, ``size`` and ``etag`` of a remote file, for HttpFile and AsyncHttpFile
    alike. Each shell supplies ``url`` and ``_opened_remote()`` (its RemoteFile once the opening
    request was made; a lazy file not opened yet raises there, each shell saying how to open)."""

    __slots__ = ()

    @property
    def url(self) -> str:
        raise NotImplementedError

    def _opened_remote(self) -> RemoteFile:
        raise NotImplementedError

    @property
    def name(self) -> str:
        """The URL, as io's ``name``: what the file was opened from."""
        return self.url

    @property
    def mode(self) -> str:
        """Always ``"rb"``: read-only binary, the only mode rangeio opens."""
        return "rb"

    @property
    def size(self) -> int:
        return self._opened_remote().size

    @property
    def etag(self) -> str | None:
        """The ETag pinned at open (as the server sent it), or None."""
        identity = self._opened_remote().identity
        return identity.etag.header_value() if identity and identity.etag else None


R = TypeVar("R")  # the shell's response face: RangeResponse or rangeio.aio.RangeResponse


class StreamFacts(Generic[R]):
    """The I/O-free members of RangeStream and rangeio.aio.RangeStream: the ranges, which is
    active, and the active one's position. Each shell supplies ``_set`` (the StreamSet) and
    ``_faces`` (each StreamRange's response face), and does its own I/O (add, read, close)."""

    __slots__ = ()
    _set: Any
    _faces: Any

    @property
    def total_bytes(self) -> int:
        return int(self._set.remote.size)

    @property
    def stats(self) -> Stats:
        stats: Stats = self._set.remote.stats
        return stats

    @property
    def single_request(self) -> bool:
        return self._set.single is not None

    @property
    def pruning_level(self) -> int:
        """0 replant, 1 burn, 2 strict; may be changed at any time (ValueError if invalid)."""
        return int(self._set.pruning_level)

    @pruning_level.setter
    def pruning_level(self, value: int) -> None:
        self._set.pruning_level = value

    @property
    def ranges(self) -> Mapping[ByteRange, R]:
        """Each range added (and not pruned), in the order added, to its response."""
        ranges: Mapping[ByteRange, R] = self._faces
        return ranges

    @property
    def open_responses(self) -> int:
        return int(self._set.open_responses)

    @property
    def active(self) -> R:
        if self._set.active is None:
            raise ValueError("no active range: add one, or activate one by name")
        face: R = self._faces.face(self._set.active)
        return face

    def activate(self, name: str) -> R:
        self._set.active = self._set.find(name)
        return self.active

    def seek(self, offset: int, whence: int = 0) -> int:
        return int(self.active.seek(offset, whence))  # type: ignore[attr-defined]

    def tell(self) -> int:
        return int(self.active.tell())  # type: ignore[attr-defined]


class ResponseFacts:
    """The I/O-free members of RangeResponse and rangeio.aio.RangeResponse (over ``_range``, a
    StreamRange): which range, its name, and the position within it."""

    __slots__ = ()
    _range: StreamRange

    @property
    def range(self) -> ByteRange:
        return self._range.range

    @property
    def name(self) -> str:
        return self._range.name

    @property
    def closed(self) -> bool:
        return self._range.closed

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._range.seek(offset, whence)

    def tell(self) -> int:
        return self._range.tell()

    def is_consumed(self) -> bool:
        return self._range.is_consumed()
