"""Kong's path handling tables (v0 and v1) and request path normalization."""

from __future__ import annotations

import pytest

from data_plane.runtime.paths import normalize_path, upstream_path

# service path, route path, request path, path_handling, strip_path, upstream
KONG_TABLE = [
    ("/s", "/fv0", "/fv0req", "v0", False, "/s/fv0req"),
    ("/s", "/fv1", "/fv1req", "v1", False, "/sfv1req"),
    ("/s", "/tv0", "/tv0req", "v0", True, "/s/req"),
    ("/s", "/tv1", "/tv1req", "v1", True, "/sreq"),
    ("/s", "/fv0/", "/fv0/req", "v0", False, "/s/fv0/req"),
    ("/s", "/fv1/", "/fv1/req", "v1", False, "/sfv1/req"),
    ("/s", "/tv0/", "/tv0/req", "v0", True, "/s/req"),
    ("/s", "/tv1/", "/tv1/req", "v1", True, "/sreq"),
    ("/s/", "/fv0", "/fv0req", "v0", False, "/s/fv0req"),
    ("/s/", "/fv1", "/fv1req", "v1", False, "/s/fv1req"),
    ("/s/", "/tv0", "/tv0req", "v0", True, "/s/req"),
    ("/s/", "/tv1", "/tv1req", "v1", True, "/s/req"),
    ("/s/", "/fv0/", "/fv0/req", "v0", False, "/s/fv0/req"),
    ("/s/", "/fv1/", "/fv1/req", "v1", False, "/s/fv1/req"),
    ("/s/", "/tv0/", "/tv0/req", "v0", True, "/s/req"),
    ("/s/", "/tv1/", "/tv1/req", "v1", True, "/s/req"),
]


@pytest.mark.parametrize(
    ("service", "route", "request_path", "handling", "strip", "expected"), KONG_TABLE
)
def test_the_upstream_path_follows_kongs_table(
    service: str,
    route: str,
    request_path: str,
    handling: str,
    strip: bool,
    expected: str,
) -> None:
    result = upstream_path(
        service,
        request_path,
        len(route),
        strip_path=strip,
        has_paths=True,
        v1=handling == "v1",
    )
    assert result == expected


def test_a_stripped_request_for_the_route_path_itself_goes_to_the_service_path() -> (
    None
):
    result = upstream_path(
        "/base", "/mock", len("/mock"), strip_path=True, has_paths=True, v1=False
    )
    assert result == "/base"


def test_the_root_service_path_forwards_the_rest_of_the_path() -> None:
    result = upstream_path(
        "/", "/mock/x", len("/mock"), strip_path=True, has_paths=True, v1=False
    )
    assert result == "/x"


def test_a_route_without_paths_forwards_the_whole_path() -> None:
    result = upstream_path("/s", "/a/b", 0, strip_path=True, has_paths=False, v1=False)
    assert result == "/s/a/b"


def test_dot_segments_are_removed() -> None:
    assert normalize_path("/a/./b/../c") == "/a/c"


def test_repeated_slashes_are_merged() -> None:
    assert normalize_path("/a//b///c") == "/a/b/c"


def test_unreserved_escapes_are_decoded_and_others_uppercased() -> None:
    assert normalize_path("/%61%2fb") == "/a%2Fb"


def test_an_ordinary_path_is_returned_as_is() -> None:
    path = "/mock/items"
    assert normalize_path(path) is path
