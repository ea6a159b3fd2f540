"""The decompressors the formats use, behind one bounded interface (pure: bytes in, bytes out)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Protocol

from rangeio.formats._common import FormatError, MiB
from rangeio.formats._program import Program


class Inflater(Protocol):
    """An incremental decompressor with bounded output, as bz2/lzma decompressors are:
    ``decompress(data, max_length)`` returns at most ``max_length`` bytes and keeps the
    rest of its input for the next call (``needs_input`` is False while it has some)."""

    @property
    def needs_input(self) -> bool: ...

    @property
    def eof(self) -> bool: ...

    def decompress(self, data: bytes, max_length: int) -> bytes: ...


class StoredInflater:
    """Method 0: the bytes as they are, still bounded per call."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def needs_input(self) -> bool:
        return not self._buffer

    @property
    def eof(self) -> bool:
        return False

    def decompress(self, data: bytes, max_length: int) -> bytes:
        self._buffer += data
        out = bytes(self._buffer[:max_length])
        del self._buffer[:max_length]
        return out


class ZlibInflater:
    """zlib's decompressobj behind the bz2-style interface (its leftover input is
    ``unconsumed_tail``, which must be passed back in)."""

    def __init__(self, wbits: int) -> None:
        import zlib

        self._d = zlib.decompressobj(wbits)

    @property
    def needs_input(self) -> bool:
        return not self._d.unconsumed_tail

    @property
    def eof(self) -> bool:
        return self._d.eof

    def decompress(self, data: bytes, max_length: int) -> bytes:
        return self._d.decompress(self._d.unconsumed_tail + data, max_length)


class ZstdPackageInflater:
    """The ``zstandard`` package's decompressobj, bounded: it has no ``max_length``, so input
    is fed in small slices. A zstd block (at most 128 KiB out) takes at least 4 bytes in, so a
    slice of 512 bytes yields at most 16 MiB, however hostile the data. Concatenated frames
    are decoded one after the other, as the zstd tool does."""

    _SLICE = 512

    def __init__(self) -> None:
        import zstandard

        self._zstd = zstandard
        self._d = zstandard.ZstdDecompressor().decompressobj()
        self._input = b""
        self._used = 0
        self._output = bytearray()
        self._frames = 0

    @property
    def needs_input(self) -> bool:
        return self._used >= len(self._input) and not self._output and not self._d.unused_data

    @property
    def eof(self) -> bool:
        return self._d.eof and self.needs_input

    def decompress(self, data: bytes, max_length: int) -> bytes:
        if data:
            self._input = self._input[self._used :] + data
            self._used = 0
        while len(self._output) < max_length:
            if self._d.eof:
                # Another frame may follow; what the last one left unused is part of it.
                pending = bytes(self._d.unused_data) + self._input[self._used :]
                if not pending:
                    break
                self._input, self._used = pending, 0
                self._d = self._zstd.ZstdDecompressor().decompressobj()
            if self._used >= len(self._input):
                break
            piece = self._input[self._used : self._used + self._SLICE]
            self._used += len(piece)
            self._output += self._d.decompress(piece)
        out = bytes(self._output[:max_length])
        del self._output[:max_length]
        return out


def zstd_inflater(extra: str) -> Inflater:
    """A zstd decompressor: the standard library's (Python 3.14+) or the ``zstandard``
    package's; ImportError naming the extra ``extra`` that installs it when neither exists."""
    try:
        from compression import zstd

        inflater: Inflater = zstd.ZstdDecompressor()
        return inflater
    except ImportError:
        pass
    try:
        return ZstdPackageInflater()
    except ImportError:
        raise ImportError(
            f"zstd decompression needs the zstandard package: pip install 'rangeio[{extra}]'"
        ) from None


@functools.cache  # called per chunk decompressed; a failed import is not cached by Python
def decompression_errors() -> tuple[type[BaseException], ...]:
    """What the decompressors raise on corrupt input (turned into FormatError)."""
    import lzma
    import zlib

    errors: list[type[BaseException]] = [zlib.error, lzma.LZMAError, EOFError]
    try:
        import zstandard

        errors.append(zstandard.ZstdError)
    except ImportError:
        pass
    try:
        from compression import zstd

        errors.append(zstd.ZstdError)
    except ImportError:
        pass
    return tuple(errors)


def decompress(inflater: Inflater, data: bytes, limit: int, what: str) -> bytes:
    """``inflater.decompress(data, limit)``, with corrupt input a FormatError naming ``what``."""
    # bz2 reports corrupt data as OSError ("Invalid data stream"); no I/O happens here.
    errors: tuple[type[BaseException], ...] = (*decompression_errors(), OSError)
    try:
        return inflater.decompress(data, limit)
    except FormatError:
        raise
    except errors as exc:
        raise FormatError(f"{what}: corrupt compressed data ({exc})") from exc


def inflate_all(inflater: Inflater, data: bytes, limit: int, what: str) -> bytes:
    """Decompress ``data`` whole, refusing more than ``limit`` bytes of output and streams
    that stop before their end."""
    out = bytearray()
    fed = False
    while not inflater.eof:
        chunk = decompress(inflater, b"" if fed else data, limit - len(out) + 1, what)
        fed = True
        out += chunk
        if len(out) > limit:
            raise FormatError(f"{what}: decompresses to more than {limit} bytes")
        if not chunk and inflater.needs_input:
            raise FormatError(f"{what}: compressed data ends before the end of the stream")
    return bytes(out)


# -- zip's methods -------------------------------------------------------------------------

ZIP_METHODS = {0: "stored", 8: "deflate", 12: "bzip2", 14: "lzma", 93: "zstd"}


class _ZipLzma:
    """Method 14: a 4-byte header (LZMA SDK version, properties size), the 5 LZMA1
    properties, then a raw LZMA1 stream (APPNOTE 5.8.8)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._head = b""
        self._d: Any = None

    @property
    def needs_input(self) -> bool:
        return self._d is None or bool(self._d.needs_input)

    @property
    def eof(self) -> bool:
        return self._d is not None and bool(self._d.eof)

    def decompress(self, data: bytes, max_length: int) -> bytes:
        if self._d is None:
            self._head += data
            if len(self._head) < 4:
                return b""
            props_size = int.from_bytes(self._head[2:4], "little")
            if props_size != 5:
                raise FormatError(f"zip lzma: properties are {props_size} bytes, not 5")
            if len(self._head) < 9:
                return b""
            self._d = _lzma1_decompressor(self._head[4:9], self._size)
            data, self._head = self._head[9:], b""
        return bytes(self._d.decompress(data, max_length))


def _lzma1_decompressor(props: bytes, size: int) -> Any:
    import lzma

    packed, dict_size = props[0], int.from_bytes(props[1:5], "little")
    if packed >= 9 * 5 * 5:
        raise FormatError(f"zip lzma: invalid properties byte {packed}")
    pb, rest = divmod(packed, 45)
    lp, lc = divmod(rest, 9)
    # The header may ask for a 4 GiB dictionary. No match reaches back further than the output
    # so far, and output past the member's declared ``size`` is refused, so a bigger dictionary
    # would never be used: the same bytes decode either way.
    dict_size = min(dict_size, max(size + 1, 1 * MiB))
    filters = [{"id": lzma.FILTER_LZMA1, "lc": lc, "lp": lp, "pb": pb, "dict_size": dict_size}]
    try:
        return lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=filters)
    except lzma.LZMAError as exc:
        raise FormatError(f"zip lzma: unusable properties ({exc})") from exc
    except MemoryError:
        raise FormatError(f"zip lzma: no memory for a {dict_size}-byte dictionary") from None


def zip_method_inflater(method: int, size: int, name: str) -> Inflater:
    """The decompressor of zip compression ``method`` (APPNOTE 4.4.5) for a member of ``size``
    bytes called ``name`` (named in the errors)."""
    if method == 0:
        return StoredInflater()
    if method == 8:
        return ZlibInflater(-15)
    if method == 12:
        import bz2

        return bz2.BZ2Decompressor()
    if method == 14:
        return _ZipLzma(size)
    if method == 93:
        try:
            return zstd_inflater("conda")
        except ImportError as exc:
            raise FormatError(
                f"zip member {name!r} is zstd-compressed (method 93) and {exc}"
            ) from exc
    raise FormatError(
        f"zip member {name!r} uses compression method {method}, which is not supported "
        f"(supported: {', '.join(f'{k} {v}' for k, v in ZIP_METHODS.items())})"
    )


# -- a stream decompressed as it is read ----------------------------------------------------


class InflateStream:
    """The decompressed bytes of a compressed stream read in steps (a zstd payload): ``read(n)``
    is a program giving at most ``n`` next bytes, b"" at the end. ``source(n)`` is a program
    giving the compressed stream's next bytes (b"" at its end); ``make()`` a fresh decompressor,
    begun again when one stops at a frame's end with input left (concatenated frames, as the
    zstd tool decodes them). Corrupt data, and a stream that stops inside a frame, are a
    FormatError naming ``what``."""

    def __init__(
        self,
        source: Callable[[int], Program[bytes]],
        make: Callable[[], Inflater],
        what: str,
        step: int = 64 * 1024,
    ) -> None:
        self._source = source
        self._make = make
        self._what = what
        self._step = step
        self._inflater = make()
        self._ended = False

    def read(self, n: int) -> Program[bytes]:
        while True:
            out = b""
            if self._inflater.eof:
                # A frame ended: what it left unused (a one-frame decompressor keeps it) starts
                # the next one.
                leftover = bytes(getattr(self._inflater, "unused_data", b""))
                if leftover:
                    self._inflater = self._make()
                    out = self._decompress(leftover, n)
            elif not self._inflater.needs_input:
                out = self._decompress(b"", n)
            if out:
                return out
            if self._ended:
                if not self._inflater.eof:
                    raise FormatError(f"{self._what}: compressed data ends inside a frame")
                return b""
            data = yield from self._source(self._step)
            if not data:
                self._ended = True
                continue
            if self._inflater.eof:
                self._inflater = self._make()
            out = self._decompress(data, n)
            if out:
                return out

    def _decompress(self, data: bytes, n: int) -> bytes:
        return decompress(self._inflater, data, n, self._what)
