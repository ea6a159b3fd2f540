"""The format scenarios (10, 11): rangeio.formats against remotezip, range-streams and a download.

10. ``zip-members``: a zip of thousands of deflated members (and one big stored one), listed
    and read through ``rangeio.formats.zip.ZipStream``, remotezip's ``RemoteZip`` and
    range-streams' ``ZipStream``: one member, then 50 spread over the archive.
11. ``conda-metadata``: a synthetic ``.conda`` package's metadata (``metadata.json`` and the
    ``info-*.tar.zst`` tarball) through ``rangeio.formats.conda.conda_info``, remotezip, and a
    whole-file download with urllib3 (what a tool without range requests does).

Every row is cold (a new archive object, a new HTTP session), runs through the same delaying
proxy, and has every extracted byte / parsed value compared with the source.
"""

from __future__ import annotations

import importlib.metadata
import io
import json
import random
import tarfile
import time
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fixtures import SEED
from harness import Meter, MiB, Row, VerificationError, check_equal, measure
from scenarios import Context, KiB, Scenario, judge

ZIP_NAME = "members.zip"
CONDA_NAME = "pkg-1.0-0.conda"
MANY = 50  # members read in the second part of scenario 10
# range-streams lists a zip with 2 sequential requests per member, and its per-request cost
# grows with the number of ranges it holds: its row stops after this long.
RANGE_STREAMS_BUDGET_S = 30.0
RANGE_STREAMS_BUDGET_QUICK_S = 10.0


# -- fixtures -------------------------------------------------------------------------------------


@dataclass
class MembersZip:
    data: bytes
    names: list[str]
    contents: dict[str, bytes]
    one: str  # the member read alone: a third of the way in
    many: list[str]  # MANY members spread over the archive
    big: str  # the stored member that makes the archive well over 1 MiB


@dataclass
class CondaPackage:
    data: bytes
    metadata: dict[str, Any]
    info_name: str
    info_files: dict[str, bytes]  # the info tarball's regular files
    payload_bytes: int


@dataclass
class FormatFixtures:
    members_zip: MembersZip | None = None
    conda: CondaPackage | None = None
    urls: dict[str, str] = field(default_factory=dict)

    def files(self) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        if self.members_zip is not None:
            out[ZIP_NAME] = self.members_zip.data
        if self.conda is not None:
            out[CONDA_NAME] = self.conda.data
        return out


def member_size(rng: random.Random) -> int:
    """Mostly small members, some medium, a few large: a dataset of mixed files."""
    roll = rng.random()
    if roll < 0.85:
        return rng.randint(100, 2 * KiB)
    if roll < 0.99:
        return rng.randint(2 * KiB, 16 * KiB)
    return rng.randint(32 * KiB, 128 * KiB)


def make_members_zip(members: int, big_bytes: int) -> MembersZip:
    """``members`` deflated members of hex text (about half compressible) and, in the middle,
    one stored member of ``big_bytes`` random bytes."""
    rng = random.Random(SEED + 10)
    buf = io.BytesIO()
    names: list[str] = []
    contents: dict[str, bytes] = {}
    big = "blobs/big-stored.bin"
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for i in range(members):
            if i == members // 2:
                body = rng.randbytes(big_bytes)
                zf.writestr(big, body, compress_type=zipfile.ZIP_STORED)
                names.append(big)
                contents[big] = body
            name = f"set/{i // 250:02d}/item-{i:05d}.txt"
            body = rng.randbytes(member_size(rng) // 2 + 1).hex().encode()
            zf.writestr(name, body)
            names.append(name)
            contents[name] = body
    small = [n for n in names if n != big]
    one = small[len(small) // 3]
    step = len(small) / MANY
    many = [small[int(i * step + step / 2)] for i in range(MANY)]
    return MembersZip(buf.getvalue(), names, contents, one, many, big)


def make_conda(payload_bytes: int) -> CondaPackage:
    """A .conda as conda's tools write it: a stored zip of metadata.json, the payload tarball
    (pkg-*.tar.zst, incompressible here) and the info tarball (info-*.tar.zst) last."""
    import zstandard

    rng = random.Random(SEED + 11)
    stem = "pkg-1.0-0"
    index = {
        "name": "pkg",
        "version": "1.0",
        "build": "0",
        "build_number": 0,
        "depends": ["python >=3.8", "numpy >=1.20"],
        "license": "MIT",
        "platform": "linux",
        "subdir": "linux-64",
        "timestamp": 1717200000000,
    }
    paths = {
        "paths_version": 1,
        "paths": [
            {
                "_path": f"lib/python3.11/site-packages/pkg/mod{i:03d}.py",
                "path_type": "hardlink",
                "sha256": rng.randbytes(32).hex(),
                "size_in_bytes": rng.randint(100, 100_000),
            }
            for i in range(200)
        ],
    }
    info_files = {
        "info/index.json": json.dumps(index, indent=2).encode(),
        "info/paths.json": json.dumps(paths, indent=2).encode(),
    }
    payload = {"lib/python3.11/site-packages/pkg/blob.bin": rng.randbytes(payload_bytes)}
    cctx = zstandard.ZstdCompressor(level=3)
    info_tar = cctx.compress(make_tar(info_files))
    pkg_tar = cctx.compress(make_tar(payload))
    metadata = {"conda_pkg_format_version": 2}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("metadata.json", json.dumps(metadata))
        zf.writestr(f"pkg-{stem}.tar.zst", pkg_tar)
        zf.writestr(f"info-{stem}.tar.zst", info_tar)
    return CondaPackage(buf.getvalue(), metadata, f"info-{stem}.tar.zst", info_files, len(pkg_tar))


def make_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, body in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            info.mtime = 1717200000
            tf.addfile(info, io.BytesIO(body))
    return buf.getvalue()


def build(keys: list[str], quick: bool) -> FormatFixtures:
    """The files the chosen format scenarios need (none when they are not chosen)."""
    fx = FormatFixtures()
    if "zip-members" in keys:
        # quick: fewer members, same shape (still well over rangeio's 1 MiB open prefetch)
        fx.members_zip = make_members_zip(1000 if quick else 4200, (2 if quick else 4) * MiB)
    if "conda-metadata" in keys:
        fx.conda = make_conda((3 if quick else 12) * MiB)
    return fx


@dataclass
class FormatContext(Context):
    """The shared Context plus the format fixtures (served next to the others by run.py) and
    why a format peer is unavailable (None: available), found once per run."""

    fixtures_formats: FormatFixtures = field(default_factory=FormatFixtures)
    quick: bool = False
    peer_reasons: dict[str, str | None] = field(default_factory=dict)


def formats_of(ctx: Context) -> FormatContext:
    if not isinstance(ctx, FormatContext):
        raise TypeError("the format scenarios need a FormatContext (see run.py)")
    return ctx


# -- peers ----------------------------------------------------------------------------------------


def version_of(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def remotezip_reason() -> str | None:
    """Why remotezip cannot run, or None."""
    try:
        importlib.import_module("remotezip")
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}; pip install remotezip"
    return None


def range_streams_reason() -> str | None:
    """Why range-streams cannot run (it needs httpx, pyzstd, python-ranges), or None."""
    try:
        importlib.import_module("httpx")
        importlib.import_module("range_streams.codecs")
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}; pip install range-streams"
    return None


def peer_versions() -> dict[str, str]:
    return {
        name: version_of(name)
        for name in ("remotezip", "range-streams", "httpx", "requests", "zstandard")
        if version_of(name) != "?"
    }


def timed(ctx: Context, name: str, run: Callable[[Meter, Row], None]) -> Row:
    ctx.progress(f"    {name} ...")
    return measure(ctx.proxy, name, run)


def check_members(library: str, source: MembersZip, names: list[str], got: list[bytes]) -> None:
    check_equal(library, "the number of members read", len(got), len(names))
    for name, data in zip(names, got):
        if data != source.contents[name]:
            raise VerificationError(
                f"{library}: member {name} differs ({len(data)} bytes for "
                f"{len(source.contents[name])})"
            )


# -- 10. zip-members ------------------------------------------------------------------------------


def zip_rows(ctx: Context, fx: MembersZip, url: str, wanted: list[str]) -> list[Row]:
    """One row per library: list the archive, read ``wanted`` (checked), all cold."""
    rows: list[Row] = []
    bulk = len(wanted) > 1

    def rangeio_body(meter: Meter, row: Row) -> None:
        from rangeio.formats.zip import ZipStream

        meter.start()
        with ZipStream(url) as z:
            meter.opened()
            names = [m.name for m in z.members()]
            got = z.read_many(wanted) if bulk else [z.read(wanted[0])]
            meter.stop()
            stats = z.stats
            row.library_stats = stats.as_dict() if stats is not None else None
        check_equal(row.library, "the member list", names, fx.names)
        check_members(row.library, fx, wanted, got)

    name = "rangeio ZipStream" + (" read_many" if bulk else "")
    rows.append(timed(ctx, name, rangeio_body))

    def rangeio_async_body(meter: Meter, row: Row) -> None:
        import asyncio

        import rangeio.aio

        async def main() -> tuple[list[str], list[bytes]]:
            meter.start()
            async with rangeio.aio.formats.zip.open(url) as z:
                meter.opened()
                names = z.namelist()
                got = await z.read_many(wanted) if bulk else [await z.read(wanted[0])]
                meter.stop()
                row.library_stats = z.stats.as_dict()
            return names, got

        names, got = asyncio.run(main())
        check_equal(row.library, "the member list", names, fx.names)
        check_members(row.library, fx, wanted, got)

    # The same programs on AsyncHttpFile: the same requests, awaited.
    name = "rangeio.aio.formats.zip" + (" read_many" if bulk else "")
    rows.append(timed(ctx, name, rangeio_async_body))

    def remotezip_body(meter: Meter, row: Row) -> None:
        from remotezip import RemoteZip

        meter.start()
        with RemoteZip(url) as z:
            meter.opened()
            names = z.namelist()
            got = [z.read(n) for n in wanted]
            meter.stop()
        check_equal(row.library, "the member list", names, fx.names)
        check_members(row.library, fx, wanted, got)

    if ctx_reason(ctx, "remotezip") is None:
        rows.append(timed(ctx, "remotezip", remotezip_body))

    def range_streams_body(meter: Meter, row: Row) -> None:
        import httpx

        client = httpx.Client()
        marks: list[float] = []  # when each request was started
        budget = range_streams_budget(ctx)
        listed = 0
        try:
            meter.start()
            deadline = time.perf_counter() + budget
            # scan_contents=True would also send one (unread) request per member, which
            # exhausts httpx's pool of 100 connections: list with check_central_dir_rec().
            zs = capped_range_streams_zip(url, client, deadline, marks)
            try:
                meter.opened()
                try:
                    zs.check_central_dir_rec()
                except OverBudget:
                    meter.stop()
                    listed = len(getattr(zs, "zipped_files", []))
                    row.extra["stopped_at_budget_s"] = budget
                    row.extra["entries_listed"] = listed
                    row.notes.append(
                        f"STOPPED at the {budget:g} s budget: listed {listed} of "
                        f"{len(fx.names)} entries, no member read"
                    )
                    return
                by_name = {info.filename: info for info in zs.zipped_files}
                names = [info.filename for info in zs.zipped_files]
                got = []
                for n in wanted:
                    # Its own decoder is zstd-only: fetch the raw range, inflate it here.
                    zs.add(by_name[n].file_range)
                    raw = zs.active_range_response.read()
                    got.append(zlib.decompressobj(-15).decompress(raw))
                meter.stop()
            finally:
                zs.close()
                pace = request_pace(marks)
                if pace:
                    row.notes.append(pace)
        finally:
            client.close()
        check_equal(row.library, "the member list", names, fx.names)
        check_members(row.library, fx, wanted, got)

    if ctx_reason(ctx, "range-streams") is None and not bulk:
        rows.append(timed(ctx, "range-streams", range_streams_body))
    return rows


def range_streams_budget(ctx: Context) -> float:
    return RANGE_STREAMS_BUDGET_QUICK_S if formats_of(ctx).quick else RANGE_STREAMS_BUDGET_S


class OverBudget(Exception):
    """range-streams ran out of its time budget."""


def capped_range_streams_zip(url: str, client: Any, deadline: float, marks: list[float]) -> Any:
    """range-streams' ZipStream (scan_contents=False), with every request (each ``add``)
    timestamped in ``marks`` and refused with OverBudget once ``deadline`` has passed."""
    from range_streams.codecs import ZipStream as RSZipStream

    class Capped(RSZipStream):  # type: ignore[misc]
        def add(self, *args: Any, **kwargs: Any) -> None:
            now = time.perf_counter()
            if now > deadline:
                raise OverBudget
            marks.append(now)
            super().add(*args, **kwargs)

    return Capped(url=url, client=client, scan_contents=False)


def request_pace(marks: list[float]) -> str:
    """How the time between requests changed over a run: the first and last 100."""
    n = min(100, (len(marks) - 1) // 2)
    if n < 10:
        return ""
    first = (marks[n] - marks[0]) / n * 1000
    last = (marks[-1] - marks[-1 - n]) / n * 1000
    return f"{len(marks)} requests, {first:.0f} ms apart at first, {last:.0f} ms at the end"


def ctx_reason(ctx: Context, peer: str) -> str | None:
    reasons = formats_of(ctx).peer_reasons
    if peer not in reasons:
        check = {"remotezip": remotezip_reason, "range-streams": range_streams_reason}[peer]
        reasons[peer] = check()
        if reasons[peer] is not None:
            print(f"{peer}: unavailable ({reasons[peer]})", flush=True)
    return reasons[peer]


def scenario_zip_members(ctx: Context) -> Scenario:
    fx = formats_of(ctx).fixtures_formats.members_zip
    assert fx is not None
    url = formats_of(ctx).fixtures_formats.urls[ZIP_NAME]
    one = zip_rows(ctx, fx, url, [fx.one])
    many = zip_rows(ctx, fx, url, fx.many)
    for row in one:
        row.library = f"list + 1: {row.library}"
    for row in many:
        row.library = f"list + {MANY}: {row.library}"
    rows = one + many
    for row in rows:
        if row.open_requests is not None:
            row.notes.append(
                f"open: {row.open_requests} requests, {row.open_bytes / MiB:.3f} MiB"
                if row.open_bytes is not None
                else f"open: {row.open_requests} requests"
            )
        if row.library_stats:
            row.notes.append(f"own stats: {row.library_stats.get('requests')} requests")
        if "rangeio" in row.library:
            if row.library.startswith("list + 1:"):
                judge(row, "<= 2 requests", row.requests <= 2)
            else:
                judge(row, "<= 3 round trips", row.round_trips <= 3)
    size = len(fx.data)
    small = [n for n in fx.names if n != fx.big]
    text = sum(len(fx.contents[n]) for n in small)
    title = (
        f"zip-members: list {len(fx.names)} members ({size / MiB:.1f} MiB zip: deflated text, "
        f"{text / MiB:.1f} MiB before compression, one {len(fx.contents[fx.big]) / MiB:.0f} "
        f"MiB stored member in the middle), read 1, then {MANY} spread over the archive"
    )
    useful = sum(len(fx.contents[n]) for n in fx.many)
    notes = [
        f"member read alone: {fx.one} ({len(fx.contents[fx.one])} bytes); the {MANY}: "
        f"{useful / KiB:.0f} KiB decompressed",
        "remotezip (defaults: requests without a session) opens a connection per request.",
        "range-streams (an httpx.Client): listing costs 2 sequential requests per member "
        "(each central directory entry, then its name), and it slows down as it holds more "
        f"ranges; its row stops after {range_streams_budget(ctx):g} s. It has no deflate decoder: "
        "a member is its raw range (zf_info.file_range) inflated by the benchmark with zlib. "
        f"It runs in the 'list + 1' part only ('list + {MANY}' lists the same way).",
    ]
    for peer, reason in formats_of(ctx).peer_reasons.items():
        if reason is not None:
            notes.append(f"{peer}: unavailable ({reason})")
    return Scenario("zip-members", 10, title, rows, notes)


# -- 11. conda-metadata ---------------------------------------------------------------------------


def info_from_zip(zf: zipfile.ZipFile, info_name: str) -> tuple[dict[str, Any], dict[str, bytes]]:
    """metadata.json and the info tarball's regular files, from any zipfile-like archive."""
    import zstandard

    metadata = json.loads(zf.read("metadata.json"))
    compressed = zf.read(info_name)
    tar_bytes = zstandard.ZstdDecompressor().decompressobj().decompress(compressed)
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tf:
        for member in tf.getmembers():
            if member.isfile():
                extracted = tf.extractfile(member)
                assert extracted is not None
                files[member.name] = extracted.read()
    return metadata, files


def check_conda(library: str, fx: CondaPackage, metadata: Any, files: dict[str, bytes]) -> None:
    check_equal(library, "metadata.json", metadata, fx.metadata)
    check_equal(library, "the info files' names", sorted(files), sorted(fx.info_files))
    for name, body in fx.info_files.items():
        check_equal(library, name, files[name], body)
        check_equal(library, f"{name} parsed", json.loads(files[name]), json.loads(body))


def scenario_conda_metadata(ctx: Context) -> Scenario:
    import urllib3

    fx = formats_of(ctx).fixtures_formats.conda
    assert fx is not None
    url = formats_of(ctx).fixtures_formats.urls[CONDA_NAME]
    rows: list[Row] = []

    def rangeio_body(meter: Meter, row: Row) -> None:
        from rangeio.formats.conda import conda_info

        meter.start()
        info = conda_info(url)
        meter.stop()
        check_equal(row.library, "the info tarball's name", info.info_name, fx.info_name)
        check_equal(
            row.library,
            "index.json parsed",
            info.index,
            json.loads(fx.info_files["info/index.json"]),
        )
        check_equal(
            row.library,
            "paths.json parsed",
            info.json("info/paths.json"),
            json.loads(fx.info_files["info/paths.json"]),
        )
        check_conda(row.library, fx, info.metadata, info.files)

    rows.append(timed(ctx, "rangeio conda_info", rangeio_body))
    small_prefetch = 64 * KiB

    def rangeio_small_body(meter: Meter, row: Row) -> None:
        from rangeio.formats.conda import conda_info

        meter.start()
        info = conda_info(url, prefetch_bytes=small_prefetch)
        meter.stop()
        check_conda(row.library, fx, info.metadata, info.files)

    rows.append(
        timed(ctx, f"rangeio conda_info prefetch {small_prefetch // KiB} KiB", rangeio_small_body)
    )

    def download_body(meter: Meter, row: Row) -> None:
        pool = urllib3.PoolManager()
        try:
            meter.start()
            response = pool.request("GET", url, decode_content=False)
            data = response.data
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                metadata, files = info_from_zip(zf, fx.info_name)
            meter.stop()
        finally:
            pool.clear()
        if data != fx.data:
            raise VerificationError(f"{row.library}: the downloaded file differs")
        check_conda(row.library, fx, metadata, files)

    rows.append(timed(ctx, "urllib3 whole-file GET + zipfile", download_body))

    def remotezip_body(meter: Meter, row: Row) -> None:
        from remotezip import RemoteZip

        meter.start()
        with RemoteZip(url) as zf:
            metadata, files = info_from_zip(zf, fx.info_name)
        meter.stop()
        check_conda(row.library, fx, metadata, files)

    if ctx_reason(ctx, "remotezip") is None:
        rows.append(timed(ctx, "remotezip", remotezip_body))

    for row in rows:
        if row.library.startswith("rangeio"):
            judge(row, "<= 2 requests", row.requests <= 2)
    title = (
        f"conda-metadata: metadata.json + {fx.info_name} of a {len(fx.data) / MiB:.1f} MiB "
        f".conda ({fx.payload_bytes / MiB:.1f} MiB pkg-*.tar.zst payload, incompressible)"
    )
    notes = [
        "the proxy adds latency but no bandwidth limit: on a real link the whole-file GET "
        f"would also pay for {len(fx.data) / MiB:.1f} MiB at the link's rate.",
        "every row parses metadata.json and the info tarball (zstd, then tar) and checks "
        "metadata.json, info/index.json and info/paths.json against the source.",
    ]
    return Scenario("conda-metadata", 11, title, rows, notes)


FORMAT_SCENARIOS: dict[str, tuple[int, Callable[[Context], Scenario]]] = {
    "zip-members": (10, scenario_zip_members),
    "conda-metadata": (11, scenario_conda_metadata),
}
