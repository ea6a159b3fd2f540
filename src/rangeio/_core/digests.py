"""Integrity digests announced in headers (Repr-Digest, Content-Digest, Digest, Content-MD5) and the check."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NoReturn

from rangeio.errors import ChecksumMismatchError, HeaderParseError

# Digest length per supported algorithm, in bytes; also the set of names a Hasher accepts.
DIGEST_SIZES = {"sha256": 32, "sha512": 64, "md5": 16}
# RFC 9530 §7.2 keys. Structured Field keys are lower-case by syntax, so no folding here.
_SF_ALGORITHMS = {"sha-256": "sha256", "sha-512": "sha512", "md5": "md5"}
# RFC 3230 §4.1.1 / RFC 5843 names; §4.1.1 says they are case-insensitive.
_LEGACY_ALGORITHMS = {"sha-256": "sha256", "sha-512": "sha512", "md5": "md5"}

_OWS = " \t"
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 8941 §3.3.4 token: a tchar sequence that may also hold ":" and "/", starting with ALPHA or "*".
_SF_TOKEN = re.compile(r"[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*")
_SF_KEY = re.compile(r"[a-z*][a-z0-9_\-.*]*")
_SF_NUMBER = re.compile(r"-?(?P<int>[0-9]+)(?:\.(?P<frac>[0-9]+))?")
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class ExpectedDigest:
    """A digest the server announced: ``algorithm`` is a DIGEST_SIZES key, ``source`` the header name."""

    algorithm: str
    digest: bytes
    source: str

    @property
    def hex(self) -> str:
        return self.digest.hex()


# -- the headers -------------------------------------------------------------------------------


def parse_repr_digest(value: str, source: str = "Repr-Digest") -> list[ExpectedDigest]:
    """Parse an RFC 9530 ``Repr-Digest`` (or, with ``source="Content-Digest"``, a Content-Digest):
    a Structured Field Dictionary of algorithm keys to byte sequences. Unknown keys are ignored
    whatever their value; a known key whose value is not a digest of the right size is an error."""
    found: list[ExpectedDigest] = []
    for key, item in _SFParser(value, source).dictionary().items():
        algorithm = _SF_ALGORITHMS.get(key)
        if algorithm is None:
            continue
        if not isinstance(item, bytes):
            _fail(source, f"the {key} value is not a byte sequence (:base64:)")
        found.append(_expected(algorithm, item, source))
    return found


def parse_digest(value: str, source: str = "Digest") -> list[ExpectedDigest]:
    """Parse an RFC 3230 ``Digest``: comma-separated ``algorithm=base64`` with case-insensitive
    names. Unknown algorithms are ignored; their values follow unknown rules, so go unchecked."""
    found: list[ExpectedDigest] = []
    for element in value.split(","):
        element = element.strip(_OWS)
        if not element:
            # RFC 9110 §5.6.1: empty list elements are allowed and mean nothing.
            continue
        name, equals, encoded = element.partition("=")
        name, encoded = name.strip(_OWS), encoded.strip(_OWS)
        if not equals or not _TOKEN.fullmatch(name) or not encoded:
            _fail(source, f"{element[:40]!r} is not algorithm=value")
        algorithm = _LEGACY_ALGORITHMS.get(name.lower())
        if algorithm is not None:
            found.append(_expected(algorithm, _base64(encoded, source), source))
    return found


def parse_content_md5(value: str, source: str = "Content-MD5") -> list[ExpectedDigest]:
    """Parse an RFC 1864 ``Content-MD5``: the base64 MD5 of the message body."""
    return [_expected("md5", _base64(value.strip(_OWS), source), source)]


def from_headers(
    headers: Mapping[str, str], *, body_is_representation: bool
) -> list[ExpectedDigest]:
    """Every supported digest of the whole file in folded (lower-case) ``headers``.

    Repr-Digest and Digest describe the selected representation, so they hold for any response.
    Content-Digest and Content-MD5 describe this message's body only, so they are taken only
    when ``body_is_representation``: a 200 without Content-Encoding, not a 206 of one range.
    """
    found: list[ExpectedDigest] = []
    if "repr-digest" in headers:
        found += parse_repr_digest(headers["repr-digest"])
    if "digest" in headers:
        found += parse_digest(headers["digest"])
    if body_is_representation:
        if "content-digest" in headers:
            found += parse_repr_digest(headers["content-digest"], "Content-Digest")
        if "content-md5" in headers:
            found += parse_content_md5(headers["content-md5"])
    return found


def _expected(algorithm: str, digest: bytes, source: str) -> ExpectedDigest:
    size = DIGEST_SIZES[algorithm]
    if len(digest) != size:
        _fail(source, f"a {algorithm} digest is {size} bytes, this one is {len(digest)}")
    return ExpectedDigest(algorithm, digest, source)


def _base64(text: str, source: str) -> bytes:
    # RFC 8941 §4.2.7: missing "=" padding and non-zero pad bits are tolerated; both are common
    # and neither makes the value ambiguous. A wrong alphabet or a stray character is not.
    if not _BASE64.fullmatch(text):
        _fail(source, f"{text[:40]!r} is not base64")
    bare = text.rstrip("=")
    if len(bare) % 4 == 1:
        _fail(source, f"{text[:40]!r} is not base64 (impossible length)")
    try:
        return base64.b64decode(bare + "=" * (-len(bare) % 4), validate=True)
    except (binascii.Error, ValueError):  # pragma: no cover - the checks above rule it out
        _fail(source, f"{text[:40]!r} is not base64")


def _fail(source: str, message: str) -> NoReturn:
    raise HeaderParseError(f"malformed {source} header: {message}")


# -- RFC 8941 Structured Field Dictionary -------------------------------------------------------


class _Token(str):
    """An sf-token, kept apart from an sf-string so a token is never mistaken for one."""


class _SFParser:
    """RFC 8941 §4.2 parsing of a Dictionary (with RFC 9651's Date and Display String too, so that
    a newer item under an unknown key does not fail the digests we do know). Every item is parsed
    and checked, but parameters are dropped: no digest parameter changes what is compared."""

    def __init__(self, text: str, source: str) -> None:
        # §4.2 step 2 strips SP; HTAB as well, since it is HTTP OWS and some stacks leave it in.
        self.text = text.strip(_OWS)
        self.pos = 0
        self.source = source

    def fail(self, message: str) -> NoReturn:
        _fail(self.source, f"{message} at offset {self.pos}")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def take(self) -> str:
        char = self.peek()
        if not char:
            self.fail("unexpected end")
        self.pos += 1
        return char

    def skip(self, chars: str) -> None:
        while self.peek() and self.peek() in chars:
            self.pos += 1

    def match(self, pattern: re.Pattern[str], what: str) -> re.Match[str]:
        m = pattern.match(self.text, self.pos)
        if m is None:
            self.fail(f"expected {what}")
        self.pos = m.end()
        return m

    def dictionary(self) -> dict[str, object]:
        """§4.2.2. A repeated key overwrites the earlier value, as the RFC says."""
        members: dict[str, object] = {}
        while self.pos < len(self.text):
            key = self.match(_SF_KEY, "a key").group()
            if self.peek() == "=":
                self.pos += 1
                members[key] = self.item_or_inner_list()
            else:
                members[key] = True
                self.parameters()
            self.skip(_OWS)
            if self.pos == len(self.text):
                break
            if self.peek() != ",":
                self.fail("expected ','")
            self.pos += 1
            self.skip(_OWS)
            if self.pos == len(self.text):
                self.fail("trailing ','")
        return members

    def item_or_inner_list(self) -> object:
        if self.peek() != "(":
            return self.item()
        self.pos += 1
        items: list[object] = []
        while True:
            self.skip(" ")
            if self.peek() == ")":
                self.pos += 1
                self.parameters()
                return items
            items.append(self.item())
            if self.peek() not in (" ", ")"):
                self.fail("expected ' ' or ')' in an inner list")

    def item(self) -> object:
        value = self.bare_item()
        self.parameters()
        return value

    def parameters(self) -> None:
        while self.peek() == ";":
            self.pos += 1
            self.skip(" ")
            self.match(_SF_KEY, "a parameter key")
            if self.peek() == "=":
                self.pos += 1
                self.bare_item()

    def bare_item(self) -> object:
        char = self.peek()
        if char and char in "-0123456789":
            return self.number()
        if char == '"':
            return self.string()
        if char == ":":
            return self.byte_sequence()
        if char == "?":
            self.pos += 1
            flag = self.take()
            if flag not in "01":
                self.fail("expected ?0 or ?1")
            return flag == "1"
        if char == "@":
            self.pos += 1
            date = self.number()
            if not isinstance(date, int):
                self.fail("a date must be an integer")
            return date
        if char == "%":
            return self.display_string()
        if char == "*" or (char.isascii() and char.isalpha()):
            return _Token(self.match(_SF_TOKEN, "a token").group())
        self.fail("expected an item")

    def number(self) -> int | float:
        m = self.match(_SF_NUMBER, "a number")
        digits, fraction = m.group("int"), m.group("frac")
        if fraction is None:
            if len(digits) > 15:
                self.fail("an integer has at most 15 digits")
            return int(m.group())
        if len(digits) > 12 or len(fraction) > 3:
            self.fail("a decimal has at most 12 integer and 3 fractional digits")
        return float(m.group())

    def string(self) -> str:
        self.pos += 1
        chars: list[str] = []
        while True:
            char = self.take()
            if char == "\\":
                char = self.take()
                if char not in ('"', "\\"):
                    self.fail("bad escape in a string")
            elif char == '"':
                return "".join(chars)
            elif not " " <= char <= "~":
                self.fail("a string holds only printable ASCII")
            chars.append(char)

    def byte_sequence(self) -> bytes:
        self.pos += 1
        end = self.text.find(":", self.pos)
        if end < 0:
            self.fail("unterminated byte sequence")
        encoded = self.text[self.pos : end]
        decoded = _base64(encoded, self.source)
        self.pos = end + 1
        return decoded

    def display_string(self) -> str:
        self.pos += 1
        if self.take() != '"':
            self.fail("expected '\"' after '%'")
        data = bytearray()
        while True:
            char = self.take()
            if char == "%":
                pair = self.take() + self.take()
                if not set(pair) <= _HEX:
                    self.fail("a display string escape is two lower-case hex digits")
                data.append(int(pair, 16))
            elif char == '"':
                try:
                    return data.decode("utf-8")
                except UnicodeDecodeError:
                    self.fail("a display string is not UTF-8")
            elif " " <= char <= "~":
                data.append(ord(char))
            else:
                self.fail("a display string holds only printable ASCII")


# -- hashing and checking ----------------------------------------------------------------------


class Hasher:
    """Running hashes of one byte stream, for a fixed set of DIGEST_SIZES algorithms."""

    __slots__ = ("_hashes",)

    def __init__(self, algorithms: Iterable[str]) -> None:
        self._hashes: dict[str, hashlib._Hash] = {}
        for algorithm in algorithms:
            if algorithm not in DIGEST_SIZES:
                raise ValueError(f"unsupported digest algorithm {algorithm!r}")
            if algorithm not in self._hashes:
                # Integrity against accidental damage, not security: without this flag MD5 is
                # refused outright on FIPS-mode builds.
                self._hashes[algorithm] = hashlib.new(algorithm, usedforsecurity=False)

    @classmethod
    def for_expected(cls, expected: Iterable[ExpectedDigest]) -> Hasher:
        return cls(e.algorithm for e in expected)

    @property
    def algorithms(self) -> tuple[str, ...]:
        return tuple(self._hashes)

    def update(self, data: bytes | bytearray | memoryview) -> None:
        for h in self._hashes.values():
            h.update(data)

    def digest(self, algorithm: str) -> bytes:
        return self._get(algorithm).digest()

    def hexdigest(self, algorithm: str) -> str:
        return self._get(algorithm).hexdigest()

    def _get(self, algorithm: str) -> hashlib._Hash:
        try:
            return self._hashes[algorithm]
        except KeyError:
            raise ValueError(f"this Hasher does not compute {algorithm!r}") from None


def check(expected: Iterable[ExpectedDigest], hasher: Hasher) -> None:
    """Raise ChecksumMismatchError at the first announced digest the bytes do not match."""
    for e in expected:
        actual = hasher.digest(e.algorithm)
        if actual != e.digest:
            raise ChecksumMismatchError(
                f"{e.source} header says {e.algorithm} {e.hex}, the downloaded bytes hash to "
                f"{actual.hex()}",
                expected=e.hex,
                actual=actual.hex(),
                algorithm=e.algorithm,
            )
