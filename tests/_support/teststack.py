"""The unit tests' stack, tests/unit/scenario/data/teststack (services db, api and
worker; links api->db and worker->api; profiles weak and strong; a `guard` switch),
and a scenario that loads on it: a latency on worker->api, then a restart race of db.
Tests change the scenario by `str.replace`; errors name its lines."""

from __future__ import annotations

from pathlib import Path

TESTSTACK = Path(__file__).parents[1] / "unit" / "scenario" / "data" / "teststack"

GOOD_SCENARIO = f"""\
name: good
seed: 7
stack: {{ref: {TESTSTACK}, profile: weak}}
duration: 60s
timeline:
  - at: 10s
    fault: network.latency
    target: worker->api
    for: 5s
    with: {{latency: 200ms}}
  - at: 20s
    fault: process.restart_race
    target: db
    with: {{downtime: 4s}}
"""
