"""Measure how long a composite runtime group takes to rebuild its config.

A rebuild merges the members' configs, checks them for conflicts and hashes
the result; it happens on every change to any member. Run it with
``python -m bench.composite_merge`` and it prints one JSON line.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Mapping
from typing import Any

import orjson

from shared.schema import validate_entity
from shared.snapshot import Config, build_config, config_hash, merge_members

# How a member's entities split between types, per thousand.
_MIX = {
    "services": 200,
    "routes": 300,
    "consumers": 150,
    "plugins": 100,
    "basicauth_credentials": 100,
    "keyauth_credentials": 100,
    "acls": 50,
}


def _nothing(entity_type: str, key: Mapping[str, Any]) -> str | None:
    return str(key.get("id"))


def _templates() -> dict[str, dict[str, Any]]:
    """Return one complete entity of each type, validated like the admin API."""
    ref = {"id": str(uuid.uuid4())}
    bodies: dict[str, dict[str, Any]] = {
        "services": {"name": "svc", "url": "http://upstream.example:8080/api"},
        "routes": {"name": "route", "paths": ["/api"], "service": ref},
        "consumers": {"username": "user", "custom_id": "cid"},
        "plugins": {"name": "rate-limiting", "service": ref, "config": {"minute": 60}},
        "basicauth_credentials": {"consumer": ref, "username": "u", "password": "pw"},
        "keyauth_credentials": {"consumer": ref, "key": "k"},
        "acls": {"consumer": ref, "group": "admins"},
    }
    return {
        type_name: validate_entity(type_name, body, now=1, resolve=_nothing)
        for type_name, body in bodies.items()
    }


def _member(index: int, size: int, templates: dict[str, dict[str, Any]]) -> Config:
    entities: dict[str, list[dict[str, Any]]] = {}
    for type_name, share in _MIX.items():
        items = []
        for n in range(size * share // 1000):
            entity = dict(templates[type_name])
            entity["id"] = str(uuid.uuid4())
            unique = f"m{index}-{type_name}-{n}"
            for field in ("name", "username", "key", "instance_name"):
                if entity.get(field) is not None or field == "instance_name":
                    entity[field] = unique
            if type_name == "consumers":
                entity["custom_id"] = unique
            items.append(entity)
        entities[type_name] = items
    return build_config(entities)


def measure(members: int, entities: int, runs: int) -> dict[str, Any]:
    """Return the timings of `runs` rebuilds of a composite group."""
    templates = _templates()
    configs = [(f"member-{i}", _member(i, entities, templates)) for i in range(members)]

    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        result = merge_members(configs)
        assert result.config is not None, "benchmark members must not conflict"
        config_hash(result.config)
        timings.append((time.perf_counter() - started) * 1000)

    return {
        "name": "composite_rebuild",
        "ms_p50": round(statistics.median(timings), 2),
        "ms_max": round(max(timings), 2),
        "members": members,
        "entities_per_member": entities,
    }


def main() -> None:
    """Run the benchmark and print its JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--entities", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    outcome = measure(args.members, args.entities, args.runs)
    print(orjson.dumps(outcome).decode())


if __name__ == "__main__":
    main()
