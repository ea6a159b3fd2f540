"""Parallel download segments: who fetches which bytes, and work stealing (aria2's split)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from rangeio._core.control import MAX_SEGMENTS, TAIL_BYTES, Segment, tail_digest

# Split points are rounded down to this, so segments (and their writes) stay block-aligned.
ALIGN = 64 * 1024


@dataclass
class _Slot:
    start: int
    cursor: int
    stop: int
    busy: bool = False
    tail: bytearray = field(default_factory=bytearray)

    @property
    def remaining(self) -> int:
        return self.stop - self.cursor


class SegmentTable:
    """The segments of a known-length download and which are being worked on.

    A worker ``claim``s a segment: an idle unfinished one if there is any, else half of the
    largest remaining one (its owner's stop moves back to the split point, and the owner stops
    reading there). Splits never make a piece smaller than ``min_segment``, and the table never
    holds more than MAX_SEGMENTS segments: finished neighbours are merged.
    """

    def __init__(
        self, segments: list[Segment], total: int, min_segment: int, tails: dict[int, bytes]
    ) -> None:
        if total <= 0:
            raise ValueError("a segment table needs a positive total")
        self.total = total
        self.min_segment = max(min_segment, TAIL_BYTES, ALIGN)
        self._slots: dict[int, _Slot] = {}
        self._next_id = 0
        for segment in segments:
            stop = total if segment.stop is None else segment.stop
            tail = bytearray(tails.get(segment.start, b""))
            slot = _Slot(segment.start, segment.cursor, stop, tail=tail)
            self._add(slot)
        if not self._slots:
            self._add(_Slot(0, 0, total))

    def _add(self, slot: _Slot) -> int:
        slot_id = self._next_id
        self._next_id += 1
        self._slots[slot_id] = slot
        return slot_id

    # -- work ------------------------------------------------------------------------------

    def claim(
        self, speeds: Mapping[int, float] | None = None, own: float | None = None
    ) -> int | None:
        """A segment for an idle worker, or None when there is nothing worth taking.

        ``speeds`` (busy slot -> bytes/s of the connection on it) and ``own`` (the claiming
        connection's bytes/s) make the steal speed-aware, for mirrors of unequal speed: see
        ``_steal_by_speed``. Without them every connection counts as equally fast."""
        for slot_id, slot in sorted(self._slots.items(), key=lambda kv: kv[1].start):
            if not slot.busy and slot.remaining > 0:
                slot.busy = True
                return slot_id
        if speeds and own:
            return self._steal_by_speed(speeds, own)
        return self._steal()

    def _steal_by_speed(self, speeds: Mapping[int, float], own: float) -> int | None:
        """The busy segment that would finish last (remaining / its speed; an unmeasured one
        counts as fast as the thief) is split so that both halves finish together: the thief
        takes ``own / (own + theirs)`` of it, from the top. So a connection four times faster
        takes four fifths of a slow one's rest, a slow one a fifth of a fast one's, and a slow
        mirror carries its share instead of holding the download's tail. The thief's piece
        must be at least ``min_segment`` scaled by the two speeds' ratio (a small piece is
        worth a request when the victim would deliver it at a fraction of the speed, or when
        the thief's fair share of it is small), never below one ALIGN block; the victim may
        keep as little as one ALIGN block."""
        if len(self._slots) >= MAX_SEGMENTS:
            self._merge_finished()
        if len(self._slots) >= MAX_SEGMENTS:
            return None
        busy = [
            (slot.remaining / speeds.get(slot_id, own), slot_id)
            for slot_id, slot in self._slots.items()
            if slot.busy and slot.remaining > 0
        ]
        if not busy:
            return None
        _, victim_id = max(busy)
        victim = self._slots[victim_id]
        theirs = speeds.get(victim_id, own)
        share = own / (own + theirs)
        mid = victim.stop - int(victim.remaining * share)
        mid += -mid % ALIGN  # rounded up: the thief's piece ends aligned at the victim's old stop
        smallest = max(ALIGN, int(self.min_segment * min(1.0, theirs / own, own / theirs)))
        if mid - victim.cursor < ALIGN or victim.stop - mid < smallest:
            return None
        new = _Slot(mid, mid, victim.stop, busy=True)
        victim.stop = mid
        return self._add(new)

    def _steal(self) -> int | None:
        if len(self._slots) >= MAX_SEGMENTS:
            self._merge_finished()
        busy = [(slot.remaining, slot_id) for slot_id, slot in self._slots.items() if slot.busy]
        if not busy or len(self._slots) >= MAX_SEGMENTS:
            return None
        remaining, victim_id = max(busy)
        if remaining < 2 * self.min_segment:
            return None
        victim = self._slots[victim_id]
        mid = victim.cursor + remaining // 2
        mid -= mid % ALIGN
        if mid - victim.cursor < self.min_segment or victim.stop - mid < self.min_segment:
            return None
        new = _Slot(mid, mid, victim.stop, busy=True)
        victim.stop = mid
        return self._add(new)

    def span(self, slot_id: int) -> tuple[int, int]:
        """(cursor, stop) of a segment: its worker fetches [cursor, stop)."""
        slot = self._slots[slot_id]
        return slot.cursor, slot.stop

    def advance(self, slot_id: int, chunk: bytes) -> None:
        """``chunk`` was written at the segment's cursor. A steal may have moved the stop back
        meanwhile: bytes past it belong to the thief's segment (the same bytes of the same
        version, which the thief writes again), so the cursor stops at the stop."""
        slot = self._slots[slot_id]
        chunk = chunk[: max(slot.stop - slot.cursor, 0)]
        slot.cursor += len(chunk)
        slot.tail += chunk[-TAIL_BYTES:]
        if len(slot.tail) > TAIL_BYTES:
            del slot.tail[: len(slot.tail) - TAIL_BYTES]

    def release(self, slot_id: int) -> None:
        """The worker stopped (finished or failed): the segment is free for another."""
        self._slots[slot_id].busy = False

    @property
    def done(self) -> bool:
        return all(slot.remaining == 0 for slot in self._slots.values())

    def contiguous_prefix(self) -> int:
        """How many bytes from 0 are written without a hole (what can be hashed in order)."""
        for slot in sorted(self._slots.values(), key=lambda s: s.start):
            if slot.cursor < slot.stop:
                return slot.cursor
        return self.total

    @property
    def durable_candidates(self) -> int:
        return sum(slot.cursor - slot.start for slot in self._slots.values())

    def _merge_finished(self) -> None:
        ordered = sorted(self._slots.items(), key=lambda kv: kv[1].start)
        merged: dict[int, _Slot] = {}
        last_id: int | None = None
        for slot_id, slot in ordered:
            previous = merged.get(last_id) if last_id is not None else None
            if (
                previous is not None
                and previous.remaining == 0
                and slot.remaining == 0
                and not slot.busy
                and not previous.busy
                and previous.stop == slot.start
                and slot.stop - slot.start >= TAIL_BYTES
            ):
                # The later segment is at least a tail long, so its tail is the merged one's.
                previous.stop = previous.cursor = slot.stop
                previous.tail = slot.tail
                continue
            merged[slot_id] = slot
            last_id = slot_id
        self._slots = merged

    # -- the record --------------------------------------------------------------------------

    def snapshot(self) -> tuple[Segment, ...]:
        """Segments as the control record stores them (call after an fdatasync covered them)."""
        out = []
        for slot in sorted(self._slots.values(), key=lambda s: s.start):
            out.append(Segment(slot.start, slot.cursor, slot.stop, tail_digest(bytes(slot.tail))))
        return tuple(out)


def initial_workers(connections: int, total: int, min_segment: int) -> int:
    """How many connections a download of ``total`` bytes deserves (each gets a piece of at
    least ``min_segment``)."""
    return max(1, min(connections, total // max(min_segment, 1)))
