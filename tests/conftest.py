"""Shared test fixtures: real Prometheus processes loaded with fixture scenarios.

`scenario_prometheus(name)` backfills a scenario from inferwatch/sandbox/scenarios into a throwaway Prometheus
(once per test session and scenario) and returns it; every process is stopped by PID at session end.
"""
from __future__ import annotations

import io

import pytest

from inferwatch.sandbox.localprom import LocalPrometheus, write_openmetrics
from inferwatch.sandbox import scenario


def openmetrics_for(sc: scenario.Scenario) -> str:
    buf = io.StringIO()
    write_openmetrics(scenario.synthesize(sc), buf)
    return buf.getvalue()


@pytest.fixture(scope="session")
def scenario_prometheus():
    started: dict[str, LocalPrometheus] = {}

    def get(name: str) -> LocalPrometheus:
        if name not in started:
            sc = scenario.load(name)
            started[name] = LocalPrometheus(openmetrics_for(sc)).start()
        return started[name]

    yield get
    for prom in started.values():
        prom.stop()
