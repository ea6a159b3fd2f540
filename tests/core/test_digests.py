"""Digest headers (RFC 9530 Repr-/Content-Digest, RFC 3230 Digest, Content-MD5), Hasher and check.

The example values are computed here from a known payload, not copied from anywhere.
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rangeio._core.digests import (
    DIGEST_SIZES,
    ExpectedDigest,
    Hasher,
    check,
    from_headers,
    parse_content_md5,
    parse_digest,
    parse_repr_digest,
)
from rangeio.errors import ChecksumMismatchError, HeaderParseError, RangeioError

SETTINGS = settings(max_examples=300, deadline=None)
PAYLOAD = b'{"hello": "world"}\n'
RAW = {
    "sha256": hashlib.sha256(PAYLOAD).digest(),
    "sha512": hashlib.sha512(PAYLOAD).digest(),
    "md5": hashlib.md5(PAYLOAD).digest(),
}
B64 = {name: base64.b64encode(value).decode() for name, value in RAW.items()}
OTHER = base64.b64encode(hashlib.sha256(b"other").digest()).decode()


def exp(algorithm: str, source: str, digest: bytes | None = None) -> ExpectedDigest:
    return ExpectedDigest(algorithm, RAW[algorithm] if digest is None else digest, source)


# -- Repr-Digest / Content-Digest ---------------------------------------------------------------


def test_repr_digest_two_algorithms() -> None:
    value = f"sha-256=:{B64['sha256']}:, sha-512=:{B64['sha512']}:"
    assert parse_repr_digest(value) == [exp("sha256", "Repr-Digest"), exp("sha512", "Repr-Digest")]


def test_content_digest_names_its_source() -> None:
    value = f"sha-512=:{B64['sha512']}:"
    assert parse_repr_digest(value, "Content-Digest") == [exp("sha512", "Content-Digest")]


def test_repr_digest_md5_is_accepted() -> None:
    assert parse_repr_digest(f"md5=:{B64['md5']}:") == [exp("md5", "Repr-Digest")]


@pytest.mark.parametrize(
    "value",
    [
        f"sha-256=:{B64['sha256']}:;alg-note=1;x",
        f"  sha-256=:{B64['sha256']}:  ",
        f"\tsha-256=:{B64['sha256']}:\t",
        f"unixsum=:AAAA:,\tsha-256=:{B64['sha256']}:  , crc32c=:AAAAAA==:",
        # unpadded, as RFC 8941 §4.2.7 says parsers should tolerate
        f"sha-256=:{B64['sha256'].rstrip('=')}:",
        # a repeated key: the last value wins (RFC 8941 §4.2.2), as with folded header lines
        f"sha-256=:{OTHER}:, sha-256=:{B64['sha256']}:",
    ],
)
def test_repr_digest_syntax_variants(value: str) -> None:
    assert parse_repr_digest(value) == [exp("sha256", "Repr-Digest")]


def test_unknown_algorithms_are_ignored_whatever_their_item_type() -> None:
    value = (
        'unixsum=:AAAA:, id-sha-256=:AAAA:, adler=?1, foo=42, bar=-1.5, baz="a\\"b\\\\c",'
        ' qux=tok/en:1, when=@1700000000, name=%"caf%c3%a9", il=(1 "a" :AAAA: ?0);p=1,'
        ' empty=(), flag;q="z", *star=*tok, sha=:AAAA:'
    )
    assert parse_repr_digest(value) == []
    assert parse_repr_digest(value + f", sha-256=:{B64['sha256']}:") == [
        exp("sha256", "Repr-Digest")
    ]


def test_empty_repr_digest_has_no_digests() -> None:
    assert parse_repr_digest("") == []
    assert parse_repr_digest("   ") == []


B = B64["sha256"]
MALFORMED_REPR = [
    f"sha-256=:{B}:,",  # trailing comma
    f", sha-256=:{B}:",  # leading comma
    f"sha-256=:{B}:,,md5=:{B64['md5']}:",  # empty member
    f"SHA-256=:{B}:",  # keys are lower-case in a structured field
    f"sha-256=:{B}: sha-512=:{B64['sha512']}:",  # no comma
    f"sha-256=:{B}",  # unterminated byte sequence
    f"sha-256={B}",  # not a byte sequence
    'sha-256="abc"',  # a string, not a byte sequence
    "sha-256",  # a bare key is boolean true
    "sha-256=?1",
    "sha-256=(:AAAA:)",  # an inner list
    "sha-256=:@@@@:",  # not base64
    "sha-256=:A:",  # impossible base64 length
    "sha-256=:AA=A:",  # padding in the middle
    "sha-256=:AAAA:",  # a 3-byte digest
    f"sha-256=:{B64['sha512']}:",  # a sha-512 digest under sha-256
    f"sha-512=:{B}:",
    f"md5=:{B}:",
    f"sha-256=:{B}:;",  # empty parameter
    f"sha-256=:{B}:;P=1",  # upper-case parameter key
    "foo=(1 2",  # malformed even though the key is unknown
    'foo="unterminated',
    'foo="bad \\x escape"',
    'foo="tab\tin string"',
    "foo=1234567890123456",  # 16-digit integer
    "foo=1234567890123.5",  # 13 integer digits in a decimal
    "foo=1.2345",
    "foo=1.",
    "foo=-",
    "foo=?2",
    "foo=@1.5",
    'foo=%"%C3%A9"',  # display string escapes are lower-case
    'foo=%"%ff"',  # not UTF-8
    'foo=%"%f"',
    "foo=%abc",
    "foo=\u00e9",
    "\u00e9=1",
    "foo=1;",
    "foo=(1)x",
    "foo=(1,2)",
    "foo=",
    "=1",
    "foo==1",
    "foo=1\x00",
]


@pytest.mark.parametrize("value", MALFORMED_REPR)
def test_malformed_repr_digest_is_refused(value: str) -> None:
    with pytest.raises(HeaderParseError, match="Repr-Digest"):
        parse_repr_digest(value)


def test_malformed_content_digest_names_content_digest() -> None:
    with pytest.raises(HeaderParseError, match="Content-Digest"):
        parse_repr_digest("sha-256=:AAAA:", "Content-Digest")


# -- RFC 3230 Digest ---------------------------------------------------------------------------


def test_digest_two_algorithms() -> None:
    value = f"SHA-256={B64['sha256']}, MD5={B64['md5']}"
    assert parse_digest(value) == [exp("sha256", "Digest"), exp("md5", "Digest")]


@pytest.mark.parametrize(
    "value",
    [
        f"sha-256={B64['sha256']}",
        f"Sha-256={B64['sha256']}",
        f"  SHA-256={B64['sha256']}  ",
        f"SHA-256 = {B64['sha256']}",
        f"SHA-256={B64['sha256'].rstrip('=')}",
        f",, UNIXsum=1234, SHA=abc, crc32c=x_y, SHA-256={B64['sha256']},",
    ],
)
def test_digest_syntax_variants(value: str) -> None:
    assert parse_digest(value) == [exp("sha256", "Digest")]


def test_digest_sha512() -> None:
    assert parse_digest(f"SHA-512={B64['sha512']}") == [exp("sha512", "Digest")]


def test_digest_unknown_only() -> None:
    assert parse_digest("UNIXsum=1234, SHA=2jmj7l5rSw0yVb/vlWAYkK/YBwk=") == []
    assert parse_digest("") == []


@pytest.mark.parametrize(
    "value",
    [
        "SHA-256",
        "SHA-256=",
        "=abc",
        "SHA 256=abc",
        "SHA-256=ab cd",
        "SHA-256=!!!!",
        "SHA-256=:AAAA:",
        "SHA-256=A",
        "SHA-256=AAAA",
        f"SHA-256={B64['sha512']}",
        f"MD5={B64['sha256']}",
        f"SHA-256={B64['sha256']} MD5={B64['md5']}",
        "UNIXsum",  # structure is checked even for an unknown algorithm
        "SHA\u00e9=abc",
    ],
)
def test_malformed_digest_is_refused(value: str) -> None:
    with pytest.raises(HeaderParseError, match="Digest"):
        parse_digest(value)


# -- Content-MD5 -------------------------------------------------------------------------------


def test_content_md5() -> None:
    assert parse_content_md5(B64["md5"]) == [exp("md5", "Content-MD5")]
    assert parse_content_md5(f" {B64['md5']}\t") == [exp("md5", "Content-MD5")]


@pytest.mark.parametrize(
    "value", ["", "not base64!", B64["sha256"], "AAAA", f"{B64['md5']}, {B64['md5']}"]
)
def test_malformed_content_md5_is_refused(value: str) -> None:
    with pytest.raises(HeaderParseError, match="Content-MD5"):
        parse_content_md5(value)


# -- which headers describe the whole file -----------------------------------------------------

HEADERS = {
    "repr-digest": f"sha-512=:{B64['sha512']}:",
    "digest": f"SHA-256={B64['sha256']}",
    "content-digest": f"sha-256=:{B64['sha256']}:",
    "content-md5": B64["md5"],
    "content-type": "application/json",
}


def test_from_headers_whole_body() -> None:
    assert from_headers(HEADERS, body_is_representation=True) == [
        exp("sha512", "Repr-Digest"),
        exp("sha256", "Digest"),
        exp("sha256", "Content-Digest"),
        exp("md5", "Content-MD5"),
    ]


def test_from_headers_partial_body_ignores_message_digests() -> None:
    # A 206's Content-Digest and Content-MD5 hash that one range, not the file.
    assert from_headers(HEADERS, body_is_representation=False) == [
        exp("sha512", "Repr-Digest"),
        exp("sha256", "Digest"),
    ]
    assert from_headers({"content-md5": "garbage!"}, body_is_representation=False) == []


def test_from_headers_none() -> None:
    assert from_headers({}, body_is_representation=True) == []


def test_from_headers_refuses_a_malformed_header() -> None:
    with pytest.raises(HeaderParseError):
        from_headers({"repr-digest": "sha-256=:AAAA:"}, body_is_representation=False)


# -- Hasher and check --------------------------------------------------------------------------


def test_hasher_matches_hashlib_incrementally() -> None:
    hasher = Hasher(["sha256", "md5", "sha512", "sha256"])
    assert hasher.algorithms == ("sha256", "md5", "sha512")
    hasher.update(PAYLOAD[:5])
    hasher.update(bytearray(PAYLOAD[5:9]))
    hasher.update(memoryview(PAYLOAD)[9:])
    for algorithm, digest in RAW.items():
        assert hasher.digest(algorithm) == digest
        assert hasher.hexdigest(algorithm) == digest.hex()


def test_hasher_refuses_unknown_algorithms() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        Hasher(["sha1"])
    with pytest.raises(ValueError, match="does not compute"):
        Hasher(["sha256"]).digest("md5")
    assert Hasher([]).algorithms == ()
    assert set(DIGEST_SIZES) == {"sha256", "sha512", "md5"}


def test_check_passes_matching_digests() -> None:
    expected = from_headers(HEADERS, body_is_representation=True)
    hasher = Hasher.for_expected(expected)
    hasher.update(PAYLOAD)
    check(expected, hasher)
    check([], hasher)


def test_check_names_the_header_on_mismatch() -> None:
    good = exp("sha256", "Repr-Digest")
    bad = exp("md5", "Content-MD5", hashlib.md5(b"other").digest())
    hasher = Hasher.for_expected([good, bad])
    hasher.update(PAYLOAD)
    with pytest.raises(ChecksumMismatchError, match="Content-MD5") as caught:
        check([good, bad], hasher)
    error = caught.value
    assert isinstance(error, RangeioError)
    assert error.algorithm == "md5"
    assert error.expected == hashlib.md5(b"other").hexdigest()
    assert error.actual == RAW["md5"].hex()


def test_check_catches_a_truncated_download() -> None:
    expected = parse_repr_digest(f"sha-256=:{B64['sha256']}:")
    hasher = Hasher.for_expected(expected)
    hasher.update(PAYLOAD[:-1])
    with pytest.raises(ChecksumMismatchError, match="Repr-Digest header says sha256"):
        check(expected, hasher)


# -- properties --------------------------------------------------------------------------------

PARSERS = [parse_repr_digest, parse_digest, parse_content_md5]
SF_ALPHABET = ' \t,;=:()"?@%*-._/+\\0123456789abcdefmsxyzAZ'


@SETTINGS
@given(st.text(max_size=60) | st.text(SF_ALPHABET, max_size=60))
def test_arbitrary_text_raises_only_header_parse_error(value: str) -> None:
    for parse in PARSERS:
        try:
            result = parse(value)
        except HeaderParseError:
            continue
        assert all(e.algorithm in DIGEST_SIZES for e in result)
        assert all(len(e.digest) == DIGEST_SIZES[e.algorithm] for e in result)


@SETTINGS
@given(
    st.sampled_from(["sha-256=:", "md5=:", "foo=(", 'foo="', 'foo=%"', "SHA-256=", "a=1, "]),
    st.text(SF_ALPHABET, max_size=40),
)
def test_near_valid_text_raises_only_header_parse_error(prefix: str, rest: str) -> None:
    for parse in PARSERS:
        try:
            parse(prefix + rest)
        except HeaderParseError:
            pass


KEYS = {"sha256": "sha-256", "sha512": "sha-512", "md5": "md5"}


@SETTINGS
@given(
    st.lists(st.sampled_from(sorted(DIGEST_SIZES)), unique=True),
    st.lists(st.from_regex(r"[a-z][a-z0-9_.*-]{0,8}", fullmatch=True), max_size=4),
    st.data(),
)
def test_repr_digest_round_trip(
    algorithms: list[str], unknown: list[str], data: st.DataObject
) -> None:
    digests = {
        a: data.draw(st.binary(min_size=DIGEST_SIZES[a], max_size=DIGEST_SIZES[a]))
        for a in algorithms
    }
    members = [f"{KEYS[a]}=:{base64.b64encode(d).decode()}:" for a, d in digests.items()]
    members += [
        f"{k}=:{base64.b64encode(k.encode()).decode()}:" for k in unknown if k not in KEYS.values()
    ]
    order = data.draw(st.permutations(members))
    parsed = parse_repr_digest(", ".join(order))
    assert {e.algorithm: e.digest for e in parsed} == digests
    legacy = ", ".join(
        f"{KEYS[a].upper()}={base64.b64encode(d).decode()}" for a, d in digests.items()
    )
    assert {e.algorithm: e.digest for e in parse_digest(legacy)} == digests
