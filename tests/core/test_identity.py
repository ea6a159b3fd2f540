"""ETag parsing and the RFC 9110 §8.8.3 comparisons; identity conflicts and preconditions."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rangeio._core.identity import ETag, Identity

SETTINGS = settings(max_examples=200, deadline=None)
LM1 = "Wed, 21 Oct 2015 07:28:00 GMT"
LM2 = "Thu, 22 Oct 2015 07:28:00 GMT"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"xyzzy"', ETag("xyzzy")),
        ('W/"xyzzy"', ETag("xyzzy", weak=True)),
        ('  "a b"\t', ETag("a b")),
        ('""', ETag("")),
        ('W/""', ETag("", weak=True)),
        ("xyzzy", ETag("xyzzy", quoted=False)),
        (" bare-token ", ETag("bare-token", quoted=False)),
        # The weak prefix is case-sensitive (§8.8.3: %s"W/"), so this is not a weak tag.
        ('w/"x"', ETag('w/"x"', quoted=False)),
        ('"a"b"', ETag('"a"b"', quoted=False)),
        (None, None),
        ("", None),
        ("   ", None),
    ],
)
def test_etag_parse(text: str | None, expected: ETag | None) -> None:
    assert ETag.parse(text) == expected


@SETTINGS
@given(st.text(alphabet=st.characters(blacklist_characters='"'), max_size=20), st.booleans())
def test_etag_header_value_round_trip(opaque: str, weak: bool) -> None:
    tag = ETag(opaque, weak=weak)
    assert ETag.parse(tag.header_value()) == tag


# RFC 9110 §8.8.3.2, the example table: (etag 1, etag 2, strong comparison, weak comparison).
RFC_TABLE = [
    ('W/"1"', 'W/"1"', False, True),
    ('W/"1"', 'W/"2"', False, False),
    ('W/"1"', '"1"', False, True),
    ('"1"', '"1"', True, True),
]


@pytest.mark.parametrize(("a", "b", "strong", "weak"), RFC_TABLE)
def test_rfc_9110_comparison_table(a: str, b: str, strong: bool, weak: bool) -> None:
    ta, tb = ETag.parse(a), ETag.parse(b)
    assert ta is not None and tb is not None
    assert ta.strong_equals(tb) is strong
    assert tb.strong_equals(ta) is strong, "comparison is symmetric"
    assert ta.weak_equals(tb) is weak
    assert tb.weak_equals(ta) is weak


def test_strong_comparison_differs_on_opaque() -> None:
    assert not ETag("1").strong_equals(ETag("2"))
    assert not ETag("1").weak_equals(ETag("2"))
    assert not ETag("a").strong_equals(ETag("A")), "character-for-character, case included"


@pytest.mark.parametrize(
    ("tag", "usable"),
    [(ETag("x"), True), (ETag("x", weak=True), False), (ETag("x", quoted=False), False)],
)
def test_precondition_headers_only_for_strong_quoted(tag: ETag, usable: bool) -> None:
    assert tag.usable_as_precondition is usable
    ident = Identity(tag, LM1, 10)
    if usable:
        assert ident.precondition_headers() == {"If-Match": tag.header_value()}
        assert ident.if_range_value() == '"x"'
    else:
        assert ident.precondition_headers() == {}
        # §13.1.5: with an entity tag in hand, a date must not be sent instead.
        assert ident.if_range_value() is None


def test_if_range_value_falls_back_to_last_modified_without_etag() -> None:
    assert Identity(None, LM1, 10).if_range_value() == LM1
    assert Identity(None, None, 10).if_range_value() is None
    assert Identity().precondition_headers() == {}


@pytest.mark.parametrize(
    ("a", "b", "conflict"),
    [
        (Identity(ETag("1"), LM1, 10), Identity(ETag("1"), LM1, 10), None),
        (Identity(ETag("1"), LM1, 10), Identity(ETag("2"), LM1, 10), "ETag"),
        # Outside If-Match the weak comparison applies: W/"1" and "1" are the same version.
        (Identity(ETag("1", weak=True)), Identity(ETag("1")), None),
        (Identity(ETag("1", weak=True)), Identity(ETag("2", weak=True)), "ETag"),
        # Matching ETags decide; a differing date beside them does not.
        (Identity(ETag("1"), LM1), Identity(ETag("1"), LM2), None),
        # With an ETag missing on one side, the dates are compared.
        (Identity(ETag("1"), LM1), Identity(None, LM2), "Last-Modified"),
        (Identity(None, LM1), Identity(ETag("1"), LM1), None),
        (Identity(None, LM1), Identity(None, LM2), "Last-Modified"),
        # A validator missing on either side is not by itself a change.
        (Identity(ETag("1"), LM1, 10), Identity(), None),
        (Identity(), Identity(ETag("1"), LM1, 10), None),
        (Identity(None, None, 10), Identity(None, None, None), None),
        # Size is compared independently of the validators.
        (Identity(ETag("1"), LM1, 10), Identity(ETag("1"), LM1, 11), "size"),
        (Identity(None, None, 10), Identity(None, None, 0), "size"),
    ],
)
def test_conflict_with(a: Identity, b: Identity, conflict: str | None) -> None:
    reason = a.conflict_with(b)
    if conflict is None:
        assert reason is None
    else:
        assert reason is not None and conflict in reason
        assert b.conflict_with(a) is not None, "a conflict is seen from both sides"


def test_from_headers_and_merged() -> None:
    ident = Identity.from_headers({"etag": 'W/"v1"', "last-modified": f"  {LM1} "}, 99)
    assert ident == Identity(ETag("v1", weak=True), LM1, 99)
    assert Identity.from_headers({}, None) == Identity()
    partial = Identity(None, LM2, None)
    merged = partial.merged(Identity(ETag("z"), LM1, 7))
    assert merged == Identity(ETag("z"), LM2, 7), "own validators win, missing ones are filled"
    assert Identity(ETag("a"), LM1, 1).merged(Identity(ETag("b"), LM2, 2)) == Identity(
        ETag("a"), LM1, 1
    )
