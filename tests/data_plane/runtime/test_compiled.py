"""What a compile builds, and what it takes over from the config being served."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from data_plane.plugins.basic_auth import BasicAuth
from data_plane.plugins.request_termination import RequestTermination
from data_plane.plugins.scoped import ConsumerScoped
from data_plane.runtime.compiled import CompiledConfig, compile_snapshot
from shared.snapshot import make_snapshot

SERVICE = "0b7d4c5e-0000-4000-8000-000000000001"
OTHER = "0b7d4c5e-0000-4000-8000-000000000002"


def _config() -> dict[str, Any]:
    service = {"id": SERVICE, "host": "a.internal", "port": 80, "protocol": "http"}
    other = {"id": OTHER, "host": "b.internal", "port": 80, "protocol": "http"}
    routes = [
        {"id": "r-a", "paths": ["/a"], "service": {"id": SERVICE}},
        {"id": "r-b", "paths": ["/b"], "service": {"id": SERVICE}},
        {"id": "r-c", "paths": ["/c"], "service": {"id": OTHER}},
    ]
    return {
        "services": [service, other],
        "routes": routes,
        "consumers": [{"id": "c-1", "username": "alice"}],
        "plugins": [
            {"id": "p-1", "name": "basic-auth", "route": {"id": "r-b"}, "config": {}}
        ],
        "basicauth_credentials": [],
    }


def _compile(
    config: dict[str, Any], previous: CompiledConfig | None = None
) -> CompiledConfig:
    version = 1 if previous is None else previous.snapshot.version + 1
    return compile_snapshot(make_snapshot("group", version, config), previous)


def _target(compiled: CompiledConfig, path: str) -> Any:
    found = compiled.router.match("GET", "", path, {})
    assert found is not None, path
    return found.target


def test_only_routes_with_scoped_plugins_have_a_chain_of_their_own() -> None:
    compiled = _compile(_config())
    assert set(compiled.chains) == {"r-b"}
    assert [p.name for p in compiled.chain(_target(compiled, "/b"))] == ["basic-auth"]
    assert compiled.chain(_target(compiled, "/a")) == ()


def test_a_global_plugin_is_the_default_chain() -> None:
    config = _config()
    config["plugins"] = [{"id": "p-2", "name": "basic-auth", "config": {}}]
    compiled = _compile(config)
    assert not compiled.chains
    assert [p.name for p in compiled.chain(_target(compiled, "/c"))] == ["basic-auth"]


def test_unchanged_routes_and_services_are_taken_over() -> None:
    first = _compile(_config())
    changed = copy.deepcopy(_config())
    changed["routes"][0]["paths"] = ["/a2"]
    second = _compile(changed, first)

    assert _target(second, "/b") is _target(first, "/b")
    assert _target(second, "/c") is _target(first, "/c")
    assert _target(second, "/a2") is not _target(first, "/a")
    assert second.router.match("GET", "", "/a", {}) is None


@pytest.mark.parametrize("copied", [False, True], ids=["same-entities", "equal"])
def test_a_delta_leaves_the_router_shelves_of_unchanged_routes_shared(
    copied: bool,
) -> None:
    config = _config()
    config["routes"].append(
        {"id": "r-h", "hosts": ["h.example.com"], "service": {"id": OTHER}}
    )
    first = _compile(config)
    # The declarative loader hands over the very entities that did not
    # change; a config from the control plane has equal ones.
    changed = copy.deepcopy(config) if copied else dict(config)
    changed["routes"] = [*changed["routes"][1:], {"id": "r-d", "paths": ["/d"]}]
    second = _compile(changed, first)

    assert second.router._plain["h.example.com"] is first.router._plain["h.example.com"]
    assert second.router._filed["r-h"] is first.router._filed["r-h"]
    assert second.routes["r-b"][2] is first.routes["r-b"][2]
    assert second.upstreams[OTHER][1] is first.upstreams[OTHER][1]
    assert second.router.match("GET", "", "/a", {}) is None
    assert second.router.match("GET", "", "/d", {}) is not None


def test_a_changed_service_gives_its_routes_new_targets() -> None:
    first = _compile(_config())
    changed = copy.deepcopy(_config())
    changed["services"][0]["port"] = 8080
    second = _compile(changed, first)

    moved = _target(second, "/a")
    assert moved.upstream.host_header == "a.internal:8080"
    assert _target(second, "/c") is _target(first, "/c")


def test_plugins_are_built_again_with_the_new_consumers() -> None:
    first = _compile(_config())
    changed = copy.deepcopy(_config())
    changed["consumers"].append({"id": "c-2", "username": "bob"})
    second = _compile(changed, first)

    (old_plugin,) = first.chains["r-b"]
    (new_plugin,) = second.chains["r-b"]
    assert new_plugin is not old_plugin
    assert _target(second, "/b") is _target(first, "/b")


def _with_consumer_plugins() -> dict[str, Any]:
    config = _config()
    config["consumers"].append({"id": "c-2", "username": "bob"})
    config["plugins"] = [
        {"id": "p-1", "name": "basic-auth", "config": {}},
        {"id": "p-2", "name": "request-termination", "config": {"message": "all"}},
        {
            "id": "p-3",
            "name": "request-termination",
            "consumer": {"id": "c-1"},
            "route": {"id": "r-b"},
            "config": {"message": "alice on b"},
        },
    ]
    return config


def test_a_route_without_consumer_scoped_plugins_runs_plain_instances() -> None:
    compiled = _compile(_with_consumer_plugins())
    assert set(compiled.chains) == {"r-b"}
    chain = compiled.chain(_target(compiled, "/a"))
    assert [type(p) for p in chain] == [BasicAuth, RequestTermination]


def test_a_consumer_scoped_instance_is_picked_by_consumer() -> None:
    compiled = _compile(_with_consumer_plugins())
    auth, step = compiled.chain(_target(compiled, "/b"))
    assert isinstance(step, ConsumerScoped)
    default = step.instance(None)
    assert isinstance(default, RequestTermination)
    assert step.instance("c-2") is default
    assert step.instance("c-1") is not default


def test_a_consumer_only_instance_reaches_every_route() -> None:
    config = _with_consumer_plugins()
    config["plugins"][2].pop("route")
    compiled = _compile(config)
    assert not compiled.chains
    _, step = compiled.chain(_target(compiled, "/c"))
    assert isinstance(step, ConsumerScoped)


def test_route_and_service_beat_the_consumer_alone() -> None:
    config = _with_consumer_plugins()
    config["plugins"][2].pop("route")
    config["plugins"].append(
        {
            "id": "p-4",
            "name": "request-termination",
            "route": {"id": "r-a"},
            "service": {"id": SERVICE},
            "config": {"message": "a on its service"},
        }
    )
    compiled = _compile(config)
    _, on_a = compiled.chain(_target(compiled, "/a"))
    assert not isinstance(on_a, ConsumerScoped)  # nobody's instance differs
    _, on_b = compiled.chain(_target(compiled, "/b"))
    assert isinstance(on_b, ConsumerScoped)


def test_chains_run_by_priority_highest_first() -> None:
    config = _config()
    config["plugins"] = [
        {"id": f"p-{name}", "name": name, "config": conf}
        for name, conf in [
            ("request-termination", {}),
            ("acl", {"allow": ["x"]}),
            ("correlation-id", {}),
            ("key-auth", {}),
            ("request-size-limiting", {}),
            ("ip-restriction", {"deny": ["10.0.0.1"]}),
            ("basic-auth", {}),
        ]
    ]
    compiled = _compile(config)
    assert [p.name for p in compiled.default_chain] == [
        "correlation-id",
        "key-auth",
        "basic-auth",
        "ip-restriction",
        "request-size-limiting",
        "acl",
        "request-termination",
    ]


def test_only_chains_with_a_response_phase_have_filters() -> None:
    config = _config()
    config["plugins"].append(
        {"id": "p-2", "name": "cors", "route": {"id": "r-c"}, "config": {}}
    )
    compiled = _compile(config)
    assert compiled.filters_of(_target(compiled, "/a")) == ()
    assert compiled.filters_of(_target(compiled, "/b")) == ()
    [(position, plugin)] = compiled.filters_of(_target(compiled, "/c"))
    assert (position, plugin.name) == (0, "cors")


def test_correlation_id_has_a_response_phase_only_when_it_echoes() -> None:
    config = _config()
    config["plugins"] = [
        {"id": "p-2", "name": "correlation-id", "route": {"id": "r-a"}, "config": {}},
        {
            "id": "p-3",
            "name": "correlation-id",
            "route": {"id": "r-b"},
            "config": {"echo_downstream": True},
        },
    ]
    compiled = _compile(config)
    assert compiled.filters_of(_target(compiled, "/a")) == ()
    assert len(compiled.filters_of(_target(compiled, "/b"))) == 1


def test_a_consumer_scoped_step_responds_when_an_instance_does() -> None:
    config = _with_consumer_plugins()
    config["plugins"].append(
        {
            "id": "p-4",
            "name": "correlation-id",
            "consumer": {"id": "c-1"},
            "route": {"id": "r-a"},
            "config": {"echo_downstream": True},
        }
    )
    compiled = _compile(config)
    [(_, step)] = compiled.filters_of(_target(compiled, "/a"))
    assert isinstance(step, ConsumerScoped)
    assert compiled.filters_of(_target(compiled, "/b")) == ()


def _transformer(plugin_id: str, **more: Any) -> dict[str, Any]:
    return {"id": plugin_id, "name": "response-transformer", **more}


def test_only_chains_that_change_json_bodies_have_a_body_phase() -> None:
    config = _config()
    config["plugins"] += [
        _transformer("p-2", route={"id": "r-a"}, config={"add": {"headers": ["a:1"]}}),
        _transformer("p-3", route={"id": "r-c"}, config={"add": {"json": ["a:1"]}}),
    ]
    compiled = _compile(config)
    assert compiled.bodies_of(_target(compiled, "/a")) == ()
    assert len(compiled.filters_of(_target(compiled, "/a"))) == 1
    assert compiled.bodies_of(_target(compiled, "/b")) == ()
    [plugin] = compiled.bodies_of(_target(compiled, "/c"))
    assert plugin.name == "response-transformer"


def test_a_route_instance_without_json_changes_overrides_a_global_one() -> None:
    config = _config()
    config["plugins"] += [
        _transformer("p-2", config={"add": {"json": ["a:1"]}}),
        _transformer("p-3", route={"id": "r-a"}, config={"add": {"headers": ["a:1"]}}),
    ]
    compiled = _compile(config)
    assert compiled.bodies_of(_target(compiled, "/a")) == ()
    assert len(compiled.bodies_of(_target(compiled, "/c"))) == 1


def test_a_consumer_scoped_step_changes_bodies_when_an_instance_does() -> None:
    config = _with_consumer_plugins()
    config["plugins"].append(
        _transformer("p-4", consumer={"id": "c-1"}, config={"add": {"json": ["a:1"]}})
    )
    compiled = _compile(config)
    [step] = compiled.bodies_of(_target(compiled, "/a"))
    assert isinstance(step, ConsumerScoped)


def test_only_chains_with_a_log_phase_have_loggers() -> None:
    config = _config()
    config["plugins"].append(
        {"id": "p-2", "name": "prometheus", "route": {"id": "r-c"}, "config": {}}
    )
    compiled = _compile(config)
    assert compiled.loggers_of(_target(compiled, "/a")) == ()
    assert compiled.loggers_of(_target(compiled, "/b")) == ()
    [plugin] = compiled.loggers_of(_target(compiled, "/c"))
    assert plugin.name == "prometheus"


def test_a_global_log_phase_plugin_logs_on_every_route() -> None:
    config = _config()
    config["plugins"].append({"id": "p-2", "name": "prometheus", "config": {}})
    compiled = _compile(config)
    for path in ("/a", "/b", "/c"):
        assert len(compiled.loggers_of(_target(compiled, path))) == 1, path


def test_a_target_is_labelled_with_kongs_service_and_route_names() -> None:
    config = _config()
    config["services"][0]["name"] = "svc-a"
    config["routes"][0]["name"] = "route-a"
    config["routes"].append({"id": "r-d", "paths": ["/d"]})
    compiled = _compile(config)
    assert _target(compiled, "/a").labels == ("svc-a", "route-a")
    # Without a name, the service's host and the route's id.
    assert _target(compiled, "/c").labels == ("b.internal", "r-c")
    assert _target(compiled, "/d").labels is None  # no service
