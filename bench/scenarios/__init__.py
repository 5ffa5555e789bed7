"""The benchmark scenarios, by name, in the order they run.

A scenario is a function taking the invocation's `Context` and returning a
`ScenarioResult`; adding one is a module with such a `run` and a line below.
"""

from __future__ import annotations

from collections.abc import Callable

from bench.context import Context
from bench.outcome import ScenarioResult
from bench.scenarios import (
    cp,
    fleet,
    propagation,
    proxy,
    reload,
    routes,
    workers,
)

Scenario = Callable[[Context], ScenarioResult]

SCENARIOS: dict[str, Scenario] = {
    proxy.NAME: proxy.run,
    routes.NAME: routes.run,
    reload.NAME: reload.run,
    workers.NAME: workers.run,
    propagation.NAME: propagation.run,
    fleet.NAME: fleet.run,
    cp.NAME: cp.run,
}
