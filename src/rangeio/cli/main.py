"""The parser and main(): arguments to a command, errors to exit codes, Ctrl-C to 130."""

from __future__ import annotations

import argparse
import os
import sys

import rangeio
from rangeio.cli.commands import (
    age,
    cmd_cache_clear,
    cmd_cache_info,
    cmd_cat,
    cmd_demo,
    cmd_get,
    cmd_info,
    cmd_zip_get,
    cmd_zip_ls,
)
from rangeio.cli.exits import (
    EPILOG,
    EXIT_EXISTS,
    EXIT_INTERRUPTED,
    EXIT_PARTIAL,
    EXIT_USAGE,
    EXIT_WRITE,
    Interrupted,
    RefusedError,
    UsageError,
    exit_code,
)
from rangeio.cli.progress import human
from rangeio.errors import RangeioError

TYPE_CHECKING = False  # not typing's: see rangeio/cli/__init__.py
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any


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
        epilog=EPILOG,
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"rangeio {rangeio.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    get = commands.add_parser(
        "get",
        help="download a file (resumable: run it again to resume)",
        epilog=EPILOG,
        formatter_class=formatter,
    )
    get.add_argument(
        "url",
        metavar="URL",
        nargs="*",
        help="the file's URL; several URLs are mirrors of one file (segments spread over them)",
    )
    get.add_argument(
        "-i",
        "--input-file",
        metavar="FILE",
        help="download every file listed in FILE ('-': stdin): one per line, its URL (several, "
        "separated by spaces or tabs: mirrors), optionally followed by the name to save to; "
        "lines starting with '#' are comments. A rerun resumes each file and skips those "
        "already saved",
    )
    get.add_argument(
        "-j",
        "--jobs",
        type=_positive_int,
        default=None,
        metavar="N",
        help="with -i, files downloaded at once (default 5, aria2c's -j)",
    )
    get.add_argument(
        "-d", "--dir", metavar="DIR", help="with -i, save into DIR (default: the current one)"
    )
    where = get.add_mutually_exclusive_group()
    where.add_argument("-o", "--output", metavar="FILE", help="save to FILE")
    where.add_argument(
        "-O",
        "--remote-name",
        action="store_true",
        help="save under the server's name (Content-Disposition, else the URL); the default",
    )
    get.add_argument(
        "-c",
        "--connections",
        type=_positive_int,
        default=1,
        metavar="N",
        help="connections per file (per mirror, with several URLs)",
    )
    get.add_argument("--sha256", metavar="HEX", help="expected SHA-256 of the whole file")
    _add_network_options(get)
    get.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no summary")
    get.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    get.add_argument("--force", action="store_true", help="overwrite an existing file")
    get.set_defaults(handler=cmd_get)

    cat = commands.add_parser(
        "cat",
        help="write bytes of a remote file to stdout",
        epilog=EPILOG,
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
        epilog=EPILOG,
        formatter_class=formatter,
    )
    info.add_argument("url", metavar="URL")
    info.add_argument("--json", action="store_true")
    info.add_argument(
        "--max-ranges",
        type=_non_negative_int,
        default=2,
        metavar="N",
        help="find the server's cap on ranges per request, up to N (default 2: only whether "
        "multipart works; 0: no multipart request)",
    )
    _add_network_options(info)
    info.set_defaults(handler=cmd_info)

    zip_parser = commands.add_parser("zip", help="list or extract members of a remote zip")
    zip_commands = zip_parser.add_subparsers(dest="zip_command", metavar="COMMAND", required=True)
    zip_ls = zip_commands.add_parser(
        "ls", help="list the members", epilog=EPILOG, formatter_class=formatter
    )
    zip_ls.add_argument("url", metavar="URL")
    zip_ls.add_argument("--json", action="store_true")
    _add_network_options(zip_ls)
    zip_ls.set_defaults(handler=cmd_zip_ls)
    zip_get = zip_commands.add_parser(
        "get", help="extract one member", epilog=EPILOG, formatter_class=formatter
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
        type=age,
        metavar="AGE",
        help="only files not used for AGE (30s, 15m, 12h, 7d)",
    )
    cache_clear.set_defaults(handler=cmd_cache_clear)

    demo = commands.add_parser("demo", help="run the demo against an embedded loopback server")
    demo.set_defaults(handler=cmd_demo)
    return parser


def _interrupted(exc: KeyboardInterrupt) -> None:
    """Ctrl-C: rangeio has checkpointed by now. Say "progress saved" only when a rerun would
    resume from it, then leave at once, without waiting for worker threads still blocked on
    the network."""
    if not isinstance(exc, Interrupted):
        message = "interrupted"
    elif exc.saved > 0:
        message = (
            f"interrupted; progress saved ({human(exc.saved)}), run the command again to resume"
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
