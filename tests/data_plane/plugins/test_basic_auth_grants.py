"""The basic-auth plugin's table of verified headers, in one process.

The node-level behaviour is in test_basic_auth.py; these tests look at what
a second request with the same header costs and what it may not reuse.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

from data_plane.plugins.base import ConfigIndex, RequestContext
from data_plane.plugins.basic_auth import BasicAuth
from shared.credentials import hash_password

HASHED = hash_password("secret")


def _config(password_hash: str = HASHED) -> dict[str, Any]:
    return {
        "consumers": [{"id": "c-1", "username": "alice", "custom_id": None}],
        "basicauth_credentials": [
            {
                "id": "k-1",
                "username": "alice",
                "password": password_hash,
                "consumer": {"id": "c-1"},
            }
        ],
    }


def _header(password: str) -> str:
    return "Basic " + base64.b64encode(f"alice:{password}".encode()).decode()


def _context(headers: dict[str, str]) -> RequestContext:
    return RequestContext("GET", "/", headers, "127.0.0.1")


async def _access(plugin: BasicAuth, headers: dict[str, str]) -> RequestContext:
    ctx = _context(headers)
    answer = plugin.access(ctx)
    if isinstance(answer, asyncio.Future):
        answer = await answer
    assert answer is None, answer
    return ctx


def test_a_verified_header_is_granted_again_without_a_check() -> None:
    async def scenario() -> None:
        plugin = BasicAuth({}, ConfigIndex(_config()))
        await _access(plugin, {"authorization": _header("secret")})

        ctx = _context({"authorization": _header("secret")})
        assert plugin.access(ctx) is None  # answered at once, no future
        assert ctx.consumer is not None and ctx.consumer["id"] == "c-1"
        assert b"X-Consumer-Username: alice\r\n" in ctx.rewrite.block
        assert b"X-Credential-Identifier: alice\r\n" in ctx.rewrite.block
        assert b"x-anonymous-consumer" in ctx.rewrite.names

    asyncio.run(scenario())


def test_the_table_holds_digests_not_the_header() -> None:
    async def scenario() -> None:
        plugin = BasicAuth({}, ConfigIndex(_config()))
        header = _header("secret")
        await _access(plugin, {"authorization": header})
        (key,) = plugin._grants
        assert header.encode() not in key and b"secret" not in key
        assert len(key) == 16

    asyncio.run(scenario())


def test_a_plugin_of_a_new_config_does_not_reuse_grants() -> None:
    async def scenario() -> None:
        old = BasicAuth({}, ConfigIndex(_config()))
        await _access(old, {"authorization": _header("secret")})
        new = BasicAuth({}, ConfigIndex(_config(hash_password("changed"))))
        answer = new.access(_context({"authorization": _header("secret")}))
        if isinstance(answer, asyncio.Future):
            answer = await answer
        assert answer is not None and answer.status == 401

    asyncio.run(scenario())


def test_proxy_authorization_is_not_answered_from_the_table() -> None:
    async def scenario() -> None:
        plugin = BasicAuth({"hide_credentials": True}, ConfigIndex(_config()))
        await _access(plugin, {"authorization": _header("secret")})
        ctx = await _access(
            plugin,
            {
                "proxy-authorization": _header("secret"),
                "authorization": _header("secret"),
            },
        )
        # Proxy-Authorization was the one used, so it is the one hidden.
        assert b"proxy-authorization" in ctx.rewrite.names
        assert b"authorization" not in ctx.rewrite.names

    asyncio.run(scenario())


def test_plugins_of_one_config_share_their_grants() -> None:
    async def scenario() -> None:
        index = ConfigIndex(_config())
        first = BasicAuth({}, index)
        second = BasicAuth({"realm": "other"}, index)
        await _access(first, {"authorization": _header("secret")})
        assert second.access(_context({"authorization": _header("secret")})) is None

    asyncio.run(scenario())


def test_an_unusual_spelling_is_accepted_but_not_granted_again() -> None:
    async def scenario() -> None:
        plugin = BasicAuth({}, ConfigIndex(_config()))
        spelled = "basic  " + _header("secret").removeprefix("Basic ") + " "
        ctx = await _access(plugin, {"authorization": spelled})
        assert ctx.consumer is not None
        assert not plugin._grants

    asyncio.run(scenario())
