"""The rangeio command line, end to end: `python -m rangeio` in a subprocess against a FaultServer."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

import rangeio
from rangeio import cli
from rangeio.cli import exits
from rangeio.testing import FaultServer
from rangeio.testing.server import Faults
from tests.conftest import make_bytes
from tests.poll import wait_until

SRC = str(Path(__file__).resolve().parents[1] / "src")
DATA = make_bytes(300_000, seed=11)
SMALL = b"0123456789abcdefghij"
BIG = make_bytes(2 * 1024 * 1024, seed=12)


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.txt", b"hello\n" * 10)
        archive.writestr("dir/b.bin", make_bytes(1000, seed=3))
    return buf.getvalue()


ZIP = _zip()


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("PYTHONWARNINGS", None)
    return env


def rangeio_cli(*args: str, cwd: Path, timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "rangeio", *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        timeout=timeout,
    )


def popen(
    *args: str, cwd: Path, stdout: int | IO[Any] | None, stderr: int | IO[Any] | None
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "rangeio", *args], cwd=cwd, env=_env(), stdout=stdout, stderr=stderr
    )


@pytest.fixture
def server() -> Iterator[FaultServer]:
    files = {"/files/data.bin": DATA, "/small.txt": SMALL, "/big.bin": BIG, "/a.zip": ZIP}
    with FaultServer(files) as srv:
        yield srv


def test_get_saves_the_bytes_and_prints_json(server: FaultServer, tmp_path: Path) -> None:
    done = rangeio_cli("get", server.url("/files/data.bin"), "--json", "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "data.bin").read_bytes() == DATA
    result = json.loads(done.stdout)
    assert result["path"] == "data.bin"
    assert result["size"] == len(DATA)
    assert result["sha256"] == hashlib.sha256(DATA).hexdigest()
    assert result["etag"] == server.etag("/files/data.bin")
    assert not (tmp_path / "data.bin.part").exists()


def test_get_with_output_and_checksum(server: FaultServer, tmp_path: Path) -> None:
    digest = hashlib.sha256(SMALL).hexdigest()
    done = rangeio_cli(
        "get",
        server.url("/small.txt"),
        "-o",
        "out.txt",
        "--sha256",
        digest,
        "-c",
        "2",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out.txt").read_bytes() == SMALL


def test_exit_code_for_http_404(server: FaultServer, tmp_path: Path) -> None:
    done = rangeio_cli("get", server.url("/missing"), "-q", "--retries", "0", cwd=tmp_path)
    assert done.returncode == 22
    assert b"404" in done.stderr
    assert not (tmp_path / "missing").exists()


def test_speed_floor_flags_stop_a_drip(server: FaultServer, tmp_path: Path) -> None:
    """curl's -Y/-y: a body dripping a byte every 0.2 s passes the 5 s read timeout, but not a
    floor of 100 bytes/s over 1 s: the download stops as partial (18: run it again to resume)."""
    server.faults = Faults(drip=0.2)
    done = rangeio_cli(
        "get", server.url("/small.txt"), "-q", "--retries", "0", "--timeout", "5",
        "-Y", "100", "-y", "1", "-o", "out", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 18, done.stderr
    assert b"low_speed" in done.stderr
    assert (tmp_path / "out.part").exists()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], None),
        (["--timeout", "5"], rangeio.Timeout(5.0, 5.0, head=5.0)),
        (["-Y", "10"], rangeio.Timeout(low_speed=rangeio.LowSpeed(10, 60.0))),
        (["-y", "7"], rangeio.Timeout(low_speed=rangeio.LowSpeed(1024, 7.0))),
        (["-y", "0", "-Y", "10"], rangeio.Timeout(low_speed=None)),
    ],
)
def test_timeout_flags_make_one_timeout(argv: list[str], expected: rangeio.Timeout | None) -> None:
    args = cli.build_parser().parse_args(["get", "http://127.0.0.1/x", *argv])
    assert cli.common_options(args).get("timeout") == expected


def test_exit_code_for_a_bad_url(tmp_path: Path) -> None:
    assert rangeio_cli("get", "ftp://example.com/x", "-q", cwd=tmp_path).returncode == 3
    assert rangeio_cli("cat", "not a url", cwd=tmp_path).returncode == 3


def test_exit_code_for_connection_refused(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port now.
    done = rangeio_cli("get", f"http://127.0.0.1:{port}/x", "-q", "--retries", "0", cwd=tmp_path)
    assert done.returncode == 7, done.stderr


def test_exit_code_for_checksum_mismatch(server: FaultServer, tmp_path: Path) -> None:
    done = rangeio_cli("get", server.url("/small.txt"), "-q", "--sha256", "0" * 64, cwd=tmp_path)
    assert done.returncode == 50
    assert not (tmp_path / "small.txt").exists()
    assert (tmp_path / "small.txt.part").read_bytes() == SMALL


def test_usage_errors_exit_2(server: FaultServer, tmp_path: Path) -> None:
    assert rangeio_cli("get", cwd=tmp_path).returncode == 2
    assert rangeio_cli("get", server.url("/small.txt"), "-H", "bad", cwd=tmp_path).returncode == 2
    assert rangeio_cli("cat", server.url("/small.txt"), "-r", "9-2", cwd=tmp_path).returncode == 2


def test_refuses_to_overwrite_unless_forced(server: FaultServer, tmp_path: Path) -> None:
    target = tmp_path / "small.txt"
    target.write_bytes(b"precious")
    done = rangeio_cli("get", server.url("/small.txt"), "-q", cwd=tmp_path)
    assert done.returncode == 73
    assert target.read_bytes() == b"precious"
    done = rangeio_cli("get", server.url("/small.txt"), "-q", "-o", "small.txt", cwd=tmp_path)
    assert done.returncode == 73
    done = rangeio_cli("get", server.url("/small.txt"), "-q", "--force", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert target.read_bytes() == SMALL


def test_content_disposition_cannot_escape_the_directory(
    server: FaultServer, tmp_path: Path
) -> None:
    evil = 'attachment; filename="../../evil.sh"'
    server.set_faults("/files/data.bin", Faults(extra_headers=(("Content-Disposition", evil),)))
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    done = rangeio_cli("get", server.url("/files/data.bin"), "-q", cwd=work)
    assert done.returncode == 0, done.stderr
    assert (work / "evil.sh").read_bytes() == DATA
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b", "evil.sh"]


def test_interrupted_get_exits_130_and_resumes(server: FaultServer, tmp_path: Path) -> None:
    server.faults = Faults(throttle=400_000)
    child = popen(
        "get",
        server.url("/big.bin"),
        "-q",
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    part = tmp_path / "big.bin.part"

    def written(n: int) -> bool:
        # The .part is preallocated: bytes are there once they equal the file's (random) bytes.
        if not part.exists():
            return False
        with part.open("rb") as f:
            return f.read(n) == BIG[:n]

    # Interrupt mid-body, once bytes were written (the throttled body takes seconds).
    wait_until(lambda: written(64 * 1024), "the download's first bytes on disk")
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=10)
    assert child.returncode == 130, stderr
    assert part.exists()
    assert not (tmp_path / "big.bin").exists()

    server.faults = None
    server.clear_log()
    done = rangeio_cli("get", server.url("/big.bin"), "-q", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "big.bin").read_bytes() == BIG
    resumes = [
        r.range for r in server.requests if r.range and re.fullmatch(r"bytes=[1-9]\d*-", r.range)
    ]
    assert resumes, [r.range for r in server.requests]
    assert json.loads(done.stdout)["bytes_reused"] > 0


def test_cat_ranges(server: FaultServer, tmp_path: Path) -> None:
    url = server.url("/small.txt")
    assert rangeio_cli("cat", url, cwd=tmp_path).stdout == SMALL
    assert rangeio_cli("cat", url, "-r", "2-5", cwd=tmp_path).stdout == SMALL[2:6]
    assert rangeio_cli("cat", url, "-r", "-4", cwd=tmp_path).stdout == SMALL[-4:]
    assert rangeio_cli("cat", url, "-r", "15-", cwd=tmp_path).stdout == SMALL[15:]
    big = rangeio_cli("cat", server.url("/big.bin"), "-r", "1000-1999999", cwd=tmp_path)
    assert big.returncode == 0
    assert big.stdout == BIG[1000:2_000_000]


def test_info_json(server: FaultServer, tmp_path: Path) -> None:
    done = rangeio_cli("info", server.url("/files/data.bin"), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["size"] == len(DATA)
    assert info["etag"] == server.etag("/files/data.bin")
    assert info["etag_kind"] == "strong"
    assert info["last_modified"]
    assert info["suffix_ranges"] is True
    assert info["multipart"] is True
    assert info["requests"] == 2

    server.set_faults("/small.txt", Faults(suffix_501=True))
    info = json.loads(rangeio_cli("info", server.url("/small.txt"), "--json", cwd=tmp_path).stdout)
    assert info["size"] == len(SMALL)
    assert info["suffix_ranges"] is False
    # The probe asks for two ranges of its own (not through a file that merges close ones), so
    # even 20 bytes tell.
    assert info["multipart"] is True
    assert info["ranges"] is True


def test_zip_ls_and_get(server: FaultServer, tmp_path: Path) -> None:
    url = server.url("/a.zip")
    done = rangeio_cli("zip", "ls", url, "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    members = json.loads(done.stdout)
    assert [(m["name"], m["size"]) for m in members] == [("a.txt", 60), ("dir/b.bin", 1000)]
    text = rangeio_cli("zip", "ls", url, cwd=tmp_path).stdout.decode()
    assert "dir/b.bin" in text
    assert rangeio_cli("zip", "get", url, "a.txt", cwd=tmp_path).stdout == b"hello\n" * 10
    done = rangeio_cli("zip", "get", url, "dir/b.bin", "-o", "b.bin", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "b.bin").read_bytes() == make_bytes(1000, seed=3)
    assert rangeio_cli("zip", "get", url, "nope", cwd=tmp_path).returncode == 66
    assert rangeio_cli("zip", "ls", server.url("/small.txt"), cwd=tmp_path).returncode == 65


def test_progress_bar_only_on_a_terminal(server: FaultServer, tmp_path: Path) -> None:
    pytest.importorskip("tqdm")
    master, slave = os.openpty()
    try:
        child = popen(
            "get",
            server.url("/files/data.bin"),
            "-o",
            "tty.bin",
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=slave,
        )
    finally:
        os.close(slave)
    output = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(master)
    assert child.wait(timeout=30) == 0, output
    assert re.search(rb"100%|B/s", output), output
    assert (tmp_path / "tty.bin").read_bytes() == DATA

    piped = rangeio_cli("get", server.url("/files/data.bin"), "-o", "pipe.bin", cwd=tmp_path)
    assert piped.returncode == 0
    assert b"%" not in piped.stderr and b"B/s" not in piped.stderr
    quiet = rangeio_cli("get", server.url("/files/data.bin"), "-o", "q.bin", "-q", cwd=tmp_path)
    assert quiet.returncode == 0 and quiet.stderr == b""


def test_help_documents_exit_codes(tmp_path: Path) -> None:
    done = rangeio_cli("--help", cwd=tmp_path)
    assert done.returncode == 0
    assert b"130" in done.stdout and b"refusing to overwrite" in done.stdout


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("../../evil.sh", "evil.sh"),
        ("/etc/passwd", "passwd"),
        ("..\\..\\win.exe", "win.exe"),
        ("..", "download"),
        ("", "download"),
        (None, "download"),
        ("a\x00b\x1b[31m\nc.txt", "ab[31mc.txt"),
        (".bashrc", "bashrc"),
        ("dir/", "dir"),
        ("x" * 300 + ".tar.gz", "x" * 197 + ".gz"),
    ],
)
def test_sanitize_filename(raw: str | None, expected: str) -> None:
    from rangeio.cli import sanitize_filename

    assert sanitize_filename(raw) == expected


def test_content_disposition_and_url_names() -> None:
    from rangeio.cli import content_disposition_filename, url_filename

    assert content_disposition_filename('attachment; filename="a b.txt"') == "a b.txt"
    assert (
        content_disposition_filename("attachment; filename*=UTF-8''%C3%A9t%C3%A9.txt") == "été.txt"
    )
    assert content_disposition_filename("inline") is None
    assert url_filename("http://h/dir/na%20me.bin?x=1#f") == "na me.bin"
    assert url_filename("http://h/") is None


def test_plain_progress_without_tqdm(monkeypatch: pytest.MonkeyPatch) -> None:
    from rangeio.cli import Progress

    monkeypatch.setitem(sys.modules, "tqdm", None)
    stream = io.StringIO()
    progress = Progress(stream, "x")
    progress(0, 2048)
    progress(2048, 2048)
    progress.close()
    assert "100.0%" in stream.getvalue() and "B/s" in stream.getvalue()


def test_runs_without_docstrings(tmp_path: Path) -> None:
    """`python -OO` strips docstrings; the CLI's help must not depend on them."""
    done = subprocess.run(
        [sys.executable, "-OO", "-m", "rangeio", "get", "--help"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert b"130  interrupted" in done.stdout


def test_exit_code_table_has_one_source() -> None:
    """The package docstring and --help both render rangeio.cli.exits.EXIT_CODES_HELP."""
    from rangeio.cli import exits

    assert cli.__doc__ is not None and cli.__doc__.endswith(exits.EXIT_CODES_HELP)
    assert exits.EXIT_CODES_HELP in cli.build_parser().format_help()
    for name in dir(exits):
        if name.startswith("EXIT_") and name != "EXIT_CODES_HELP":
            code = getattr(exits, name)
            assert re.search(rf"^\s+{code}  ", exits.EXIT_CODES_HELP, re.M), name


# -- mirrors and lists (get URL1 URL2, get -i) -----------------------------------------------


# Large enough for two default segments (4 MiB each), so both mirrors are asked.
HUGE = make_bytes(9 * 1024 * 1024, seed=13)


def test_get_with_two_mirrors_saves_one_file(tmp_path: Path) -> None:
    with FaultServer({"/big.bin": HUGE}) as server, FaultServer({"/big.bin": HUGE}) as mirror:
        server.faults = mirror.faults = Faults(throttle=8 * 1024 * 1024)
        done = rangeio_cli(
            "get", server.url("/big.bin"), mirror.url("/big.bin"), "-o", "out.bin",
            "-c", "2", "--json", "-q", cwd=tmp_path,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert (tmp_path / "out.bin").read_bytes() == HUGE
        assert json.loads(done.stdout)["dropped_mirrors"] == []
        assert [r for r in mirror.requests if r.method == "GET"], "the mirror served bytes"


def test_get_drops_a_mirror_with_other_bytes(tmp_path: Path) -> None:
    other = bytes(reversed(HUGE))
    with FaultServer({"/big.bin": HUGE}) as server, FaultServer({"/big.bin": other}) as bad:
        server.faults = Faults(throttle=8 * 1024 * 1024)
        done = rangeio_cli(
            "get", server.url("/big.bin"), bad.url("/big.bin"), "-o", "out.bin", "-c", "2",
            "--json", "-q", cwd=tmp_path,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert (tmp_path / "out.bin").read_bytes() == HUGE
        dropped = json.loads(done.stdout)["dropped_mirrors"]
        assert [(d["url"], d["reason"]) for d in dropped] == [(bad.url("/big.bin"), "etag")]
        assert b"dropped (etag)" in done.stderr  # the logged reason


def test_get_input_file_downloads_every_line_and_resumes_on_a_rerun(
    server: FaultServer, tmp_path: Path
) -> None:
    with FaultServer({"/big.bin": BIG}) as mirror:
        listing = tmp_path / "urls.txt"
        listing.write_text(
            "# a comment, then a blank line\n\n"
            f"{server.url('/files/data.bin')}\n"
            f"{server.url('/small.txt')}  renamed.txt\n"
            f"{server.url('/big.bin')}\t{mirror.url('/big.bin')}\n"
            f"{server.url('/later.bin')}\n"
        )
        out = tmp_path / "out"
        out.mkdir()
        done = rangeio_cli(
            "get", "-i", str(listing), "-j", "2", "-d", str(out), "--retries", "0", cwd=tmp_path
        )
        # One line failed (404): its code is the exit code, the others are saved.
        assert done.returncode == exits.EXIT_HTTP, done.stderr
        assert (out / "data.bin").read_bytes() == DATA
        assert (out / "renamed.txt").read_bytes() == SMALL
        assert (out / "big.bin").read_bytes() == BIG
        assert not (out / "later.bin").exists()
        assert b"1 of 4 downloads failed" in done.stderr
        server.add_file("/later.bin", SMALL)
        server.clear_log()
        again = rangeio_cli("get", "-i", str(listing), "-d", str(out), "--json", cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        assert (out / "later.bin").read_bytes() == SMALL
        documents = json.loads(again.stdout)
        assert [d.get("skipped", False) for d in documents] == [True, True, True, False]
        # A saved file costs only the probe that names it (one request), never a download.
        others = [r.path for r in server.requests if r.path != "/later.bin"]
        assert sorted(others) == ["/big.bin", "/files/data.bin"]


def test_get_input_file_refuses_a_line_without_a_url(tmp_path: Path) -> None:
    (tmp_path / "urls.txt").write_text("just-a-name\n")
    done = rangeio_cli("get", "-i", "urls.txt", cwd=tmp_path)
    assert done.returncode == exits.EXIT_USAGE and b"line 1" in done.stderr
    both = rangeio_cli("get", "-i", "urls.txt", "http://127.0.0.1:1/x", cwd=tmp_path)
    assert both.returncode == exits.EXIT_USAGE


def test_parse_list_reads_mirrors_names_and_comments() -> None:
    from rangeio.cli.many import parse_list

    items = parse_list(
        "#c\n http://a/x#frag \n\nhttp://a/y\thttp://b/y  y.bin\nhttp://a/z ../../etc/z\n"
    )
    assert [(i.urls, i.name, i.line) for i in items] == [
        (["http://a/x#frag"], None, 2),
        (["http://a/y", "http://b/y"], "y.bin", 4),
        (["http://a/z"], "z", 5),  # a name is sanitised: never a path
    ]
    with pytest.raises(exits.UsageError):
        parse_list("http://a/x name other\n")


def test_get_input_file_refuses_one_files_options(tmp_path: Path) -> None:
    (tmp_path / "urls.txt").write_text("http://127.0.0.1:1/x\n")
    for extra in (["-o", "f"], ["--sha256", "0" * 64]):
        done = rangeio_cli("get", "-i", "urls.txt", *extra, cwd=tmp_path)
        assert done.returncode == exits.EXIT_USAGE, extra
    alone = rangeio_cli("get", "http://127.0.0.1:1/x", "-j", "2", cwd=tmp_path)
    assert alone.returncode == exits.EXIT_USAGE


def test_get_input_file_resumes_a_cut_file_on_a_rerun(server: FaultServer, tmp_path: Path) -> None:
    listing = tmp_path / "urls.txt"
    listing.write_text(f"{server.url('/big.bin')} big.bin\n{server.url('/small.txt')}\n")
    server.faults = Faults(truncate_after=700_000, times=1)  # the first answer is cut
    cut = rangeio_cli("get", "-i", str(listing), "-j", "1", "--retries", "0", cwd=tmp_path)
    assert cut.returncode == exits.EXIT_PARTIAL, cut.stderr
    assert (tmp_path / "big.bin.part").exists() and (tmp_path / "small.txt").read_bytes() == SMALL
    again = rangeio_cli("get", "-i", str(listing), "--json", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "big.bin").read_bytes() == BIG
    first, second = json.loads(again.stdout)
    assert first["bytes_reused"] > 0 and first["bytes_reused"] + first["bytes_transferred"] == len(
        BIG
    )
    assert second == {"url": server.url("/small.txt"), "path": "small.txt", "skipped": True}
