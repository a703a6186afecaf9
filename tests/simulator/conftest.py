"""Shared sandbox cities for the simulator tests: built once per session, read by many tests.

`sandbox` is the small city most tests inspect; `sandbox_twin` is built again from the same
parameters (determinism), `sandbox_other_seed` from a different seed.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from simulator.generator import SandboxParams
from simulator.manifest import build_sandbox

SMALL_CITY = SandboxParams(days=45, orders_per_day=120, seed=7)


@pytest.fixture(scope="session")
def sandbox_params() -> SandboxParams:
    return SMALL_CITY


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory, sandbox_params) -> Path:
    out = tmp_path_factory.mktemp("sandbox")
    build_sandbox(sandbox_params, out)
    return out


@pytest.fixture(scope="session")
def sandbox_twin(tmp_path_factory, sandbox_params, sandbox) -> Path:
    # Built after `sandbox`, and at least a second later than its files: the determinism tests must
    # not pass by the accident of two builds writing their files within the same clock second.
    first_write = min(p.stat().st_mtime for p in sandbox.rglob("*") if p.is_file())
    time.sleep(max(0.0, first_write + 1.1 - time.time()))
    out = tmp_path_factory.mktemp("sandbox_twin")
    build_sandbox(sandbox_params, out)
    return out


@pytest.fixture(scope="session")
def sandbox_other_seed(tmp_path_factory, sandbox_params) -> Path:
    out = tmp_path_factory.mktemp("sandbox_other_seed")
    build_sandbox(replace(sandbox_params, seed=sandbox_params.seed + 1), out)
    return out


@pytest.fixture(scope="session")
def manifest(sandbox) -> dict:
    return json.loads((sandbox / "manifest.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def orders(sandbox) -> list[dict]:
    """truth/work_orders.parquet as a list of dicts, in file order."""
    return pq.read_table(sandbox / "truth" / "work_orders.parquet").to_pylist()


@pytest.fixture(scope="session")
def orders_by_no(orders) -> dict[str, dict]:
    return {o["order_no"]: o for o in orders}


@pytest.fixture(scope="session")
def events(sandbox) -> list[dict]:
    """truth/events.parquet as a list of dicts, in file order."""
    return pq.read_table(sandbox / "truth" / "events.parquet").to_pylist()


@pytest.fixture(scope="session")
def events_by_order(events) -> dict[str, list[dict]]:
    by_order: dict[str, list[dict]] = {}
    for e in events:
        by_order.setdefault(e["order_no"], []).append(e)
    return by_order


@pytest.fixture(scope="session")
def faults(sandbox) -> list[dict]:
    return json.loads((sandbox / "truth" / "faults.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def bursts(sandbox) -> list[dict]:
    return json.loads((sandbox / "truth" / "bursts.json").read_text(encoding="utf-8"))
