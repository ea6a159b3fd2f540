"""The commands: get, cat, info, zip ls/get, cache info/clear, demo; each imports what it uses."""

from __future__ import annotations

import argparse
import os
import sys

import rangeio
from rangeio.cli.exits import (
    EXIT_ERROR,
    EXIT_NO_MEMBER,
    EXIT_OK,
    Interrupted,
    RefusedError,
    UsageError,
)
from rangeio.cli.names import remote_filename
from rangeio.cli.progress import Progress, human

TYPE_CHECKING = False  # not typing's: see rangeio/cli/__init__.py
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path
    from typing import IO, Any

CHUNK = 256 * 1024


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


def common_options(args: argparse.Namespace) -> dict[str, Any]:
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
    data["dropped_mirrors"] = [
        {"url": d.url, "reason": d.reason.value, "detail": d.detail} for d in result.dropped_mirrors
    ]
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

    if args.input_file is not None:
        if args.url or args.output is not None or args.sha256 is not None:
            raise UsageError("-i takes the URLs from its file: no URL, -o or --sha256 beside it")
        from rangeio.cli.many import get_many

        return get_many(args)
    if not args.url:
        raise UsageError("get needs a URL (or -i FILE)")
    if args.jobs is not None or args.dir is not None:
        raise UsageError("-j and -d go with -i")
    urls: list[str] = args.url
    options = common_options(args)
    if args.output is not None:
        dest = Path(args.output)
    else:
        dest = Path(remote_filename(urls[0], options))
    _prepare_output(dest, args.force)
    progress: Progress | None = None
    if not args.quiet and sys.stderr.isatty():
        progress = Progress(sys.stderr, dest.name)
    try:
        result = rangeio.download(
            urls if len(urls) > 1 else urls[0],
            dest,
            connections=args.connections,
            sha256=args.sha256,
            on_progress=progress,
            **options,
        )
    except KeyboardInterrupt as exc:
        # The download checkpointed before unwinding; what the disk now holds is the truth.
        raise Interrupted(saved_progress(urls, dest)) from exc
    finally:
        if progress is not None:
            progress.close()
    if args.json:
        print(json.dumps(_result_json(result), indent=2))
    elif not args.quiet:
        print(summary(result), file=sys.stderr)
    return EXIT_OK


def summary(result: rangeio.DownloadResult) -> str:
    """The line ``get`` prints for a finished file."""
    reused = f", {human(result.bytes_reused)} reused" if result.bytes_reused else ""
    return (
        f"{result.path}: {human(result.size)} in {result.elapsed:.1f}s "
        f"({result.requests} requests{reused}) sha256 {result.sha256}"
    )


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
    options = common_options(args)
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


def gather_info(url: str, options: dict[str, Any], max_ranges: int = 2) -> dict[str, Any]:
    """What ``info`` prints: ``rangeio.probe``'s facts, as JSON-ready values."""
    facts = rangeio.probe(url, max_ranges=max_ranges, **options)
    etag_kind = None if facts.etag is None else "weak" if facts.etag_weak else "strong"
    return {
        "url": facts.url,
        "final_url": facts.final_url,
        "size": facts.size,
        "etag": facts.etag,
        "etag_kind": etag_kind,
        "last_modified": facts.last_modified,
        "content_type": facts.content_type,
        "accept_ranges": facts.header("Accept-Ranges"),
        "ranges": facts.ranges,
        "suffix_ranges": facts.suffix_ranges,
        "multipart": facts.multipart,
        "max_ranges": facts.max_ranges,
        "refused_ranges": facts.refused_ranges,
        "redirects": [
            {"status": hop.status, "url": hop.url, "location": hop.location}
            for hop in facts.redirects
        ],
        "requests": facts.requests,
        "first_byte_seconds": facts.first_byte,
        "elapsed_seconds": facts.elapsed,
    }


def _seconds(value: float | None) -> str:
    return "unknown" if value is None else f"{value * 1000:.1f} ms"


def cmd_info(args: argparse.Namespace) -> int:
    import json

    if args.max_ranges == 1:
        raise UsageError("--max-ranges must be 0 or at least 2")
    info = gather_info(args.url, common_options(args), args.max_ranges)
    if args.json:
        print(json.dumps(info, indent=2))
        return EXIT_OK

    def yes_no(value: bool | None) -> str:
        return "unknown" if value is None else "yes" if value else "no"

    lines = [
        ("URL", info["url"]),
        ("final URL", info["final_url"]),
        ("size", "unknown" if info["size"] is None else f"{info['size']} ({human(info['size'])})"),
        ("ETag", f"{info['etag']} ({info['etag_kind']})" if info["etag"] else "none"),
        ("Last-Modified", info["last_modified"] or "none"),
        ("Content-Type", info["content_type"] or "unknown"),
        ("ranges", yes_no(info["ranges"])),
        ("suffix ranges", yes_no(info["suffix_ranges"])),
        ("multipart ranges", yes_no(info["multipart"])),
    ]
    if info["max_ranges"] is not None:
        refused = info["refused_ranges"]
        cap = f"{info['max_ranges']} answered" + (f", {refused} refused" if refused else "")
        lines.append(("ranges per request", cap))
    lines += [
        ("redirects", str(len(info["redirects"]))),
        ("requests", str(info["requests"])),
        ("first byte", _seconds(info["first_byte_seconds"])),
        ("elapsed", _seconds(info["elapsed_seconds"])),
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

    with ZipStream(args.url, **common_options(args)) as archive:
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

    with ZipStream(args.url, **common_options(args)) as archive:
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


def age(text: str) -> float:
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
        print(f"size     {human(info.bytes)}")
    return EXIT_OK


def cmd_cache_clear(args: argparse.Namespace) -> int:
    store = _cache_store(args)
    freed = store.clear(args.older_than)
    print(f"freed {human(freed)}", file=sys.stderr)
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from rangeio import demo

    return EXIT_OK if demo.main() == 0 else EXIT_ERROR  # a job whose check failed
