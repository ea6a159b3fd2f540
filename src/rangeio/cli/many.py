"""``get -i FILE``: many downloads from a list, a bounded number at once, each resumable through its own ``.part``."""

from __future__ import annotations

import sys

import rangeio
from rangeio.cli.exits import EXIT_OK, Interrupted, UsageError, exit_code
from rangeio.cli.names import remote_filename, sanitize_filename

TYPE_CHECKING = False  # not typing's: see rangeio/cli/__init__.py
if TYPE_CHECKING:
    import argparse
    from pathlib import Path
    from typing import Any

# Files downloaded at once: aria2c's -j default (--max-concurrent-downloads=5). Each has its
# own connections (-c), so the sockets open at once are at most jobs x connections x mirrors.
DEFAULT_JOBS = 5


class Item:
    """One line of the list: the URLs of one file (mirrors) and the name it is saved to
    (None: the server's name, as ``get`` picks it)."""

    def __init__(self, urls: list[str], name: str | None, line: int) -> None:
        self.urls = urls
        self.name = name
        self.line = line


def parse_list(text: str) -> list[Item]:
    """The items of a list: a line is its URLs (anything with ``://``, separated by spaces or
    tabs; several are mirrors of one file, as in aria2c's -i) and optionally, last, the name to
    save to. Blank lines and lines starting with ``#`` are skipped (a ``#`` further on may be
    a URL's fragment). A line with no URL, or with more than one name, is a usage error that
    names the line."""
    items: list[Item] = []
    for number, raw in enumerate(text.splitlines(), 1):
        words = raw.split()
        if not words or words[0].startswith("#"):
            continue
        urls = [w for w in words if "://" in w]
        names = [w for w in words if "://" not in w]
        if not urls:
            raise UsageError(f"line {number} of the list has no URL: {raw.strip()[:80]!r}")
        if len(names) > 1 or (names and words[-1] != names[0]):
            raise UsageError(f"line {number}: one name, after the URLs, at most: {raw[:80]!r}")
        items.append(Item(urls, sanitize_filename(names[0]) if names else None, number))
    return items


def _read_list(where: str) -> str:
    if where == "-":
        return sys.stdin.read()
    try:
        with open(where, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise UsageError(f"cannot read {where}: {exc}") from None


def get_many(args: argparse.Namespace) -> int:
    """Download every item, ``args.jobs`` at once. A file already saved (no ``.part`` beside
    it) is skipped, so a rerun after a crash or a failure finishes only what is left (and
    ``--force`` downloads it again). Returns 0 when every item is saved, else the exit code
    of the first failed item in the list's order (deterministic, whatever finished first)."""
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path

    from rangeio.cli.commands import _result_json, common_options, summary

    items = parse_list(_read_list(args.input_file))
    options = common_options(args)
    folder = Path(args.dir) if args.dir is not None else Path(".")
    jobs = args.jobs or DEFAULT_JOBS
    outcomes: dict[int, tuple[Path, Any]] = {}
    started: dict[int, Path] = {}  # the items whose destination is known, finished or not

    def one(index: int) -> None:
        item = items[index]
        name = item.name or remote_filename(item.urls[0], options)
        dest = started[index] = folder / name
        try:
            outcomes[index] = (dest, _get_one(item, dest, args, options))
        except (rangeio.RangeioError, OSError) as exc:
            outcomes[index] = (dest, exc)

    pool = ThreadPoolExecutor(max_workers=min(jobs, max(len(items), 1)))
    try:
        futures = [pool.submit(one, i) for i in range(len(items))]
        for future in futures:
            future.result()
    except KeyboardInterrupt as exc:
        # Each download checkpointed as it went (the policy's interval); a rerun resumes them.
        pool.shutdown(wait=False, cancel_futures=True)
        raise Interrupted(_saved(items, started, outcomes)) from exc
    pool.shutdown()
    return _report(items, outcomes, args, _result_json, summary)


def _get_one(item: Item, dest: Path, args: argparse.Namespace, options: dict[str, Any]) -> Any:
    """One item's download, or "skipped" for a file already saved."""
    import os

    part = dest.with_name(dest.name + ".part")
    if os.path.lexists(dest) and not os.path.lexists(part):
        if not args.force:
            return "skipped"
        dest.unlink()
    return rangeio.download(
        item.urls if len(item.urls) > 1 else item.urls[0],
        dest,
        connections=args.connections,
        sha256=args.sha256,
        **options,
    )


def _saved(
    items: list[Item], started: dict[int, Path], outcomes: dict[int, tuple[Path, Any]]
) -> int:
    """The bytes a rerun resumes from, in every file begun and not saved (what the records say
    now: the downloads still running have checkpointed up to their last interval)."""
    from rangeio._sync.download import saved_progress

    total = 0
    for index, dest in list(started.items()):
        finished = outcomes.get(index)
        if finished is None or isinstance(finished[1], BaseException):
            total += saved_progress(items[index].urls, dest)
    return total


def _report(
    items: list[Item],
    outcomes: dict[int, tuple[Path, Any]],
    args: argparse.Namespace,
    as_json: Any,
    summary: Any,
) -> int:
    import json

    code = EXIT_OK
    failed = 0
    documents: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        dest, outcome = outcomes[index]
        if isinstance(outcome, BaseException):
            failed += 1
            if code == EXIT_OK:
                code = exit_code(outcome)
            print(f"rangeio: error: {' '.join(item.urls)}: {outcome}", file=sys.stderr)
            documents.append({"url": item.urls[0], "path": str(dest), "error": str(outcome)})
        elif outcome == "skipped":
            if not args.quiet and not args.json:
                print(f"{dest}: already saved, skipped", file=sys.stderr)
            documents.append({"url": item.urls[0], "path": str(dest), "skipped": True})
        else:
            if not args.quiet and not args.json:
                print(summary(outcome), file=sys.stderr)
            documents.append(as_json(outcome))
    if args.json:
        print(json.dumps(documents, indent=2))
    if failed:
        print(f"rangeio: {failed} of {len(items)} downloads failed", file=sys.stderr)
    return code
