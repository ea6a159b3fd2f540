"""The disk store: round trips, damaged and foreign files, eviction, permissions, many processes."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import stat
from pathlib import Path

import pytest

from rangeio._core import diskcache as dc
from rangeio._core.identity import ETag, Identity
from rangeio._diskcache import DiskStore

BS = dc.BLOCK_SIZE
URL = "http://127.0.0.1/data.bin?X-Amz-Signature=secret"
DIGEST = dc.url_key(URL)
V1 = Identity(ETag("v1"), None, 8 * BS)
V2 = Identity(ETag("v2"), None, 8 * BS)


_CYCLE = bytes(range(251)) * (8 * BS // 251 + 2)
FILES = {"v1": _CYCLE[: 8 * BS], "v2": _CYCLE[7 : 8 * BS + 7]}


def content(version: str, start: int, stop: int) -> bytes:
    """The bytes of [start, stop) of the file's ``version`` (the two differ at every byte)."""
    return FILES[version][start:stop]


def block(version: str, index: int, lo: int = 0, hi: int = BS) -> dc.Block:
    start = index * BS + lo
    return dc.Block(index, start, content(version, start, index * BS + hi))


def store_at(tmp_path: Path, budget: int = 64 * BS) -> DiskStore:
    store = DiskStore(tmp_path / "cache", budget)
    assert store.ensure()
    return store


def test_round_trip_and_nothing_secret_on_disk(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    key = dc.entry_key(DIGEST, V1)
    assert store.lookup(DIGEST) is None
    assert store.adopt(DIGEST, V1)
    store.write(DIGEST, key, [block("v1", 0), block("v1", 3, 10, 500)], V1.size or 0)
    assert store.lookup(DIGEST) == V1
    got = store.read(DIGEST, key, [0, 1, 3], V1.size or 0)
    assert got == [block("v1", 0), block("v1", 3, 10, 500)]
    everything = b"".join(p.read_bytes() for p in (tmp_path / "cache").rglob("*") if p.is_file())
    assert b"secret" not in everything and b"127.0.0.1" not in everything


def test_directory_is_private_and_tagged(tmp_path: Path) -> None:
    store_at(tmp_path)
    root = tmp_path / "cache"
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert stat.S_IMODE((root / "v1").stat().st_mode) == 0o700
    assert (root / "CACHEDIR.TAG").read_bytes().startswith(b"Signature: 8a477f597d28d172")


def test_extents_join(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    key = dc.entry_key(DIGEST, V1)
    store.adopt(DIGEST, V1)
    store.write(DIGEST, key, [block("v1", 2, 0, 100)], V1.size or 0)
    store.write(DIGEST, key, [block("v1", 2, 100, 300)], V1.size or 0)
    assert store.read(DIGEST, key, [2], V1.size or 0) == [block("v1", 2, 0, 300)]


@pytest.mark.parametrize(
    "damage",
    [
        lambda raw: raw[: len(raw) // 2],  # truncated (a torn write)
        lambda raw: raw[:-3] + bytes(3),  # a flipped tail
        lambda raw: b"not ours at all",  # a foreign file at a block's name
        lambda raw: b"",
    ],
)
def test_a_damaged_block_is_dropped_and_never_served(tmp_path: Path, damage: object) -> None:
    store = store_at(tmp_path)
    key = dc.entry_key(DIGEST, V1)
    store.adopt(DIGEST, V1)
    store.write(DIGEST, key, [block("v1", 1)], V1.size or 0)
    path = tmp_path / "cache" / "v1" / DIGEST / "1.blk"
    path.write_bytes(damage(path.read_bytes()))  # type: ignore[operator]
    assert store.read(DIGEST, key, [1], V1.size or 0) == []
    assert not path.exists()


def test_a_new_version_drops_the_old_blocks(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    store.adopt(DIGEST, V1)
    store.write(DIGEST, dc.entry_key(DIGEST, V1), [block("v1", 0)], V1.size or 0)
    store.adopt(DIGEST, V2)
    assert store.lookup(DIGEST) == V2
    assert not (tmp_path / "cache" / "v1" / DIGEST / "0.blk").exists()
    # A late writer that opened v1 before the change: its block is refused under v2's key.
    store.write(DIGEST, dc.entry_key(DIGEST, V1), [block("v1", 1)], V1.size or 0)
    assert store.read(DIGEST, dc.entry_key(DIGEST, V2), [1], V2.size or 0) == []


def test_a_damaged_record_drops_the_entry(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    store.adopt(DIGEST, V1)
    (tmp_path / "cache" / "v1" / DIGEST / "meta").write_bytes(b"\x89RIOMET\n garbage")
    assert store.lookup(DIGEST) is None
    assert not (tmp_path / "cache" / "v1" / DIGEST).exists()


def test_eviction_is_lru_and_keeps_the_budget(tmp_path: Path) -> None:
    store = store_at(tmp_path, budget=4 * BS + 4096)
    key = dc.entry_key(DIGEST, V1)
    store.adopt(DIGEST, V1)
    for i in range(4):
        store.write(DIGEST, key, [block("v1", i)], V1.size or 0)
        os.utime(tmp_path / "cache" / "v1" / DIGEST / f"{i}.blk", (1000.0 + i, 1000.0 + i))
    store.read(DIGEST, key, [0], V1.size or 0)  # block 0 is used again: now the newest
    store.write(DIGEST, key, [block("v1", 5)], V1.size or 0)
    store.evict()
    left = {p.name for p in (tmp_path / "cache" / "v1" / DIGEST).iterdir()}
    assert "0.blk" in left and "5.blk" in left and "1.blk" not in left and "meta" in left
    assert store.info().bytes <= store.budget


def test_foreign_files_inside_entries_are_dropped_outside_left_alone(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    store.adopt(DIGEST, V1)
    stray = tmp_path / "cache" / "v1" / DIGEST / "notes.txt"
    stray.write_text("x")
    mine = tmp_path / "cache" / "mine.txt"
    mine.write_text("user file")
    store.evict()
    assert not stray.exists() and mine.exists()
    store.clear()
    assert mine.exists() and store.lookup(DIGEST) is None


def test_clear_older_than(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    store.adopt(DIGEST, V1)
    other = dc.url_key("http://127.0.0.1/other")
    store.adopt(other, V1)
    for p in (tmp_path / "cache" / "v1" / DIGEST).iterdir():
        os.utime(p, (1000.0, 1000.0))
    store.clear(older_than=3600)
    assert store.lookup(DIGEST) is None and store.lookup(other) == V1


def test_unusable_directory_misses_quietly(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    store = DiskStore(tmp_path / "file" / "cache", BS)
    assert not store.ensure()
    assert store.lookup(DIGEST) is None
    assert store.read(DIGEST, b"k" * 16, [0], BS) == []
    store.write(DIGEST, b"k" * 16, [block("v1", 0)], BS)  # no error


# -- many processes -------------------------------------------------------------------------


def _worker(root: str, budget: int, seed: int, rounds: int, bad: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """Read and write random blocks of two versions of the file; report any wrong byte."""
    rng = random.Random(seed)
    store = DiskStore(root, budget)
    store.ensure()
    for _ in range(rounds):
        version = rng.choice(["v1", "v2"])
        ident = V1 if version == "v1" else V2
        key = dc.entry_key(DIGEST, ident)
        if rng.random() < 0.05:
            store.adopt(DIGEST, ident)
        if rng.random() < 0.5:
            index = rng.randrange(8)
            lo = rng.randrange(0, BS, 4096)
            store.write(
                DIGEST, key, [block(version, index, lo, rng.randrange(lo + 1, BS + 1))], 8 * BS
            )
        for got in store.read(DIGEST, key, list(range(8)), 8 * BS):
            if got.data != content(version, got.start, got.range.stop):
                bad.put((version, got.index, got.start))


def test_many_processes_with_sigkills_serve_no_wrong_byte(tmp_path: Path) -> None:
    root = str(tmp_path / "cache")
    budget = 6 * BS
    ctx = multiprocessing.get_context("fork")
    bad: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
    DiskStore(root, budget).ensure()
    procs = [ctx.Process(target=_worker, args=(root, budget, s, 300, bad)) for s in range(6)]
    for p in procs:
        p.start()
    rng = random.Random(0)
    victims = rng.sample(procs, 3)
    for p in victims:
        # Killed somewhere in the middle of its work: wait for a few of its writes first.
        p.join(timeout=rng.uniform(0.05, 0.3))
        if p.is_alive():
            os.kill(p.pid or 0, signal.SIGKILL)
    for p in procs:
        p.join(timeout=60)
        assert not p.is_alive()
    assert [p.exitcode for p in procs if p not in victims] == [0] * (len(procs) - 3)
    assert bad.empty()
    # After the killed writers, every file on disk is whole or refused; the budget holds.
    store = DiskStore(root, budget)
    for ident, version in ((V1, "v1"), (V2, "v2")):
        for got in store.read(DIGEST, dc.entry_key(DIGEST, ident), list(range(8)), 8 * BS):
            assert got.data == content(version, got.start, got.range.stop)
    store.evict()
    assert store.info().bytes <= budget
