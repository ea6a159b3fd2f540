"""The ``rangeio`` command line (the rest of this docstring is rendered below, with the exit codes)."""

from __future__ import annotations

from rangeio.cli.commands import common_options, gather_info
from rangeio.cli.exits import EXIT_CODES_HELP, exit_code
from rangeio.cli.main import build_parser, main, run
from rangeio.cli.names import content_disposition_filename, sanitize_filename, url_filename
from rangeio.cli.progress import Progress

# The package's layout: exits.py (the codes, THE table, exit_code()), names.py (the name `get`
# saves to), progress.py (the bar), commands.py (one function per command), many.py
# (`get -i`), main.py (the parser, main()). A command imports what it uses when it runs: the start-up (`--version`,
# `--help`, a usage error) loads only argparse and the errors (benchmarks/startup.py). The
# modules use `TYPE_CHECKING = False`, not typing's: importing typing alone costs a tenth of it.
_USAGE = """The ``rangeio`` command line: resumable downloads, byte ranges to stdout, file facts, zip members.

Commands::

    rangeio get URL [URL...] [-o FILE | -O] [-c N] [--sha256 HEX] [--retries N] [-H 'Name: value']...
                    [--timeout SECONDS] [-Y BYTES] [-y SECONDS] [--cacert PATH | -k] [-q] [--json] [--force]
    rangeio get -i LIST [-j N] [-d DIR] [-c N] [...]
    rangeio cat URL [-r START-END | -r START- | -r -N]
    rangeio info URL [--json] [--max-ranges N]
    rangeio zip ls URL [--json]
    rangeio zip get URL MEMBER [-o FILE] [--force]
    rangeio cache info [--dir DIR] [--json]
    rangeio cache clear [--dir DIR] [--older-than AGE]
    rangeio demo

``get`` keeps its progress in ``FILE.part`` and ``FILE.part.ctrl``: after a failure or Ctrl-C,
running the same command again resumes. Without ``-o`` the name comes from the server's
Content-Disposition ``filename`` (else the URL's last path segment), reduced to a plain file name
in the current directory. An existing file is never overwritten without ``--force``.
Several URLs are mirrors of one file: segments spread over them (``-c`` connections each), and
one that disagrees with the first on size, strong ETag or digest is dropped, never spliced.
``get -i LIST`` downloads every line of LIST (URLs, mirrors of one file, then an optional
name), ``-j`` at once; a rerun resumes each and skips those saved; the exit code is the first
failed line's.

Exit codes (``--help`` prints the same table, from ``rangeio.cli.exits.EXIT_CODES_HELP``)::
"""
# Rendered, not written twice; assigned even under `python -OO` (a string, not a docstring).
__doc__ = _USAGE + EXIT_CODES_HELP

__all__ = [
    "EXIT_CODES_HELP",
    "Progress",
    "build_parser",
    "common_options",
    "content_disposition_filename",
    "exit_code",
    "gather_info",
    "main",
    "run",
    "sanitize_filename",
    "url_filename",
]
