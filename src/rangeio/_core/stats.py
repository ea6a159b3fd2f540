"""Counters a file keeps about its traffic, shared by every cursor of that file."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class Stats:
    requests: int = 0
    bytes_fetched: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    retries: int = 0
    # The disk cache (``cache_dir``): blocks read from it, and opens revalidated against it.
    disk_hits: int = 0
    revalidations: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)
