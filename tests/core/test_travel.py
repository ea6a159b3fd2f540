"""What a pickled file carries (`_core/travel.py`): the rules, without a server."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import pytest

from rangeio._core.identity import ETag, Identity
from rangeio._core.options import FileOptions
from rangeio._core.redirects import ResolvedUrl
from rangeio._core.travel import describe, travelling_kwargs, travelling_options

URL = "https://origin.example/f.bin"
IDENTITY = Identity(ETag("abc"), "Mon, 01 Jan 2024 00:00:00 GMT", 1234)


class FakeContext:
    """Looks like an ssl.SSLContext to the options' check (it has wrap_socket)."""

    def wrap_socket(self) -> None:  # pragma: no cover - never called
        raise AssertionError


def test_resolved_url_travels_unless_it_expires() -> None:
    plain = describe(URL, ResolvedUrl("https://cdn.example/f.bin"), IDENTITY, FileOptions())
    assert plain.resolved == "https://cdn.example/f.bin"
    assert plain.target.url == "https://cdn.example/f.bin"
    signed = describe(
        URL, ResolvedUrl("https://s3.example/f?X-Amz-Expires=60", 1e9), IDENTITY, FileOptions()
    )
    assert signed.resolved is None and signed.target.url == URL
    same = describe(URL, ResolvedUrl(URL), IDENTITY, FileOptions())
    assert same.resolved is None and same.identity == IDENTITY


def test_headers_travel_only_when_asked() -> None:
    secret = {"Authorization": "Bearer x"}
    assert travelling_options(FileOptions(headers=secret)).headers == {}
    kept = travelling_options(FileOptions(headers=secret, pickle_headers=True))
    assert kept.headers == secret


@pytest.mark.parametrize("verify", [True, False, "/etc/ca.pem", Path("/etc/ca.pem")])
def test_verify_values_that_travel(verify: object) -> None:
    assert travelling_options(FileOptions(verify=verify)).verify == verify


def test_an_ssl_context_stays_behind_for_full_checking() -> None:
    assert travelling_options(FileOptions(verify=FakeContext())).verify is True
    assert "verify" not in travelling_kwargs({"verify": FakeContext()})


def test_kwargs_leave_clients_and_headers() -> None:
    kwargs = {"client": object(), "async_client": object(), "loop": object(), "headers": {"a": "b"}}
    assert travelling_kwargs({**kwargs, "cache_bytes": 5}) == {"cache_bytes": 5}
    asked = travelling_kwargs({**kwargs, "pickle_headers": True})
    assert asked == {"headers": {"a": "b"}, "pickle_headers": True}


def test_description_pickles_small_and_checks_its_version() -> None:
    description = describe(URL, ResolvedUrl(URL), IDENTITY, FileOptions())
    blob = pickle.dumps(description)
    assert len(blob) < 1500  # no random generator state (RetryPolicy pickles without it)
    assert pickle.loads(blob) == description
    with pytest.raises(ValueError, match="version"):
        dataclasses.replace(description, version=99).check()
