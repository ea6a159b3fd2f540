"""The disk cache's policy: keys, revalidation, block codec, extents, eviction."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rangeio._core import diskcache as dc
from rangeio._core.exchange import RangeExchange, Skip
from rangeio._core.headers import RangeSpec
from rangeio._core.identity import ETag, Identity
from rangeio._core.ranges import ByteRange
from rangeio._core.redirects import ResolvedUrl
from rangeio._core.retry import RetryPolicy
from rangeio.errors import HTTPStatusError

LM = "Wed, 02 Dec 2026 10:00:00 GMT"
LATER = "Wed, 02 Dec 2026 10:00:05 GMT"
STRONG = Identity(ETag("abc"), LM, 1000)


# -- key ------------------------------------------------------------------------------------


def test_strong_etag_is_the_key() -> None:
    assert dc.cache_identity(STRONG, immutable=False, date=LATER) == Identity(
        ETag("abc"), None, 1000
    )


def test_last_modified_and_size_without_etag() -> None:
    ident = Identity(None, LM, 1000)
    assert dc.cache_identity(ident, immutable=False, date=LATER) == ident


def test_last_modified_within_the_second_of_date_is_weak() -> None:
    # RFC 9110 §8.8.2.2: the file may change again within that second keeping its date.
    ident = Identity(None, LM, 1000)
    assert dc.cache_identity(ident, immutable=False, date=LM) is None
    assert dc.cache_identity(ident, immutable=True, date=LM) == ident


@pytest.mark.parametrize(
    "ident",
    [
        Identity(ETag("abc", weak=True), None, 1000),
        Identity(ETag("abc", weak=True), LM, 1000),
        Identity(ETag("bare", quoted=False), None, 1000),
        Identity(None, None, 1000),
        Identity(None, "not a date", 1000),
    ],
)
def test_weak_or_missing_validators_are_not_reusable_unless_immutable(ident: Identity) -> None:
    assert dc.cache_identity(ident, immutable=False, date=LATER) is None
    assert dc.cache_identity(ident, immutable=True, date=LATER) == ident


def test_unknown_size_is_never_stored() -> None:
    assert dc.cache_identity(Identity(ETag("a"), None, None), immutable=True, date=None) is None


def test_entry_key_separates_urls_and_versions() -> None:
    a, b = dc.url_key("http://h/a"), dc.url_key("http://h/b")
    v1 = Identity(ETag("1"), None, 10)
    v2 = Identity(ETag("2"), None, 10)
    keys = {dc.entry_key(a, v1), dc.entry_key(a, v2), dc.entry_key(b, v1)}
    assert len(keys) == 3
    assert dc.entry_key(a, v1) == dc.entry_key(a, Identity(ETag("1"), None, 10))
    assert dc.entry_key(a, v1) != dc.entry_key(a, Identity(ETag("1"), None, 11))


# -- revalidation ---------------------------------------------------------------------------


def test_conditional_headers() -> None:
    assert dc.conditional_headers(Identity(ETag("abc"), None, 5)) == {"If-None-Match": '"abc"'}
    assert dc.conditional_headers(Identity(None, LM, 5)) == {"If-Modified-Since": LM}
    assert dc.conditional_headers(Identity(ETag("w", weak=True), LM, 5)) == {}


def test_304_keeps_unless_it_names_another_etag() -> None:
    stored = Identity(ETag("abc"), None, 1000)
    same = dc.revalidate(
        stored, not_modified=True, answer=Identity(ETag("abc")), immutable=False, date=None
    )
    other = dc.revalidate(
        stored, not_modified=True, answer=Identity(ETag("zzz")), immutable=False, date=None
    )
    silent = dc.revalidate(stored, not_modified=True, answer=Identity(), immutable=False, date=None)
    assert (same, other, silent) == (dc.Outcome.UNCHANGED, dc.Outcome.CHANGED, dc.Outcome.UNCHANGED)


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [
        (Identity(ETag("abc"), LM, 1000), dc.Outcome.UNCHANGED),  # precondition ignored
        (Identity(ETag("new"), LM, 1000), dc.Outcome.CHANGED),
        (Identity(ETag("abc"), LM, 1001), dc.Outcome.CHANGED),
        # A missing ETag is not "unchanged" across opens (unlike within one open).
        (Identity(None, LM, 1000), dc.Outcome.CHANGED),
        (Identity(ETag("abc", weak=True), LM, 1000), dc.Outcome.CHANGED),
    ],
)
def test_a_full_answer_is_judged_by_identity(answer: Identity, outcome: dc.Outcome) -> None:
    stored = Identity(ETag("abc"), None, 1000)
    got = dc.revalidate(stored, not_modified=False, answer=answer, immutable=False, date=LATER)
    assert got is outcome


# -- blocks ---------------------------------------------------------------------------------


def test_block_geometry() -> None:
    bs = dc.BLOCK_SIZE
    assert list(dc.blocks_of(ByteRange(0, 1))) == [0]
    assert list(dc.blocks_of(ByteRange(bs - 1, bs + 1))) == [0, 1]
    assert list(dc.blocks_of(ByteRange(bs, 2 * bs))) == [1]
    assert list(dc.blocks_of(ByteRange(5, 5))) == []
    assert dc.block_span(2, 2 * bs + 7) == ByteRange(2 * bs, 2 * bs + 7)


KEY = dc.entry_key(dc.url_key("http://h/f"), STRONG)
SIZE = 3 * dc.BLOCK_SIZE + 100


def test_block_round_trip() -> None:
    block = dc.Block(1, dc.BLOCK_SIZE + 10, b"hello")
    raw = dc.encode_block(KEY, block)
    assert dc.decode_block(raw, KEY, 1, SIZE) == block


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda raw: raw[:-1], "extent of"),
        (lambda raw: raw[:20], "truncated"),
        (lambda raw: raw[:-1] + bytes([raw[-1] ^ 1]), "checksum"),
        (lambda raw: b"PK\x03\x04" + raw[4:], "not a rangeio block"),
        (lambda raw: raw + b"x", "extent of"),
    ],
)
def test_damaged_blocks_are_refused(mangle: object, reason: str) -> None:
    raw = dc.encode_block(KEY, dc.Block(1, dc.BLOCK_SIZE + 10, b"hello"))
    got = dc.decode_block(mangle(raw), KEY, 1, SIZE)  # type: ignore[operator]
    assert isinstance(got, str) and reason in got


def test_a_block_of_another_version_or_place_is_refused() -> None:
    raw = dc.encode_block(KEY, dc.Block(1, dc.BLOCK_SIZE, b"x"))
    other = dc.entry_key(dc.url_key("http://h/f"), Identity(ETag("new"), None, STRONG.size))
    assert "another URL or version" in str(dc.decode_block(raw, other, 1, SIZE))
    assert "where block 2 belongs" in str(dc.decode_block(raw, KEY, 2, SIZE))
    # The file shrank (a stored extent past the end is refused even under the same key).
    assert "outside" in str(dc.decode_block(raw, KEY, 1, dc.BLOCK_SIZE))


def test_extent_outside_its_block_cannot_be_encoded() -> None:
    with pytest.raises(ValueError, match="inside its block"):
        dc.encode_block(KEY, dc.Block(0, dc.BLOCK_SIZE - 1, b"ab"))


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, 50), st.integers(1, 50), st.integers(0, 50), st.integers(1, 50), st.booleans()
)
def test_choose_extent_never_loses_the_larger(a: int, la: int, b: int, lb: int, has: bool) -> None:
    stored = ByteRange(a, a + la) if has else None
    new = ByteRange(b, b + lb)
    got = dc.choose_extent(stored, new)
    kept = got if got is not None else stored
    assert kept is not None
    # What is kept holds the longer of the two, and is one contiguous extent.
    assert kept.length >= new.length and (stored is None or kept.length >= stored.length)
    if stored is not None and new.start <= stored.stop and stored.start <= new.stop:
        assert kept.start <= min(stored.start, new.start)
        assert kept.stop >= max(stored.stop, new.stop)


def test_longest_run() -> None:
    span = ByteRange(0, 100)
    assert dc.longest_run(span, []) == span
    assert dc.longest_run(span, [span]) is None
    assert dc.longest_run(span, [ByteRange(10, 20), ByteRange(90, 100)]) == ByteRange(20, 90)
    assert dc.longest_run(span, [ByteRange(0, 60)]) == ByteRange(60, 100)


# -- meta -----------------------------------------------------------------------------------


def test_meta_round_trip_and_damage() -> None:
    digest = dc.url_key("http://h/f")
    meta = dc.Meta(digest, Identity(ETag("abc"), None, 1000))
    raw = dc.encode_meta(meta)
    assert dc.decode_meta(raw, digest) == meta
    assert "another URL" in str(dc.decode_meta(raw, dc.url_key("http://h/g")))
    assert "checksum" in str(dc.decode_meta(raw[:-1] + b"\0", digest))
    assert "truncated" in str(dc.decode_meta(raw[:5], digest))
    assert "not a rangeio" in str(dc.decode_meta(b"x" * 100, digest))
    assert b"http" not in raw  # no URL (nor anything in one) is stored


# -- eviction -------------------------------------------------------------------------------


def test_lru_down_to_low_water() -> None:
    files = [dc.Stored(f"f{i}", 100, float(i)) for i in range(10)]
    assert dc.to_evict(files, 1000) == []
    # 1000 bytes over a 900 budget: down to 810, so the two oldest go.
    assert dc.to_evict(files, 900) == ["f0", "f1"]
    assert dc.to_evict(list(reversed(files)), 500) == ["f0", "f1", "f2", "f3", "f4", "f5"]


def test_scan_due() -> None:
    assert not dc.scan_due(0, 1024)
    assert dc.scan_due(1024 // dc.SCAN_SHARE, 1024)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 3 * dc.BLOCK_SIZE // 2), min_size=1, max_size=8), st.integers(0, 3))
def test_accumulator_cuts_a_stream_into_its_blocks(pieces: list[int], skip: int) -> None:
    size = 5 * dc.BLOCK_SIZE + 17
    acc = dc.Accumulator(size)
    pos = skip * 1000
    out: list[dc.Block] = []
    for n in pieces:
        n = min(n, size - pos)
        if n <= 0:
            break
        out.extend(acc.feed(pos, bytes([pos % 251]) * n))
        pos += n
    out.extend(acc.finish())
    # Every block lies in one block of the file, and together they are exactly what was fed.
    covered = 0
    for block in out:
        assert dc.block_span(block.index, size).contains(block.range)
        covered += len(block.data)
    assert covered == pos - skip * 1000
    # Only the first and last may be part-filled.
    for block in out[1:-1]:
        assert block.range == dc.block_span(block.index, size)


def test_accumulator_restarts_on_a_jump() -> None:
    acc = dc.Accumulator(4 * dc.BLOCK_SIZE)
    assert acc.feed(10, b"abc") == []
    assert acc.feed(5000, b"xy") == [dc.Block(0, 10, b"abc")]
    assert acc.finish() == [dc.Block(0, 5000, b"xy")]


# -- the conditional open request ---------------------------------------------------------


def _exchange(conditional: dict[str, str] | None) -> RangeExchange:
    url = "http://h/f"
    return RangeExchange(
        RangeSpec.suffix(100),
        first_url=url,
        target=ResolvedUrl(url),
        user_headers={},
        pinned=None,
        retry=RetryPolicy(attempts=1),
        max_full_body=None,
        conditional=conditional,
    )


def test_the_open_request_carries_the_precondition_and_a_304_ends_it() -> None:
    exchange = _exchange({"If-None-Match": '"abc"'})
    request = exchange.next_request(0.0)
    assert request is not None and request.headers["If-None-Match"] == '"abc"'
    assert request.headers["Range"] == "bytes=-100"
    assert isinstance(exchange.on_response(304, {"etag": '"abc"'}, 0.0), Skip)
    assert exchange.next_request(0.0) is None
    result = exchange.result
    assert result.not_modified and result.data == b"" and result.identity.etag == ETag("abc")


def test_a_304_without_a_precondition_is_an_error() -> None:
    exchange = _exchange(None)
    request = exchange.next_request(0.0)
    assert request is not None and "If-None-Match" not in request.headers
    with pytest.raises(HTTPStatusError) as raised:
        exchange.on_response(304, {}, 0.0)
    assert raised.value.status == 304
