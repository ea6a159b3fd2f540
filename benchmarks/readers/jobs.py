"""The readers' jobs: the data each one reads (written by the real tools, from fixed seeds) and
what the reader does with it, every result checked against the local file.

Each ``make_*`` writes its file(s) into the served folder and returns the jobs on them; a job's
``run(session, url)`` opens what the reader opens, the way its users do, and raises
``VerificationError`` if a byte or a result differs from reading the local file.
"""

from __future__ import annotations

import io
import random
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rig import Job, Session

from harness import VerificationError, Verified, check_equal

SEED = 20261203
MiB = 1024 * 1024


def _verified(session: Session, url: str, data: bytes) -> Verified:
    return Verified(session.open(url), data, session.name)


def _missing(module: str) -> str | None:
    try:
        __import__(module)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


# -- tarfile (the tar of tar_listing.py) ------------------------------------------------------


def make_tar(www: Path) -> list[Job]:
    from tar_listing import TAR_NAME
    from tar_listing import make_tar as make

    fx = make()
    (www / TAR_NAME).write_bytes(fx.data)

    def run(extract: bool) -> Any:
        def go(session: Session, url: str) -> None:
            f = _verified(session, url, fx.data)
            with tarfile.open(fileobj=f) as tar:  # type: ignore[call-overload]
                check_equal(session.name, "the member names", tar.getnames(), fx.names)
                if extract:
                    member = tar.extractfile(fx.one)
                    if member is None:
                        raise VerificationError(f"{fx.one} is not a file")
                    check_equal(session.name, fx.one, member.read(), fx.one_bytes)

        return go

    size = f"{len(fx.names):,} members, {len(fx.data) / MiB:.1f} MiB"
    return [
        Job("tar-list", f"tarfile getnames() ({size})", TAR_NAME, run(False)),
        Job("tar-extract", "tarfile list + extract one", TAR_NAME, run(True)),
    ]


# -- zipfile: a wheel's METADATA, as pip's lazy wheel reads it --------------------------------


def make_wheel(www: Path) -> list[Job]:
    """A wheel as ``wheel`` writes it (zipfile, deflated, dist-info last): 600 modules, a 6 MiB
    extension module, then METADATA, WHEEL and RECORD."""
    rng = random.Random(SEED)
    buf = io.BytesIO()
    names: list[str] = []
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for i in range(600):
            words = " ".join(f"name_{rng.randrange(5000)}" for _ in range(rng.randrange(200, 3000)))
            z.writestr(f"benchpkg/mod_{i:03d}.py", f"# module {i}\nVALUES = '''{words}'''\n")
            names.append(f"benchpkg/mod_{i:03d}.py")
        z.writestr("benchpkg/_speedups.cpython-311-x86_64-linux-gnu.so", rng.randbytes(6 * MiB))
        requires = "".join(f"Requires-Dist: dep{i}>=1.{i}\n" for i in range(40))
        metadata = (
            "Metadata-Version: 2.1\nName: benchpkg\nVersion: 1.0\n"
            f"Summary: a benchmark wheel\n{requires}\n" + "Long description. " * 800
        )
        z.writestr("benchpkg-1.0.dist-info/METADATA", metadata)
        z.writestr("benchpkg-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: false\n")
        z.writestr("benchpkg-1.0.dist-info/RECORD", "\n".join(names))
    data = buf.getvalue()
    (www / "benchpkg-1.0-cp311-cp311-linux_x86_64.whl").write_bytes(data)

    def go(session: Session, url: str) -> None:
        with zipfile.ZipFile(_verified(session, url, data)) as z:  # type: ignore[arg-type]
            got = z.read("benchpkg-1.0.dist-info/METADATA").decode()
        check_equal(session.name, "METADATA", got, metadata)

    title = f"zipfile: a wheel's METADATA ({len(data) / MiB:.1f} MiB wheel, 604 members)"
    return [Job("zip-wheel", title, "benchpkg-1.0-cp311-cp311-linux_x86_64.whl", go)]


# -- pandas, pyarrow, dask, DuckDB on CSV and Parquet -----------------------------------------


def _frame(rows: int) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(SEED)
    return pd.DataFrame(
        {
            "id": np.arange(rows, dtype="int64"),
            "value": rng.normal(size=rows),
            "count": rng.integers(0, 1000, size=rows),
            "name": [f"item-{i % 9973}" for i in range(rows)],
            "flag": rng.integers(0, 2, size=rows).astype(bool),
        }
    )


def make_tables(www: Path) -> list[Job]:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = _frame(400_000)
    csv_bytes = frame.to_csv(index=False).encode()
    (www / "table.csv").write_bytes(csv_bytes)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, www / "table.parquet", row_group_size=50_000)  # 8 row groups
    parquet_bytes = (www / "table.parquet").read_bytes()
    local_csv = pd.read_csv(io.BytesIO(csv_bytes))
    head = pd.read_csv(io.BytesIO(csv_bytes), nrows=1000)
    columns = ["id", "value"]
    local_cols = pd.read_parquet(io.BytesIO(parquet_bytes), columns=columns)
    lo, hi = 210_000, 260_000  # a filter that touches two row groups

    def csv_full(session: Session, url: str) -> None:
        got = pd.read_csv(_verified(session, url, csv_bytes))
        pd.testing.assert_frame_equal(got, local_csv)

    def csv_head(session: Session, url: str) -> None:
        got = pd.read_csv(_verified(session, url, csv_bytes), nrows=1000)
        pd.testing.assert_frame_equal(got, head)

    def parquet_cols(session: Session, url: str) -> None:
        # read_parquet(path, filesystem=...) is pandas' documented way to give a filesystem.
        got = pd.read_parquet(url, columns=columns, filesystem=session.filesystem())
        pd.testing.assert_frame_equal(got, local_cols)

    def dataset(session: Session, url: str) -> None:
        import pyarrow.dataset as ds
        from pyarrow.fs import FSSpecHandler, PyFileSystem

        fs = PyFileSystem(FSSpecHandler(session.filesystem()))
        d = ds.dataset(url, format="parquet", filesystem=fs)
        got = d.to_table(
            columns=["id", "value"], filter=(ds.field("id") >= lo) & (ds.field("id") < hi)
        )
        want = table.select(["id", "value"]).slice(lo, hi - lo)
        if not got.equals(want):
            raise VerificationError("the dataset's filtered table differs from the local one")
        return None

    def dask_parquet(session: Session, url: str) -> None:
        import dask
        import dask.dataframe as dd

        df = dd.read_parquet(url, columns=["id", "count"], filesystem=session.filesystem())
        # Not len(df): dask then reads the row-group statistics with fs.open(path,
        # default_cache="none"), an option of fsspec's own files that HTTPFileSystem's
        # aiohttp session and rangeio both refuse.
        got = dask.compute(df["count"].sum(), df["id"].max(), scheduler="sync")
        check_equal(session.name, "dask's sum and max", got, (frame["count"].sum(), len(frame) - 1))

    def duckdb_parquet(session: Session, url: str) -> None:
        import duckdb

        con = duckdb.connect()
        try:
            con.register_filesystem(session.filesystem())
            query = (
                "SELECT count(*), sum(count), min(name) FROM read_parquet("
                f"'{session.url(url)}') WHERE id >= {lo} AND id < {hi}"
            )
            got = con.sql(query).fetchall()
        finally:
            con.close()
        part = frame[(frame["id"] >= lo) & (frame["id"] < hi)]
        want = [(len(part), int(part["count"].sum()), part["name"].min())]
        check_equal(session.name, "DuckDB's answer", got, want)

    csv_mib = f"{len(csv_bytes) / MiB:.1f} MiB"
    pq_mib = f"{len(parquet_bytes) / MiB:.1f} MiB, 8 row groups"
    return [
        Job("pandas-csv", f"pandas read_csv, whole file ({csv_mib})", "table.csv", csv_full),
        Job("pandas-csv-head", "pandas read_csv nrows=1000", "table.csv", csv_head),
        Job(
            "pandas-parquet",
            f"pandas read_parquet, 2 of 5 columns ({pq_mib})",
            "table.parquet",
            parquet_cols,
        ),
        Job(
            "pyarrow-dataset", "pyarrow dataset, filter on id + 2 columns", "table.parquet", dataset
        ),
        Job("dask-parquet", "dask read_parquet, 2 columns, sum", "table.parquet", dask_parquet),
        Job(
            "duckdb", "DuckDB register_filesystem, filtered query", "table.parquet", duckdb_parquet
        ),
    ]


# -- PIL ---------------------------------------------------------------------------------------


def make_png(www: Path) -> list[Job]:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(SEED)
    y, x = np.mgrid[0:1600, 0:1600]
    pixels = np.stack([(x // 7) % 256, (y // 5) % 256, (x + y) % 256], axis=-1).astype("uint8")
    pixels[::3, ::3] = rng.integers(0, 256, size=pixels[::3, ::3].shape, dtype="uint8")
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    data = buf.getvalue()
    (www / "image.png").write_bytes(data)

    def header(session: Session, url: str) -> None:
        with Image.open(_verified(session, url, data)) as img:
            check_equal(session.name, "size and mode", (img.size, img.mode), ((1600, 1600), "RGB"))

    def decode(session: Session, url: str) -> None:
        with Image.open(_verified(session, url, data)) as img:
            got = np.asarray(img)
        if not np.array_equal(got, pixels):
            raise VerificationError("decoded pixels differ")

    mib = f"{len(data) / MiB:.1f} MiB PNG"
    return [
        Job("pil-header", f"PIL Image.open: size and mode ({mib})", "image.png", header),
        Job("pil-decode", "PIL full decode", "image.png", decode),
    ]


# -- tifffile and rasterio ---------------------------------------------------------------------


def _raster(size: int) -> Any:
    import numpy as np

    rng = np.random.default_rng(SEED)
    y, x = np.mgrid[0:size, 0:size]
    smooth = (np.sin(x / 97.0) + np.cos(y / 61.0)) * 8000 + 20000
    return (smooth + rng.normal(scale=300, size=(size, size))).astype("uint16")


def make_tiff(www: Path) -> list[Job]:
    import numpy as np
    import tifffile

    pixels = _raster(4096)
    tifffile.imwrite(www / "tiled.tif", pixels, tile=(256, 256), compression="zlib")
    data = (www / "tiled.tif").read_bytes()
    window = (slice(1000, 1700), slice(2000, 2700))

    def meta(session: Session, url: str) -> None:
        with tifffile.TiffFile(_verified(session, url, data)) as tif:
            page = tif.pages[0]
            got = (page.shape, page.dtype.str, page.tilewidth, page.compression)
        check_equal(session.name, "the page", got[:3], ((4096, 4096), "<u2", 256))

    def tiles(session: Session, url: str) -> None:
        import zarr

        with tifffile.TiffFile(_verified(session, url, data)) as tif:
            store = tif.aszarr()
            got = zarr.open(store, mode="r")[window]
            store.close()
        if not np.array_equal(got, pixels[window]):
            raise VerificationError("the window's pixels differ")

    mib = f"{len(data) / MiB:.1f} MiB, 256x256 zlib tiles"
    return [
        Job(
            "tifffile-meta", f"tifffile: first page's tags (4096x4096 u2, {mib})", "tiled.tif", meta
        ),
        Job("tifffile-window", "tifffile aszarr: a 700x700 window (12 tiles)", "tiled.tif", tiles),
    ]


def make_cog(www: Path) -> list[Job]:
    import numpy as np
    import rasterio
    from rasterio.windows import Window

    pixels = _raster(6144)
    profile = {
        "driver": "COG",
        "width": 6144,
        "height": 6144,
        "count": 1,
        "dtype": "uint16",
        "compress": "deflate",
        "blocksize": 512,
        "crs": "EPSG:32633",
        "transform": rasterio.Affine(10, 0, 500_000, 0, -10, 4_200_000),
    }
    with rasterio.open(www / "cog.tif", "w", **profile) as dst:
        dst.write(pixels, 1)
    window = Window(2100, 3000, 600, 600)  # col, row, width, height: 4 blocks
    want = pixels[3000:3600, 2100:2700]
    size = (www / "cog.tif").stat().st_size

    def window_of(env: dict[str, str]) -> Callable[[Session, str], str | None]:
        def go(session: Session, url: str) -> str | None:
            if session.kind == "gdal":
                target, opener = "/vsicurl/" + url, None
            else:
                target, opener = url, session.filesystem()
            with rasterio.Env(**env), rasterio.open(target, opener=opener) as src:
                got = src.read(1, window=window)
                overviews = src.overviews(1)
            if not np.array_equal(got, want):
                raise VerificationError("the COG window's pixels differ")
            return f"overviews {overviews}" if session.kind == "gdal" else None

        return go

    title = f"rasterio: a COG window, 600x600 ({size / MiB:.1f} MiB, deflate, 512 blocks)"
    sides = ("rangeio", "fsspec", "gdal")
    # GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR is what GDAL's and rasterio's docs advise for
    # cloud reads: without it GDAL asks for 9 sidecars (.aux.xml, .msk, ...) on every side.
    quiet = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR"}
    return [
        Job("rasterio-cog", title, "cog.tif", window_of({}), sides=sides, fresh_name=True),
        Job(
            "rasterio-cog-emptydir",
            "the same, GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR",
            "cog.tif",
            window_of(quiet),
            sides=sides,
            fresh_name=True,
        ),
    ]


# -- h5py and xarray ---------------------------------------------------------------------------


def make_hdf5(www: Path) -> list[Job]:
    import h5py
    import numpy as np

    pixels = _raster(3072).astype("float32")
    with h5py.File(www / "data.h5", "w") as h5:
        meta = h5.create_group("meta")
        for g in range(40):
            group = meta.create_group(f"station_{g:02d}")
            group.attrs["id"] = g
            group.attrs["label"] = f"station number {g}"
            for d in range(5):
                group.create_dataset(f"series_{d}", data=np.arange(50 * (g + d + 1)) * 0.5)
        h5.create_dataset("chunked", data=pixels, chunks=(256, 256))
        h5.create_dataset("compressed", data=pixels, chunks=(256, 256), compression="gzip")
    data = (www / "data.h5").read_bytes()

    def walk_of(h5: Any) -> list[tuple[str, Any, Any]]:
        out: list[tuple[str, Any, Any]] = []

        def visit(name: str, obj: Any) -> None:
            shape = getattr(obj, "shape", None)
            out.append((name, shape, sorted((k, str(v)) for k, v in obj.attrs.items())))

        h5.visititems(visit)
        return out

    with h5py.File(io.BytesIO(data), "r") as h5:
        local_walk = walk_of(h5)
    window = (slice(1000, 1600), slice(1200, 1800))

    def walk(session: Session, url: str) -> None:
        with h5py.File(_verified(session, url, data), "r") as h5:
            check_equal(session.name, "the walk", walk_of(h5), local_walk)

    def part(name: str) -> Any:
        def go(session: Session, url: str) -> None:
            with h5py.File(_verified(session, url, data), "r") as h5:
                got = h5[name][window]
            if not np.array_equal(got, pixels[window]):
                raise VerificationError(f"{name}[window] differs")

        return go

    mib = f"{len(data) / MiB:.1f} MiB"
    return [
        Job("h5py-walk", f"h5py visititems + attrs (240 objects, {mib})", "data.h5", walk),
        Job(
            "h5py-chunked",
            "h5py chunked slice 600x600 (f4, 256 chunks)",
            "data.h5",
            part("chunked"),
        ),
        Job("h5py-gzip", "h5py gzip slice 600x600", "data.h5", part("compressed")),
    ]


def make_netcdf(www: Path) -> list[Job]:
    import numpy as np
    import xarray as xr

    rng = np.random.default_rng(SEED)
    temp = (rng.normal(size=(120, 180, 360)) * 5 + 15).astype("float32")
    dset = xr.Dataset(
        {"temp": (("time", "lat", "lon"), temp)},
        coords={
            "time": np.arange(120),
            "lat": np.linspace(-89.5, 89.5, 180),
            "lon": np.linspace(-179.5, 179.5, 360),
        },
    )
    encoding = {"temp": {"chunksizes": (12, 90, 90), "zlib": True, "complevel": 4}}
    dset.to_netcdf(www / "climate.nc", engine="h5netcdf", encoding=encoding)
    data = (www / "climate.nc").read_bytes()
    want = temp[30:42, 40:100, 100:200].mean(axis=0)

    def go(session: Session, url: str) -> None:
        with xr.open_dataset(_verified(session, url, data), engine="h5netcdf") as ds:
            got = ds["temp"].isel(time=slice(30, 42), lat=slice(40, 100), lon=slice(100, 200))
            got = got.mean("time").values
        if not np.array_equal(got, want):
            raise VerificationError("the mean differs")

    title = f"xarray h5netcdf: mean over a slice ({len(data) / MiB:.1f} MiB netCDF4, zlib)"
    return [Job("xarray-h5netcdf", title, "climate.nc", go)]


# -- zarr --------------------------------------------------------------------------------------


def make_zarr(www: Path) -> list[Job]:
    import numpy as np
    import zarr

    values = _raster(2048).astype("int32")
    jobs = []
    window = (slice(300, 900), slice(500, 1100))
    for fmt in (2, 3):
        name = f"array-v{fmt}.zarr"
        z = zarr.create_array(
            store=str(www / name),
            shape=values.shape,
            chunks=(256, 256),
            dtype="int32",
            zarr_format=fmt,  # type: ignore[arg-type]
        )
        z[:] = values

        def go(session: Session, url: str, fmt: int = fmt) -> None:
            from zarr.storage import FsspecStore

            # By URL, as zarr users do; a fresh filesystem instance, not fsspec's cached one.
            store = FsspecStore.from_url(
                session.url(url), storage_options={"skip_instance_cache": True}, read_only=True
            )
            session.watch(store.fs)
            try:
                got = zarr.open_array(store, mode="r", zarr_format=fmt)[window]  # type: ignore[arg-type]
            finally:
                _close_store(store)
            if not np.array_equal(got, values[window]):
                raise VerificationError("the zarr window differs")

        jobs.append(
            Job(f"zarr-v{fmt}", f"zarr v{fmt} by URL: a 600x600 window (9 chunks of 64)", name, go)
        )
    return jobs


def _close_store(store: Any) -> None:
    """Close the connections of the store's filesystem: rangeio's ``close()`` (its one aiohttp
    session per loop; collecting it or the exit would too), or the aiohttp session of fsspec's
    async http filesystem, which nothing closes for an ``asynchronous=True`` instance."""
    fs = store.fs
    if hasattr(fs, "close_async"):  # rangeio's filesystem
        fs.close()
        return
    session = getattr(fs, "_session", None)
    if session is not None and not session.closed:
        from zarr.core.sync import sync

        sync(session.close())


MAKERS = [
    make_tar,
    make_wheel,
    make_tables,
    make_png,
    make_tiff,
    make_cog,
    make_hdf5,
    make_zarr,
    make_netcdf,
]
# The import each maker needs; a maker whose import fails is reported and skipped.
NEEDS = {
    make_tables: "pyarrow",
    make_png: "PIL",
    make_tiff: "tifffile",
    make_cog: "rasterio",
    make_hdf5: "h5py",
    make_zarr: "zarr",
    make_netcdf: "h5netcdf",
}


def make_jobs(www: Path, only: set[str] | None = None) -> tuple[list[Job], list[str]]:
    jobs: list[Job] = []
    skipped: list[str] = []
    for maker in MAKERS:
        need = NEEDS.get(maker)
        problem = _missing(need) if need else None
        if problem:
            skipped.append(f"{maker.__name__[5:]}: unavailable ({problem})")
            continue
        made = maker(www)
        jobs += [j for j in made if only is None or any(j.key.startswith(o) for o in only)]
    return jobs, skipped
