"""Data quality as Dagster assets and asset checks (logic in citizen_voice.quality and expectations/).

- quality/quarantine: runs the raw-layer suites over the staging records (after the dbt seeds and
  staging, before intermediate and marts, which read the table); one blocking check per raw suite
  on it: WARN when records were quarantined (they are kept out, the run goes on), ERROR when a suite
  could not be evaluated or received != clean + quarantined (then nothing downstream runs).
- quality/scorecard: the per-unit scores and the ranked table.
- one blocking check per mart and indicator table: ERROR on any critical failure, so a bulletin is
  never built from data that fails its suite; WARN when only warnings fail.
Check metadata shows failing counts per expectation and masked example values.
"""

import re

import dagster as dg

from citizen_voice import warehouse
from citizen_voice.quality import quarantine, scorecard
from expectations import marts, raw
from expectations.core import ValueSets
from expectations.runner import SuiteResult, remember_passes, run_suites
from orchestration.defs import WAREHOUSE_POOL

QUARANTINE_KEY = dg.AssetKey(["quality", "quarantine"])
SCORECARD_KEY = dg.AssetKey(["quality", "scorecard"])
RECONCILES_CHECK = "received_equals_clean_plus_quarantined"
EXAMPLES = 5


def check_name(suite_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", suite_name)


def _quarantine_inputs() -> list[dg.AssetKey]:
    """The staging models and raw tables the raw suites read, and every source's boundary quarantine."""
    from ingestion.registry import load_registry

    return ([dg.AssetKey(["staging", m]) for m in raw.STAGING_INPUTS] + [dg.AssetKey(list(k)) for k in raw.RAW_INPUTS]
            + [dg.AssetKey([e.dataset, "_quarantine"]) for e in load_registry().sources])


def _failure_metadata(result: SuiteResult) -> dict:
    failed = [r for r in result.results if r.failed]
    table = "\n".join(
        f"| {r.check.name.removeprefix(result.suite.name + '.')} | {r.check.severity} | {r.unexpected_count} | "
        + ", ".join(f"{f['record_key']}: {quarantine.protect(f['value'])}" for f in r.failing[:EXAMPLES])
        .replace("|", "/").replace("\n", " ") + " |" for r in failed)
    return {
        "records": result.rows,
        "records_validated_now": result.rows - result.remembered,  # the others passed before, unchanged
        "expectations": len(result.results),
        "failed_expectations": len(failed),
        "failing_records": sum(r.unexpected_count for r in failed),
        "seconds": round(result.seconds, 3),
        "failures": dg.MetadataValue.md("| expectation | severity | records | examples (masked) |\n|---|---|---|---|\n"
                                        + table) if failed else "none",
        "errors": "; ".join(result.errors) or "none",
    }


def quarantine_asset() -> dg.AssetsDefinition:
    """Built when the definitions load (the source registry is read then, not at import)."""
    @dg.multi_asset(
        specs=[dg.AssetSpec(QUARANTINE_KEY, deps=_quarantine_inputs(), group_name="quality", kinds={"python", "duckdb"},
                            description="Records failing a critical expectation (and those the ingestion boundary "
                                        "rejected), kept out of the intermediate layer and marts; per-day counts.")],
        check_specs=[dg.AssetCheckSpec(check_name(name), asset=QUARANTINE_KEY, blocking=True,
                                       description=f"Great Expectations suite {name}") for name in raw.SUITE_NAMES]
        + [dg.AssetCheckSpec(RECONCILES_CHECK, asset=QUARANTINE_KEY, blocking=True,
                             description="received = clean + quarantined for every source, table and day")],
        pool=WAREHOUSE_POOL,
        name="quality_quarantine",
    )
    def quality_quarantine(context: dg.AssetExecutionContext):
        run = quarantine.run_quarantine()
        for result in run.suite_results:
            critical = result.failed("critical")
            severity = dg.AssetCheckSeverity.ERROR if result.errors else dg.AssetCheckSeverity.WARN
            yield dg.AssetCheckResult(check_name=check_name(result.suite.name), asset_key=QUARANTINE_KEY,
                                      passed=not result.errors and not result.failed(), severity=severity,
                                      metadata={**_failure_metadata(result),
                                                "quarantined_records": len({f["record_key"] for r in critical
                                                                            for f in r.failing})})
        mismatched = [c for c in run.counts if c["received"] != c["clean"] + c["quarantined"]]
        yield dg.AssetCheckResult(check_name=RECONCILES_CHECK, asset_key=QUARANTINE_KEY, passed=not mismatched,
                                  severity=dg.AssetCheckSeverity.ERROR,
                                  metadata={**run.totals(), "mismatched_days": len(mismatched)})
        yield dg.MaterializeResult(asset_key=QUARANTINE_KEY, metadata={
            **run.totals(), "quarantine_rows": len(run.failures), "warning_rows": len(run.warnings),
            "seconds": round(run.seconds, 2)})

    return quality_quarantine


@dg.asset(key=SCORECARD_KEY, deps=[QUARANTINE_KEY], group_name="quality", pool=WAREHOUSE_POOL,
          kinds={"python", "duckdb"},
          description="数据质量评分: scores per reporting unit per day and month, and the ranked table "
                      "(rubric: expectations/scorecard.yaml).")
def quality_scorecard(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    tables = scorecard.run_scorecard()
    ranking = tables["scorecard_ranking"]
    latest = ranking[ranking["period"] == ranking["period"].max()] if len(ranking) else ranking
    return dg.MaterializeResult(metadata={
        "daily_rows": len(tables["scorecard_daily"]), "monthly_rows": len(tables["scorecard_monthly"]),
        "latest_ranking": dg.MetadataValue.md("| 排名 | 单位 | 得分 | 等级 |\n|---|---|---|---|\n" + "\n".join(
            f"| {r.rank} | {r.unit_name} | {r.score:.2f} | {r.grade} |" for r in latest.itertuples()))
        if len(latest) else "none"})


def _suite_check(asset_key: tuple[str, ...]) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=dg.AssetKey(list(asset_key)), name=f"suite_{check_name(asset_key[-1])}", blocking=True,
                    pool=WAREHOUSE_POOL, description=f"Great Expectations suite {'.'.join(asset_key)}")
    def suite_check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        with warehouse.connect(read_only=True) as con:
            values = ValueSets(con)
            results = run_suites(con, marts.suites_for(asset_key, values), remember=True)
        with warehouse.connect() as con:
            remember_passes(con, results)
        critical = [r for result in results for r in result.failed("critical")]
        errors = [e for result in results for e in result.errors]
        severity = dg.AssetCheckSeverity.ERROR if (critical or errors) else dg.AssetCheckSeverity.WARN
        metadata = _failure_metadata(results[0]) if len(results) == 1 else {
            "tables": ", ".join(r.suite.name for r in results), "records": sum(r.rows for r in results),
            "failing_records": sum(c.unexpected_count for r in results for c in r.failed()),
            "failures": dg.MetadataValue.md("\n".join(
                f"- {c.check.name}: {c.unexpected_count} ({c.check.severity})" for r in results for c in r.failed())
                or "none"),
            "errors": "; ".join(errors) or "none"}
        return dg.AssetCheckResult(passed=not any(r.failed() for r in results) and not errors, severity=severity,
                                   metadata=metadata)
    return suite_check


def indicator_keys() -> list[tuple[str, ...]]:
    """The indicator tables the indicators domain materializes (its asset keys under indicators/)."""
    from orchestration.defs import indicators

    keys = indicators.build_defs().resolve_asset_graph().get_all_asset_keys()
    return sorted(tuple(k.path) for k in keys if k.path[0] == "indicators" and len(k.path) == 2)


def build_defs() -> dg.Definitions:
    checked = [*marts.MART_SUITES, *indicator_keys()]
    return dg.Definitions(assets=[quarantine_asset(), quality_scorecard],
                          asset_checks=[_suite_check(key) for key in checked])
