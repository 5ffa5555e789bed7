"""Kong's plugin semantics through a real node: scopes, consumers, order.

- The same plugin at several scopes: the most specific wins, in Kong's
  order route+service+consumer, route+consumer, service+consumer,
  route+service, consumer, route, service, global.
- Consumer-scoped instances apply once authentication named the consumer.
- Authentication plugins with `anonymous` combine as a logical OR.
- Plugins run by PRIORITY, highest first.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import deadline
from tests.support.dataplane import EchoProcess, start_data_plane, start_echo


def _stop(message: str, **scope: Any) -> dict[str, Any]:
    """Return a request-termination answering 418 with `message`."""
    config = {"status_code": 418, "message": message}
    return {"name": "request-termination", "config": config, **scope}


def _named(name: str) -> dict[str, str]:
    return {"name": name}


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _config(echo: EchoProcess) -> dict[str, Any]:
    either = [
        {"name": "key-auth", "config": {"anonymous": "guest"}},
        {"name": "basic-auth", "config": {"anonymous": "guest"}},
    ]
    ordered = [
        {"name": "key-auth"},
        {"name": "correlation-id"},
        {"name": "ip-restriction", "config": {"allow": ["10.0.0.0/8"]}},
        {"name": "acl", "config": {"allow": ["admins"]}},
        _stop("ordered"),
    ]
    sized = [
        {"name": "acl", "config": {"allow": ["admins"]}},
        {
            "name": "request-size-limiting",
            "config": {"allowed_payload_size": 4, "size_unit": "bytes"},
        },
        _stop("sized"),
    ]
    return {
        "_format_version": "3.0",
        "services": [
            {
                "name": "s1",
                "url": echo.url,
                "routes": [
                    {
                        "name": "r1",
                        "paths": ["/r1"],
                        "plugins": [_stop("route+service", service=_named("s1"))],
                    },
                    {"name": "r2", "paths": ["/r2"], "plugins": [_stop("route")]},
                    {"name": "r4", "paths": ["/r4"]},
                    {"name": "either", "paths": ["/either"], "plugins": either},
                    {"name": "ordered", "paths": ["/ordered"], "plugins": ordered},
                    {"name": "sized", "paths": ["/sized"], "plugins": sized},
                ],
            },
            {
                "name": "s2",
                "url": echo.url,
                "routes": [{"name": "r3", "paths": ["/r3"]}],
                "plugins": [_stop("service")],
            },
        ],
        "consumers": [
            {
                "username": "alice",
                "keyauth_credentials": [{"key": "alice-key"}],
                "acls": [{"group": "admins"}],
                "plugins": [
                    _stop("consumer"),
                    _stop("route+consumer", route=_named("r2")),
                ],
            },
            {
                "username": "bob",
                "keyauth_credentials": [{"key": "bob-key"}],
                "basicauth_credentials": [{"username": "bob", "password": "pw"}],
                "plugins": [
                    _stop("service+consumer", service=_named("s2")),
                    _stop(
                        "route+service+consumer",
                        route=_named("r1"),
                        service=_named("s1"),
                    ),
                ],
            },
            {"username": "carol", "keyauth_credentials": [{"key": "carol-key"}]},
            {
                "username": "dave",
                "keyauth_credentials": [{"key": "dave-key"}],
                "acls": [{"group": "admins"}],
            },
            {
                "username": "guest",
                # Kong's recipe: whoever no auth plugin identified is refused.
                "plugins": [
                    {
                        "name": "request-termination",
                        "config": {"status_code": 401, "message": "Unauthorized"},
                    }
                ],
            },
        ],
        "plugins": [
            {"name": "key-auth", "config": {"anonymous": "guest"}},
            # Only requests that ask for it reach the global instance, so
            # that the routes below that have none answer from the upstream.
            {
                **_stop("global"),
                "config": {**_stop("global")["config"], "trigger": "X-Stop"},
            },
        ],
    }


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    with start_echo(tmp_path_factory.mktemp("echo")) as echo:
        config = _config(echo)
        with start_data_plane(tmp_path_factory.mktemp("dp"), declarative=config) as dp:
            with httpx.Client(base_url=dp.proxy_url, timeout=deadline(10)) as http:
                yield http


def _answer(client: httpx.Client, path: str, who: str) -> str:
    reply = client.get(path, headers={"apikey": f"{who}-key", "X-Stop": "1"})
    assert reply.status_code == 418, reply.text
    message: str = reply.json()["message"]
    return message


@pytest.mark.parametrize(
    ("who", "path", "expected"),
    [
        # carol has no instance of her own: route and service scopes decide.
        ("carol", "/r1", "route+service"),
        ("carol", "/r2", "route"),
        ("carol", "/r3", "service"),
        ("carol", "/r4", "global"),
        # alice: route+service (4) beats consumer (5), which beats route (6)
        # and service (7).
        ("alice", "/r1", "route+service"),
        ("alice", "/r2", "route+consumer"),
        ("alice", "/r3", "consumer"),
        ("alice", "/r4", "consumer"),
        # bob's instances name a route and a service, or a service.
        ("bob", "/r1", "route+service+consumer"),
        ("bob", "/r2", "route"),
        ("bob", "/r3", "service+consumer"),
        ("bob", "/r4", "global"),
    ],
)
def test_the_most_specific_scope_wins(
    client: httpx.Client, who: str, path: str, expected: str
) -> None:
    assert _answer(client, path, who) == expected


def test_a_consumer_scoped_plugin_applies_after_authentication(
    client: httpx.Client,
) -> None:
    """The anonymous consumer's request-termination refuses the unidentified."""
    reply = client.get("/r4")
    assert reply.status_code == 401
    assert reply.json() == {"message": "Unauthorized"}


def test_auth_plugins_with_anonymous_combine_as_a_logical_or(
    client: httpx.Client,
) -> None:
    by_key = client.get("/either", headers={"apikey": "carol-key"})
    assert by_key.status_code == 200
    assert by_key.json()["headers"]["x-consumer-username"] == "carol"

    by_password = client.get("/either", headers={"Authorization": _basic("bob", "pw")})
    assert by_password.status_code == 200
    headers = by_password.json()["headers"]
    assert headers["x-consumer-username"] == "bob"
    assert headers["x-credential-identifier"] == "bob"
    assert "x-anonymous-consumer" not in headers

    wrong_key = client.get(
        "/either",
        headers={"apikey": "nope", "Authorization": _basic("bob", "pw")},
    )
    assert wrong_key.json()["headers"]["x-consumer-username"] == "bob"

    neither = client.get("/either", headers={"Authorization": _basic("bob", "no")})
    assert neither.status_code == 401
    assert neither.json() == {"message": "Unauthorized"}


def test_plugins_run_in_priority_order(client: httpx.Client) -> None:
    # key-auth (1250) answers before ip-restriction (990) refuses the address.
    no_key = client.get("/ordered", headers={"apikey": "nope"})
    assert no_key.status_code == 401
    assert no_key.json() == {"message": "Unauthorized"}
    # With a key, ip-restriction (990) refuses before acl (950) is asked.
    assert client.get("/ordered", headers={"apikey": "carol-key"}).json() == {
        "message": "IP address not allowed: 127.0.0.1"
    }


def test_size_limiting_runs_before_acl(client: httpx.Client) -> None:
    # request-size-limiting (951) answers before acl (950), which answers
    # before request-termination (2).
    carol = {"apikey": "carol-key"}
    assert client.post("/sized", headers=carol, content=b"12345").status_code == 413
    assert client.post("/sized", headers=carol, content=b"1234").status_code == 403
    dave = {"apikey": "dave-key"}
    reply = client.post("/sized", headers=dave, content=b"1234")
    assert reply.status_code == 418
    assert reply.json() == {"message": "sized"}
