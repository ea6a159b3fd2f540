"""The options every front end accepts, checked once, with the reasons for their defaults."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from rangeio._core.diskcache import BLOCK_SIZE, DEFAULT_CACHE_DIR_BYTES
from rangeio._core.planner import MiB, ReadPolicy
from rangeio._core.prefetch import DIRECTIONS
from rangeio._core.retry import RetryPolicy, coerce_retries
from rangeio._core.stall import LowSpeed

# With ``max_concurrency`` unset: the requests one file has in flight are bounded by the
# connections rangeio keeps per host (urllib3's pool, POOL_MAXSIZE), so cursors reading at
# once (``clone()``: the user's own parallelism) are never throttled below that; and one
# ``read_ranges`` fans out to at most READ_RANGES_FAN_OUT requests, since many servers and CDNs
# start failing above 12 to 16 concurrent range requests per client (object_store and
# fsspec's HTTPFileSystem both cap theirs near 10).
CONNECTIONS_PER_HOST = 16
READ_RANGES_FAN_OUT = 8


@dataclass(frozen=True, slots=True)
class Timeout:
    """Seconds to wait for a connection, between two reads, and for the whole response head; and
    the slowest body rangeio will wait for.

    Defaults follow the common cloud-SDK choice (botocore: 60 s each); 10 s to connect is
    plenty on any working network and fails fast on a dead host. A read timeout never fires
    while a server drips a byte now and then (a slow-loris body), so ``low_speed`` also asks a
    body to average 1 KiB/s over each minute spent waiting for it: far below any real link (a
    56k modem does 7 KiB/s), far above a drip. The floor also bounds each single wait, the wait
    for the *end* of a body (chunked trailers) included: a wait in which no body arrives is cut
    once a whole window would have been too slow, at most two windows after it began. A body
    below it is cut and resumed like any other cut, then ends in NetworkTimeoutError. None turns
    the floor off (curl's default), and with it the bound on the wait for trailers.

    ``head`` bounds, in total, the time from sending a request to the end of the response head
    (status line, headers, and any 1xx interim responses before them): a read timeout is per
    socket read, so a status line dripped a byte a second would never fire it. This is Go's
    ``http.Transport.ResponseHeaderTimeout``, and nginx's ``client_header_timeout`` seen from
    the client side; its 60 s default is nginx's, the same as the read timeout's. A bare number
    or a ``(connect, read)`` pair sets it to the read timeout; None turns it off. It holds on
    every adapter: a borrowed sync client that hands over no socket before its head has arrived
    (requests, niquests, a urllib3 PoolManager, httpx on a kept-alive connection) sends on a
    helper thread, and a head past the deadline is abandoned (ARCHITECTURE.md).
    """

    connect: float = 10.0
    read: float = 60.0
    low_speed: LowSpeed | None = LowSpeed(1024, 60.0)
    head: float | None = 60.0

    def __post_init__(self) -> None:
        if self.head is not None and self.head <= 0:
            raise ValueError("head timeout must be > 0 seconds (or None)")

    @classmethod
    def coerce(cls, value: Timeout | float | tuple[float, float] | None) -> Timeout:
        if value is None:
            return cls()
        if isinstance(value, Timeout):
            return value
        if isinstance(value, tuple):
            return cls(float(value[0]), float(value[1]), head=float(value[1]))
        return cls(float(value), float(value), head=float(value))


@dataclass(frozen=True, slots=True)
class FileOptions:
    """Options of ``HttpFile`` / ``AsyncHttpFile``.

    - ``prefetch_direction`` "auto": the open request also fetches the part of the file a reader
      needs first, chosen by the URL's extension (``_core/prefetch.py`` holds the tables): the
      END for zip, wheels, Parquet, ORC and Arrow files, whose index is there; the START for
      TIFF/COG, PNG, JPEG, CSV, npy, tar and HDF5/netCDF, whose header is. A URL naming no
      format gets the END, as before "auto": an index-at-end format then reads its footer
      with no request of its own, and a header-first one pays the one request its header would
      cost either way. The first answer's magic bytes and Content-Type correct the choice for
      the reads that follow: a zip found by its magic in a START prefetch has its last 1 MiB
      fetched whole by the first read there (its end record, then its central directory, in
      one request). "END" and "START" force a direction.
    - ``prefetch_bytes`` None (auto): from the END, 16 KiB for a zip-based file (its end
      record; the rest of a larger central directory, located by that record, is fetched whole
      by the first read there), 1 MiB for a Parquet/Arrow/ORC file or a URL naming no format,
      since a footer is usually under that and one request then holds it (fsspec's default
      block is 5 MiB; ``_core/prefetch.py`` gives the reasons); 64 KiB from the START, since
      header-first formats keep a small index there (GDAL's /vsicurl/ reads 16 KiB first;
      64 KiB holds a COG's IFDs, a JPEG's EXIF segment, an HDF5 superblock), and more would
      be wasted. A number sets it for either
      direction, 0 turns the prefetch off. Either is cut to ``cache_bytes``: prefetched bytes
      the cache cannot hold are evicted before they are read.
    - ``cache_bytes`` 64 MiB: enough for the metadata and working set of typical columnar reads,
      small enough for a laptop with many files open.
    - ``multipart`` "auto": ``read_ranges`` asks for several ranges in one multipart/byteranges
      request. A server over its cap of ranges per request (a 200) gets smaller groups, the
      largest count answered being kept; one that refuses even 2 ranges, or answers otherwise,
      is remembered and served range by range (``_core/rangecap.py``). True insists (groups are
      still split, but a server that refuses 2 ranges raises), False never asks.
    - ``max_concurrency`` None: cursors reading at once get a request each, up to the
      ``CONNECTIONS_PER_HOST`` (16) connections kept per host, and one ``read_ranges`` call
      fans out to at most ``READ_RANGES_FAN_OUT`` (8) requests (see ``limits()``). A number
      bounds both: every request of the file.
    - ``verify`` True: TLS certificates are checked against the system trust store. A path
      names a CA bundle (PEM) to trust instead, an ``ssl.SSLContext`` is used as it is, and
      False turns checking off (an explicit opt-out, like curl's ``-k``). Only the shells turn
      it into an ``ssl`` object; a client the user passes is never reconfigured, so with one
      only True is accepted.
    - ``cache_dir`` None: no disk cache, unless ``RANGEIO_CACHE_DIR`` is set in the environment
      (read by the shell, `_engine/disktier.py`). A directory (str or path) keeps validated
      blocks on disk for later opens, in this process or others (docs/disk-cache.md); each open
      revalidates them with its own range request (``If-None-Match``), so an unchanged file
      costs one request and no body bytes.
    - ``cache_dir_bytes`` 1 GiB: the whole directory's budget, shared by every process using it
      (the reason is beside ``DEFAULT_CACHE_DIR_BYTES`` in `_core/diskcache.py`).
    - ``immutable`` False: True promises the URL's bytes never change (a versioned URL, a
      content-addressed store): blocks on disk are served without asking the server, and an
      open found on disk costs no request at all. Also lets files with weak or no validators be
      kept (never reused otherwise).
    - ``pickle_headers`` False: a pickled file (sent to a process pool or a dask worker)
      leaves ``headers`` behind, since they are where credentials go and a pickle travels and
      is stored in clear; True sends them along (``docs/distributed.md``). fsspec's http
      filesystem pickles its headers unasked; rangeio makes that a choice.
    """

    prefetch_bytes: int | None = None
    prefetch_direction: str = "auto"
    cache_bytes: int = 64 * MiB
    headers: Mapping[str, str] = field(default_factory=dict)
    retries: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: Timeout = field(default_factory=Timeout)
    max_concurrency: int | None = None
    policy: ReadPolicy = field(default_factory=ReadPolicy)
    allow_https_downgrade: bool = False
    multipart: bool | str = "auto"
    # bool | str | os.PathLike | ssl.SSLContext; typed Any so the core never imports ssl.
    verify: Any = True
    # str | os.PathLike | None; typed Any so the core never imports os.
    cache_dir: Any = None
    cache_dir_bytes: int = DEFAULT_CACHE_DIR_BYTES
    immutable: bool = False
    pickle_headers: bool = False

    @classmethod
    def from_kwargs(cls, **options: Any) -> FileOptions:
        policy_names = {f.name for f in fields(ReadPolicy)}
        own_names = {f.name for f in fields(cls)}
        policy_args = {k: options.pop(k) for k in list(options) if k in policy_names}
        unknown = set(options) - own_names
        if unknown:
            raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
        if "retries" in options:
            options["retries"] = coerce_retries(options["retries"], RetryPolicy())
        if "timeout" in options:
            options["timeout"] = Timeout.coerce(options["timeout"])
        if "headers" in options:
            options["headers"] = dict(options["headers"] or {})
        made = cls(**options)
        if policy_args:
            made = replace(made, policy=replace(made.policy, **policy_args))
        made.check()
        return made

    def check(self) -> None:
        if self.prefetch_bytes is not None and self.prefetch_bytes < 0:
            raise ValueError("prefetch_bytes must be >= 0 (or None: the direction's size)")
        if self.prefetch_direction.upper() not in DIRECTIONS:
            raise ValueError("prefetch_direction must be 'auto', 'END' or 'START'")
        if self.cache_bytes < 0:
            raise ValueError("cache_bytes must be >= 0")
        if self.multipart not in (True, False, "auto"):
            raise ValueError("multipart must be True, False or 'auto'")
        if self.max_concurrency is not None and self.max_concurrency < 1:
            raise ValueError("max_concurrency must be >= 1 (or None)")
        check_verify(self.verify)
        check_cache_dir(self.cache_dir)
        if isinstance(self.cache_dir_bytes, bool) or not isinstance(self.cache_dir_bytes, int):
            raise TypeError("cache_dir_bytes must be an int")
        if self.cache_dir_bytes < BLOCK_SIZE:
            raise ValueError(f"cache_dir_bytes must be >= {BLOCK_SIZE} (one block)")
        if not isinstance(self.immutable, bool):
            raise TypeError("immutable must be True or False")


def check_cache_dir(cache_dir: Any) -> None:
    """None, or a directory's path (str or os.PathLike)."""
    if cache_dir is None or hasattr(cache_dir, "__fspath__"):
        return
    if not isinstance(cache_dir, str):
        raise TypeError(f"cache_dir must be a path or None, not {type(cache_dir).__qualname__}")
    if not cache_dir:
        raise ValueError("cache_dir must not be an empty path (None turns the disk cache off)")


def concurrency_limits(max_concurrency: int | None) -> tuple[int, int]:
    """(requests a file may have in flight, of which one ``read_ranges`` fan-out may take)."""
    if max_concurrency is None:
        return CONNECTIONS_PER_HOST, READ_RANGES_FAN_OUT
    return max_concurrency, max_concurrency


def check_verify(verify: Any) -> None:
    """A TypeError naming the accepted kinds unless ``verify`` is one of them. An SSL context is
    recognised by its ``wrap_socket`` method (the core does not import ssl)."""
    if isinstance(verify, (bool, str)) or hasattr(verify, "__fspath__"):
        if isinstance(verify, str) and not verify:
            raise ValueError("verify must not be an empty path")
        return
    if callable(getattr(verify, "wrap_socket", None)):
        return
    raise TypeError(
        "verify must be True, False, the path of a CA bundle or an ssl.SSLContext, "
        f"not {type(verify).__qualname__}"
    )


def check_borrowed_tls(client: Any, verify: Any) -> None:
    """rangeio never reconfigures a client it borrows: TLS settings belong on that client."""
    if client is not None and verify is not True:
        raise TypeError(
            f"verify={verify!r} cannot apply to the {type(client).__qualname__} you passed: "
            "configure TLS on your client (its CA bundle or SSL context) instead"
        )
