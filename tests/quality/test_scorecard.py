"""The scorecard ranks a department whose system was made worse (a higher fault rate) lower, and
its rubric is validated configuration."""

from __future__ import annotations

import duckdb
import pytest
import yaml

from citizen_voice.quality.scorecard import load_rubric
from simulator.generator import SandboxParams

WORSENED_SYSTEM, WORSENED_UNIT = "zhujian", "ZJJ"


@pytest.fixture(scope="module")
def rankings(build_city, tmp_path_factory):
    out = {}
    for case, rates in (("baseline", {}), ("worse", {WORSENED_SYSTEM: 0.2})):
        params = SandboxParams(days=35, orders_per_day=45, seed=77, system_fault_rates=rates)
        built = build_city(tmp_path_factory.mktemp(f"scorecard_{case}"), params)
        with duckdb.connect(str(built["warehouse"]), read_only=True) as con:
            out[case] = {(period, unit): (rank, score) for period, unit, rank, score in con.execute(
                "select period, unit_code, rank, score from quality.scorecard_ranking").fetchall()}
            out[f"{case}_units"] = {period: count for period, count in con.execute(
                "select period, count(*) from quality.scorecard_ranking group by period").fetchall()}
    return out


def test_a_department_with_a_worse_system_ranks_lower(rankings):
    periods = sorted({p for p, u in rankings["worse"] if u == WORSENED_UNIT})
    assert periods
    moved_down = False
    for period in periods:
        base_rank, base_score = rankings["baseline"][(period, WORSENED_UNIT)]
        rank, score = rankings["worse"][(period, WORSENED_UNIT)]
        assert score < base_score, period
        assert rank >= base_rank, period
        moved_down |= rank > base_rank
    assert moved_down  # at least one month where it was not already last and fell


def test_rubric_is_validated_with_clear_errors(tmp_path):
    rubric = load_rubric()
    assert abs(sum(d.weight for d in rubric.dimensions.values()) - 1) < 1e-9
    assert rubric.grade(95) == "优秀" and rubric.grade(10) == "不合格"
    assert rubric.dimensions["validity"].points(1.0) == 100 and rubric.dimensions["validity"].points(0.5) == 0
    broken = yaml.safe_load(open(load_rubric.__globals__["RUBRIC_PATH"], encoding="utf-8"))
    broken["dimensions"]["validity"]["floor"] = 1.0
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(broken, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ValueError, match="floor 1.0 must be below target"):
        load_rubric(path)
    del broken["dimensions"]["timeliness"]
    path.write_text(yaml.safe_dump(broken, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ValueError, match="bad.yaml"):
        load_rubric(path)
