"""The one Dagster entry point: merges each domain's definitions, then adds what spans them (jobs,
schedules, alerts, owners, freshness). Loaded lazily so settings are read when Dagster loads the code
location, not at import."""

import dagster as dg

from citizen_voice.memory import use_system_allocator
from orchestration.defs import indicators, ingestion, operations, publish, quality, text, warehouse
from orchestration.storage import relax_event_log_durability

# Who answers for each group of assets (shown in the UI; alerts name the assets).
GROUP_OWNERS = {
    "ingestion": ["team:data-engineering"],
    "reference": ["team:data-engineering"],
    "staging": ["team:data-engineering"],
    "intermediate": ["team:data-engineering"],
    "marts": ["team:data-engineering"],
    "quality": ["team:data-quality"],
    "text": ["team:analytics"],
    "indicators": ["team:analytics"],
    "publish": ["team:citizen-voice-office"],
}


def _owned(spec: dg.AssetSpec) -> dg.AssetSpec:
    spec = spec.replace_attributes(owners=GROUP_OWNERS.get(spec.group_name, spec.owners))
    return operations.with_freshness(spec)


@dg.definitions
def defs() -> dg.Definitions:
    relax_event_log_durability()  # every process that loads the code location stores events
    use_system_allocator()  # so that the jobs' after-step hook can hand freed Arrow memory back
    domains = dg.Definitions.merge(
        ingestion.build_defs(),
        warehouse.build_defs(),
        quality.build_defs(),
        text.build_defs(),
        indicators.build_defs(),
        publish.build_defs(),
    )
    domains = dg.Definitions(  # owners and freshness set once here, for every domain's assets
        assets=dg.map_asset_specs(_owned, domains.assets or []), asset_checks=domains.asset_checks,
        jobs=domains.jobs, schedules=domains.schedules, sensors=domains.sensors, resources=domains.resources)
    return dg.Definitions.merge(domains, operations.build_defs(domains))
