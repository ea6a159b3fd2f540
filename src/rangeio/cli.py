"""The ``rangeio`` command line: resumable downloads, byte ranges to stdout, file facts, zip members.

Commands::

    rangeio get URL [-o FILE | -O] [-c N] [--sha256 HEX] [--retries N] [-H 'Name: value']...
                    [--timeout SECONDS] [-Y BYTES] [-y SECONDS] [--cacert PATH | -k] [-q] [--json] [--force]
    rangeio cat URL [-r START-END | -r START- | -r -N]
    rangeio info URL [--json]
    rangeio zip ls URL [--json]
    rangeio zip get URL MEMBER [-o FILE] [--force]
    rangeio cache info [--dir DIR] [--json]
    rangeio cache clear [--dir DIR] [--older-than AGE]
    rangeio demo

``get`` keeps its progress in ``FILE.part`` and ``FILE.part.ctrl``: after a failure or Ctrl-C,
running the same command again resumes. Without ``-o`` the name comes from the server's
Content-Disposition ``filename`` (else the URL's last path segment), reduced to a plain file name
in the current directory. An existing file is never overwritten without ``--force``.

Exit codes: ``EXIT_CODES_HELP`` below (curl-like where curl has one); ``--help`` prints them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import rangeio
from rangeio.errors import (
    ChecksumMismatchError,
    DownloadLockedError,
    HTTPStatusError,
    NetworkError,
    NetworkTimeoutError,
    PartialDownloadError,
    ProtocolError,
    RangeioError,
    RangeNotSupportedError,
    RemoteChangedError,
    TLSError,
    UrlError,
)

# The start-up (`rangeio --version`, `--help`, a usage error) imports only argparse and the
# errors: a command imports what it uses (the file engine, urllib3, the download engine, the
# formats, json, email) when it runs. benchmarks/startup.py measures it. Not typing's
# TYPE_CHECKING: importing typing alone costs a tenth of the start-up.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path
    from typing import IO, Any

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_URL = 3
EXIT_RESOLVE = 6
EXIT_NETWORK = 7
EXIT_PROTOCOL = 8
EXIT_PARTIAL = 18
EXIT_HTTP = 22
EXIT_WRITE = 23
EXIT_TIMEOUT = 28
EXIT_RANGES = 33
EXIT_CHECKSUM = 50
EXIT_CHANGED = 51
EXIT_LOCKED = 52
EXIT_TLS = 60
EXIT_FORMAT = 65
EXIT_NO_MEMBER = 66
EXIT_EXISTS = 73
EXIT_INTERRUPTED = 130

# A constant, not parsed out of __doc__: `python -OO` strips docstrings.
EXIT_CODES_HELP = """
     0  success
     1  any other rangeio error
     2  usage error
     3  the URL is malformed or not http/https
     6  could not resolve the host
     7  could not connect, or another network failure (including too many redirects)
     8  the server broke an HTTP rule (a wrong Content-Range, say)
    18  partial download: the transfer stopped; run the command again to resume
    22  the server answered with an HTTP error status (404, 500, ...)
    23  writing the output failed (a local I/O error, or a closed pipe)
    28  timed out
    33  the server does not serve byte ranges usably
    50  checksum mismatch (``--sha256`` or a digest header); the data stays in ``.part``
    51  the remote file changed while it was read
    52  the destination is locked by another download
    60  TLS failed: the server's certificate is not trusted (see --cacert), or a redirect
        from https to http was refused
    65  the remote file is not a well-formed zip archive
    66  no such zip member
    73  refusing to overwrite an existing file (use ``--force``)
   130  interrupted (Ctrl-C); ``get`` says whether progress was saved (a rerun resumes it)
"""
_EPILOG = "exit codes:\n" + EXIT_CODES_HELP

CHUNK = 256 * 1024
_MAX_NAME = 200  # leaves room for ".part.ctrl" under the usual 255-byte limit
_FALLBACK_NAME = "download"


class UsageError(Exception):
    """A bad argument found after parsing (exit 2)."""


class RefusedError(Exception):
    """The command would overwrite an existing file (exit 73)."""


# -- names ------------------------------------------------------------------------------------


def sanitize_filename(name: str | None) -> str:
    """A plain file name for the current directory: no directories, no ``..``, no absolute
    path, no control characters, no leading dots (hidden files), never empty."""
    import unicodedata

    if not name:
        return _FALLBACK_NAME
    name = "".join(ch for ch in name if not unicodedata.category(ch).startswith("C") or ch in "/\\")
    name = name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    name = name.strip().lstrip(".").strip()
    if len(name.encode("utf-8")) > _MAX_NAME:
        stem, dot, ext = name.rpartition(".")
        if not dot or len(ext) > 16:
            stem, ext = name, ""
        suffix = f".{ext}" if ext else ""
        budget = _MAX_NAME - len(suffix.encode("utf-8"))
        stem = stem.encode("utf-8")[:budget].decode("utf-8", "ignore")
        name = stem + suffix
    return name or _FALLBACK_NAME


def content_disposition_filename(value: str | None) -> str | None:
    """``filename*`` (RFC 6266/5987) or ``filename`` of a Content-Disposition header."""
    import email.message

    if not value:
        return None
    message = email.message.Message()
    message["Content-Disposition"] = value
    try:
        return message.get_filename()
    except Exception:  # a malformed header means no name, never a crash
        return None


def url_filename(url: str) -> str | None:
    import urllib.parse

    path = urllib.parse.urlsplit(url).path
    segment = path.rstrip("/").rsplit("/", 1)[-1] if path.rstrip("/") else ""
    return urllib.parse.unquote(segment) or None


def remote_filename(url: str, options: dict[str, Any]) -> str:
    """The name ``get`` saves to: the Content-Disposition filename seen by one cheap probe
    (a ``bytes=0-0`` open), else the URL's last path segment; always sanitised."""
    from rangeio._transport.recording import RecordingPool

    options = dict(options)
    pool = RecordingPool(options.pop("verify", True))
    try:
        # A small cache: a server that ignores Range must not send us a big body here.
        with rangeio.open(url, client=pool, prefetch_bytes=0, cache_bytes=1 << 20, **options):
            pass
    except RangeioError:
        pass  # the download itself reports the real problem
    finally:
        pool.clear()
    for exchange in reversed(pool.exchanges):
        name = content_disposition_filename(exchange.header("Content-Disposition"))
        if name:
            return sanitize_filename(name)
    return sanitize_filename(url_filename(url))


# -- errors -----------------------------------------------------------------------------------


def exit_code(exc: BaseException) -> int:
    """The exit code for an error (see the module docstring)."""
    import socket

    from rangeio._transport.base import causes

    # A FormatError exists only if its module was loaded: not importing the formats here
    # keeps every other failing command's exit quick.
    formats = sys.modules.get("rangeio.formats._common")
    if isinstance(exc, UrlError):
        return EXIT_URL
    if isinstance(exc, ChecksumMismatchError):
        return EXIT_CHECKSUM
    if isinstance(exc, RemoteChangedError):
        return EXIT_CHANGED
    if isinstance(exc, DownloadLockedError):
        return EXIT_LOCKED
    if formats is not None and isinstance(exc, formats.FormatError):
        return EXIT_FORMAT
    if isinstance(exc, PartialDownloadError) and exc.bytes_done > 0:
        return EXIT_PARTIAL
    if isinstance(exc, NetworkError):
        # What the client library saw first: refusals are reported by urllib3 as connect
        # "timeouts", so look at the socket error underneath before the typed one.
        for cause in causes(exc):
            if isinstance(cause, socket.gaierror):
                return EXIT_RESOLVE
            if isinstance(cause, ConnectionRefusedError):
                return EXIT_NETWORK
        for cause in causes(exc):
            if isinstance(cause, TLSError):
                return EXIT_TLS
            if isinstance(cause, RangeNotSupportedError):
                return EXIT_RANGES
            if isinstance(cause, HTTPStatusError):
                return EXIT_HTTP
            if isinstance(cause, NetworkTimeoutError):
                return EXIT_TIMEOUT
            if isinstance(cause, ProtocolError):
                return EXIT_PROTOCOL
        if isinstance(exc, PartialDownloadError):
            return EXIT_PARTIAL
        return EXIT_NETWORK
    if isinstance(exc, RangeioError):
        return EXIT_ERROR
    if isinstance(exc, OSError):
        return EXIT_WRITE
    return EXIT_ERROR


# -- progress ---------------------------------------------------------------------------------


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover - the loop always returns


class _PlainBar:
    """A one-line progress bar for when tqdm is not installed."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._start = time.monotonic()
        self._first: int | None = None
        self._last_draw = 0.0

    def update(self, done: int, total: int | None) -> None:
        now = time.monotonic()
        if self._first is None:
            self._first, self._start = done, now
        if now - self._last_draw < 0.2 and done != total:
            return
        self._last_draw = now
        elapsed = max(now - self._start, 1e-6)
        rate = (done - self._first) / elapsed
        if total:
            eta = f"{(total - done) / rate:.0f}s" if rate > 0 else "?"
            line = f"{100 * done / total:5.1f}% {_human(done)}/{_human(total)} {_human(rate)}/s ETA {eta}"
        else:
            line = f"{_human(done)} {_human(rate)}/s"
        self._stream.write("\r" + line + "\x1b[K")
        self._stream.flush()

    def close(self) -> None:
        self._stream.write("\n")
        self._stream.flush()


def _columns(stream: IO[str]) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError):
        return 0


class Progress:
    """Draws download progress on stderr (tqdm when installed); the callback for
    ``rangeio.download(on_progress=...)``."""

    def __init__(self, stream: IO[str], description: str) -> None:
        self._stream = stream
        self._description = description
        self._bar: Any = None
        self._plain: _PlainBar | None = None
        self._shown = 0

    def __call__(self, done: int, total: int | None) -> None:
        if self._bar is None and self._plain is None:
            try:
                from tqdm import tqdm
            except ImportError:
                self._plain = _PlainBar(self._stream)
            else:
                sized = _columns(self._stream) > 0
                self._bar = tqdm(
                    total=total,
                    initial=done,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=self._description,
                    file=self._stream,
                    # A terminal that reports no size (a fresh pty) draws nothing: give it 80x24.
                    dynamic_ncols=sized,
                    ncols=None if sized else 80,
                    nrows=None if sized else 24,
                    mininterval=0.2,
                )
                self._shown = done
                return
        if self._plain is not None:
            self._plain.update(done, total)
        elif self._bar is not None:
            if total is not None and self._bar.total != total:
                self._bar.total = total
            if done > self._shown:
                self._bar.update(done - self._shown)
                self._shown = done

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self._plain is not None:
            self._plain.close()


# -- commands ---------------------------------------------------------------------------------


def _headers(values: Sequence[str] | None) -> dict[str, str]:
    headers: dict[str, str] = {}
    for value in values or ():
        name, sep, rest = value.partition(":")
        name = name.strip()
        if not sep or not name or any(c.isspace() for c in name):
            raise UsageError(f"bad header {value!r}: expected 'Name: value'")
        if any(c in rest for c in "\r\n\0"):
            raise UsageError(f"bad header {value!r}: control characters in the value")
        headers[name] = rest.strip()
    return headers


def _common_options(args: argparse.Namespace) -> dict[str, Any]:
    from dataclasses import replace

    options: dict[str, Any] = {}
    headers = _headers(getattr(args, "header", None))
    if headers:
        options["headers"] = headers
    if getattr(args, "retries", None) is not None:
        options["retries"] = args.retries
    default = rangeio.Timeout()
    timeout = default
    if getattr(args, "timeout", None) is not None:
        timeout = replace(timeout, connect=args.timeout, read=args.timeout, head=args.timeout)
    speed_limit = getattr(args, "speed_limit", None)
    speed_time = getattr(args, "speed_time", None)
    if speed_time == 0:
        timeout = replace(timeout, low_speed=None)
    elif (speed_limit is not None or speed_time is not None) and default.low_speed is not None:
        floor = rangeio.LowSpeed(
            speed_limit or default.low_speed.bytes_per_second,
            speed_time or default.low_speed.seconds,
        )
        timeout = replace(timeout, low_speed=floor)
    if timeout != default:
        options["timeout"] = timeout
    if getattr(args, "cacert", None) is not None:
        options["verify"] = args.cacert
    elif getattr(args, "insecure", False):
        # Asked for explicitly, like curl -k: no warning on every request either.
        import urllib3

        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        options["verify"] = False
    return options


def _result_json(result: rangeio.DownloadResult) -> dict[str, Any]:
    from dataclasses import asdict

    data = asdict(result)
    data["path"] = str(result.path)
    return data


def _prepare_output(path: Path, force: bool) -> None:
    if os.path.lexists(path):
        if not force or path.is_dir():
            raise RefusedError(f"{path} exists; not overwriting it (use --force)")
        path.unlink()


def cmd_get(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from rangeio._sync.download import saved_progress

    options = _common_options(args)
    if args.output is not None:
        dest = Path(args.output)
    else:
        dest = Path(remote_filename(args.url, options))
    _prepare_output(dest, args.force)
    progress: Progress | None = None
    if not args.quiet and sys.stderr.isatty():
        progress = Progress(sys.stderr, dest.name)
    try:
        result = rangeio.download(
            args.url,
            dest,
            connections=args.connections,
            sha256=args.sha256,
            on_progress=progress,
            **options,
        )
    except KeyboardInterrupt as exc:
        # The download checkpointed before unwinding; what the disk now holds is the truth.
        raise _Interrupted(saved_progress(args.url, dest)) from exc
    finally:
        if progress is not None:
            progress.close()
    if args.json:
        print(json.dumps(_result_json(result), indent=2))
    elif not args.quiet:
        reused = f", {_human(result.bytes_reused)} reused" if result.bytes_reused else ""
        print(
            f"{result.path}: {_human(result.size)} in {result.elapsed:.1f}s "
            f"({result.requests} requests{reused}) sha256 {result.sha256}",
            file=sys.stderr,
        )
    return EXIT_OK


def parse_range(text: str) -> tuple[int | None, int | None]:
    """``START-END`` (inclusive) -> (START, END); ``START-`` -> (START, None);
    ``-N`` -> (None, N), the last N bytes."""
    first, sep, last = text.strip().partition("-")
    try:
        if not sep or (not first and not last):
            raise ValueError
        start = int(first) if first else None
        end = int(last) if last else None
    except ValueError:
        raise UsageError(f"bad range {text!r}: expected START-END, START- or -N") from None
    if (start is not None and start < 0) or (end is not None and end < 0):
        raise UsageError(f"bad range {text!r}")
    if start is not None and end is not None and end < start:
        raise UsageError(f"bad range {text!r}: END is before START")
    return start, end


def _copy(read: Callable[[int], bytes], out: IO[bytes], remaining: int | None) -> None:
    while remaining is None or remaining > 0:
        chunk = read(CHUNK if remaining is None else min(CHUNK, remaining))
        if not chunk:
            break
        out.write(chunk)
        if remaining is not None:
            remaining -= len(chunk)
    out.flush()


def cmd_cat(args: argparse.Namespace) -> int:
    options = _common_options(args)
    start, end = parse_range(args.range) if args.range else (0, None)
    if start is None:
        # The last N bytes: the opening request (a suffix range) can fetch them all at once.
        assert end is not None
        options.setdefault("prefetch_bytes", min(end, 1 << 20))
    else:
        options.setdefault("prefetch_bytes", 0)
    with rangeio.open(args.url, **options) as f:
        size = f.size
        if start is None:
            assert end is not None
            first, stop = max(size - end, 0), size
        else:
            first, stop = min(start, size), size if end is None else min(end + 1, size)
        f.seek(first)
        _copy(f.read, sys.stdout.buffer, stop - first)
    return EXIT_OK


def _etag_kind(etag: str | None) -> str | None:
    if etag is None:
        return None
    return "weak" if etag.startswith("W/") else "strong"


def gather_info(url: str, options: dict[str, Any]) -> dict[str, Any]:
    from rangeio._transport.recording import RecordingPool

    options = dict(options)
    pool = RecordingPool(options.pop("verify", True))
    multipart: bool | None = None
    try:
        # The open asks for the last byte (a suffix range, whatever the file's type): that is
        # the probe of suffix-range support.
        probe: dict[str, Any] = {
            "prefetch_bytes": 1,
            "prefetch_direction": "END",
            "multipart": True,
        }
        with rangeio.open(url, client=pool, **probe, **options) as f:
            size, etag = f.size, f.etag
            # Two one-byte ranges far enough apart that rangeio will not merge them.
            if size > 64 * 1024:
                try:
                    f.read_ranges([(0, 1), (size - 2, size - 1)])
                except NetworkError as exc:
                    from rangeio._core.retry import is_retryable

                    # An answer that asking again would not change (a refusal, a broken
                    # multipart body): no usable multipart. Only a failure of the link is raised.
                    if is_retryable(exc):
                        raise
                    multipart = False
                else:
                    multipart = any(
                        e.range is not None
                        and "," in e.range
                        and e.status == 206
                        and (e.header("Content-Type") or "").startswith("multipart/byteranges")
                        for e in pool.exchanges
                    )
            requests = f.stats.requests
    finally:
        pool.clear()
    answers = [e for e in pool.exchanges if e.status in (200, 206)]
    last = answers[-1] if answers else None
    single = [e for e in answers if not (e.range and "," in e.range)]
    suffix = [e for e in pool.exchanges if e.range is not None and e.range.startswith("bytes=-")]
    redirects = [
        {"status": e.status, "url": e.url, "location": e.header("Location")}
        for e in pool.exchanges
        if 300 <= e.status < 400
    ]
    return {
        "url": url,
        "final_url": last.url if last else url,
        "size": size,
        "etag": etag,
        "etag_kind": _etag_kind(etag),
        "last_modified": last.header("Last-Modified") if last else None,
        "content_type": single[-1].header("Content-Type") if single else None,
        "accept_ranges": last.header("Accept-Ranges") if last else None,
        "suffix_ranges": any(e.status == 206 for e in suffix) if suffix else None,
        "multipart": multipart,
        "redirects": redirects,
        "requests": requests,
    }


def cmd_info(args: argparse.Namespace) -> int:
    import json

    info = gather_info(args.url, _common_options(args))
    if args.json:
        print(json.dumps(info, indent=2))
        return EXIT_OK

    def yes_no(value: bool | None) -> str:
        return "unknown" if value is None else "yes" if value else "no"

    lines = [
        ("URL", info["url"]),
        ("final URL", info["final_url"]),
        ("size", f"{info['size']} ({_human(info['size'])})"),
        ("ETag", f"{info['etag']} ({info['etag_kind']})" if info["etag"] else "none"),
        ("Last-Modified", info["last_modified"] or "none"),
        ("Content-Type", info["content_type"] or "unknown"),
        ("suffix ranges", yes_no(info["suffix_ranges"])),
        ("multipart ranges", yes_no(info["multipart"])),
        ("redirects", str(len(info["redirects"]))),
        ("requests", str(info["requests"])),
    ]
    for redirect in info["redirects"]:
        lines.append(("  redirect", f"{redirect['status']} {redirect['url']}"))
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        print(f"{key:<{width}}  {value}")
    return EXIT_OK


def cmd_zip_ls(args: argparse.Namespace) -> int:
    import json

    from rangeio.formats.zip import METHODS, ZipStream

    with ZipStream(args.url, **_common_options(args)) as archive:
        members = archive.members()
    if args.json:
        rows = [
            {
                "name": m.name,
                "size": m.size,
                "compressed_size": m.compressed_size,
                "method": METHODS.get(m.method, str(m.method)),
                "crc32": f"{m.crc32:08x}",
                "is_dir": m.is_dir,
            }
            for m in members
        ]
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    out = sys.stdout
    for m in members:
        out.write(f"{m.size:>12} {m.compressed_size:>12} {METHODS.get(m.method, m.method)!s:>8}  ")
        out.write(m.name + "\n")
    return EXIT_OK


def cmd_zip_get(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rangeio.formats.zip import ZipStream

    with ZipStream(args.url, **_common_options(args)) as archive:
        try:
            member = archive.member(args.member)
        except KeyError:
            print(f"rangeio: no member named {args.member!r}", file=sys.stderr)
            return EXIT_NO_MEMBER
        if args.output is None:
            with archive.open(member) as reader:
                _copy(reader.read, sys.stdout.buffer, None)
            return EXIT_OK
        dest = Path(args.output)
        _prepare_output(dest, args.force)
        tmp = dest.with_name(dest.name + ".part")
        from rangeio._disk import open_new_part  # never through a link planted at tmp

        with archive.open(member) as reader, open(open_new_part(tmp), "wb") as out:
            _copy(reader.read, out, None)
            os.fsync(out.fileno())
        os.replace(tmp, dest)
    return EXIT_OK


def _cache_store(args: argparse.Namespace) -> Any:
    from rangeio._diskcache import DiskStore
    from rangeio._engine.disktier import ENVIRONMENT

    root = args.dir or os.environ.get(ENVIRONMENT)
    if not root:
        raise UsageError(f"no cache directory: pass --dir or set {ENVIRONMENT}")
    # The budget does not matter to info and clear (no eviction runs).
    return DiskStore(os.path.expanduser(root), 1 << 30)


def _age(text: str) -> float:
    """``30``, ``30s``, ``15m``, ``12h`` or ``7d``: seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    unit = text[-1:].lower()
    number = text[:-1] if unit in units else text
    try:
        value = float(number) * units.get(unit, 1)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an age: {text!r} (say 30s, 15m, 12h or 7d)"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError("an age must be >= 0")
    return value


def cmd_cache_info(args: argparse.Namespace) -> int:
    store = _cache_store(args)
    info = store.info()
    facts = {
        "dir": str(store.root),
        "entries": info.entries,
        "blocks": info.blocks,
        "bytes": info.bytes,
    }
    if args.json:
        import json

        print(json.dumps(facts))
    else:
        print(f"dir      {facts['dir']}")
        print(f"entries  {info.entries}")
        print(f"blocks   {info.blocks}")
        print(f"size     {_human(info.bytes)}")
    return EXIT_OK


def cmd_cache_clear(args: argparse.Namespace) -> int:
    store = _cache_store(args)
    freed = store.clear(args.older_than)
    print(f"freed {_human(freed)}", file=sys.stderr)
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from rangeio import demo

    demo.main()
    return EXIT_OK


# -- parser -----------------------------------------------------------------------------------


def _number(kind: type[int] | type[float], minimum: float, strict: bool) -> Any:
    """An argparse type: a number of ``kind`` at least ``minimum`` (above it when ``strict``)."""

    def convert(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
        if value < minimum or (strict and value == minimum):
            raise argparse.ArgumentTypeError(
                f"must be {'more than' if strict else 'at least'} {minimum:g}"
            )
        return value

    return convert


_positive_int = _number(int, 1, strict=False)
_non_negative_int = _number(int, 0, strict=False)
_positive_float = _number(float, 0, strict=True)
_non_negative_float = _number(float, 0, strict=False)


def _add_network_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-H",
        "--header",
        action="append",
        metavar="'Name: value'",
        help="extra request header (repeatable)",
    )
    parser.add_argument(
        "--retries", type=_non_negative_int, metavar="N", help="retries per request"
    )
    parser.add_argument(
        "--timeout", type=_positive_float, metavar="SECONDS", help="connect and read timeout"
    )
    parser.add_argument(
        "-Y",
        "--speed-limit",
        type=_positive_int,
        metavar="BYTES",
        help="slowest average body speed, bytes/s (default 1024); see --speed-time",
    )
    parser.add_argument(
        "-y",
        "--speed-time",
        type=_non_negative_float,
        metavar="SECONDS",
        help="window over which --speed-limit is judged (default 60; 0 turns the floor off)",
    )
    tls = parser.add_mutually_exclusive_group()
    tls.add_argument(
        "--cacert", metavar="PATH", help="trust the CA certificates in PATH (PEM) for TLS"
    )
    tls.add_argument(
        "-k",
        "--insecure",
        action="store_true",
        help="do not check the server's TLS certificate (unsafe)",
    )


def build_parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="rangeio",
        description="HTTP byte ranges, done right: resumable downloads, ranges, zip members.",
        epilog=_EPILOG,
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"rangeio {rangeio.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    get = commands.add_parser(
        "get",
        help="download a file (resumable: run it again to resume)",
        epilog=_EPILOG,
        formatter_class=formatter,
    )
    get.add_argument("url", metavar="URL")
    where = get.add_mutually_exclusive_group()
    where.add_argument("-o", "--output", metavar="FILE", help="save to FILE")
    where.add_argument(
        "-O",
        "--remote-name",
        action="store_true",
        help="save under the server's name (Content-Disposition, else the URL); the default",
    )
    get.add_argument("-c", "--connections", type=_positive_int, default=1, metavar="N")
    get.add_argument("--sha256", metavar="HEX", help="expected SHA-256 of the whole file")
    _add_network_options(get)
    get.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no summary")
    get.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    get.add_argument("--force", action="store_true", help="overwrite an existing file")
    get.set_defaults(handler=cmd_get)

    cat = commands.add_parser(
        "cat",
        help="write bytes of a remote file to stdout",
        epilog=_EPILOG,
        formatter_class=formatter,
    )
    cat.add_argument("url", metavar="URL")
    cat.add_argument(
        "-r",
        "--range",
        metavar="RANGE",
        help="START-END (inclusive, like curl), START- or -N (the last N bytes)",
    )
    _add_network_options(cat)
    cat.set_defaults(handler=cmd_cat)

    info = commands.add_parser(
        "info",
        help="size, validators and range support of a remote file",
        epilog=_EPILOG,
        formatter_class=formatter,
    )
    info.add_argument("url", metavar="URL")
    info.add_argument("--json", action="store_true")
    _add_network_options(info)
    info.set_defaults(handler=cmd_info)

    zip_parser = commands.add_parser("zip", help="list or extract members of a remote zip")
    zip_commands = zip_parser.add_subparsers(dest="zip_command", metavar="COMMAND", required=True)
    zip_ls = zip_commands.add_parser(
        "ls", help="list the members", epilog=_EPILOG, formatter_class=formatter
    )
    zip_ls.add_argument("url", metavar="URL")
    zip_ls.add_argument("--json", action="store_true")
    _add_network_options(zip_ls)
    zip_ls.set_defaults(handler=cmd_zip_ls)
    zip_get = zip_commands.add_parser(
        "get", help="extract one member", epilog=_EPILOG, formatter_class=formatter
    )
    zip_get.add_argument("url", metavar="URL")
    zip_get.add_argument("member", metavar="MEMBER")
    zip_get.add_argument("-o", "--output", metavar="FILE", help="save to FILE (default: stdout)")
    zip_get.add_argument("--force", action="store_true", help="overwrite an existing file")
    _add_network_options(zip_get)
    zip_get.set_defaults(handler=cmd_zip_get)

    cache = commands.add_parser("cache", help="the disk cache (cache_dir): size, or clear it")
    cache_commands = cache.add_subparsers(dest="cache_command", metavar="COMMAND", required=True)
    cache_info = cache_commands.add_parser("info", help="entries, blocks and bytes on disk")
    cache_clear = cache_commands.add_parser("clear", help="delete cached files")
    for sub in (cache_info, cache_clear):
        sub.add_argument(
            "--dir", metavar="DIR", help="the cache directory (default: $RANGEIO_CACHE_DIR)"
        )
    cache_info.add_argument("--json", action="store_true")
    cache_info.set_defaults(handler=cmd_cache_info)
    cache_clear.add_argument(
        "--older-than",
        type=_age,
        metavar="AGE",
        help="only files not used for AGE (30s, 15m, 12h, 7d)",
    )
    cache_clear.set_defaults(handler=cmd_cache_clear)

    demo = commands.add_parser("demo", help="run the demo against an embedded loopback server")
    demo.set_defaults(handler=cmd_demo)
    return parser


class _Interrupted(KeyboardInterrupt):
    """Ctrl-C during ``get``, with the bytes a rerun would resume from (read back from disk)."""

    def __init__(self, saved: int) -> None:
        super().__init__(saved)
        self.saved = saved


def _interrupted(exc: KeyboardInterrupt) -> None:
    """Ctrl-C: rangeio has checkpointed by now. Say "progress saved" only when a rerun would
    resume from it, then leave at once, without waiting for worker threads still blocked on
    the network."""
    if not isinstance(exc, _Interrupted):
        message = "interrupted"
    elif exc.saved > 0:
        message = (
            f"interrupted; progress saved ({_human(exc.saved)}), run the command again to resume"
        )
    else:
        message = "interrupted; no progress was saved"
    try:
        sys.stderr.write(f"\nrangeio: {message}\n")
        sys.stderr.flush()
        sys.stdout.flush()
    except Exception:
        pass
    os._exit(EXIT_INTERRUPTED)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        handler: Callable[[argparse.Namespace], int] = args.handler
        return handler(args)
    except KeyboardInterrupt as exc:
        _interrupted(exc)
        return EXIT_INTERRUPTED  # pragma: no cover - _interrupted does not return
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        print(f"rangeio: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RefusedError as exc:
        print(f"rangeio: {exc}", file=sys.stderr)
        return EXIT_EXISTS
    except BrokenPipeError:
        # The reader went away (`rangeio cat URL | head`): say nothing, like curl's 23.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except OSError:
            pass
        return EXIT_WRITE
    except (RangeioError, OSError) as exc:
        code = exit_code(exc)
        hint = " (run the command again to resume)" if code == EXIT_PARTIAL else ""
        print(f"rangeio: error: {exc}{hint}", file=sys.stderr)
        return code


def run() -> None:
    """The console script's entry point."""
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()
