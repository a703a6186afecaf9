"""The committed dbt seeds agree with the sandbox city's code lists."""

import csv

import pytest

from citizen_voice import settings
from simulator.reference import reference_tables


@pytest.mark.parametrize("name", list(reference_tables()))
def test_seed_matches_city(name):
    header, rows = reference_tables()[name]
    path = settings.dbt_project_dir() / "seeds" / f"{name}.csv"
    with path.open(encoding="utf-8", newline="") as handle:
        committed = list(csv.reader(handle))
    assert committed[0] == header
    assert committed[1:] == [[str(v) for v in row] for row in rows], f"{path} is stale: run `citizen-voice sandbox seeds`"
