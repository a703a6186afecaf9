"""The one Dagster entry point: merges each domain's definitions. Loaded lazily so settings are
read when Dagster loads the code location, not at import."""

import dagster as dg

from orchestration.defs import indicators, ingestion, operations, publish, warehouse


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions.merge(
        ingestion.build_defs(),
        warehouse.build_defs(),
        indicators.build_defs(),
        publish.build_defs(),
        operations.build_defs(),
    )
