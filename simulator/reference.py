"""The platform's reference code lists (dbt seeds), derived from the sandbox city.

The seeds in dbt_project/seeds are committed files (a real city edits them by hand); a test
checks they agree with the sandbox city. Regenerate with `citizen-voice sandbox seeds`.
"""

from __future__ import annotations

import csv
from pathlib import Path

from simulator import city, exports


def reference_tables() -> dict[str, tuple[list[str], list[list]]]:
    return {
        "ref_districts": (["district_code", "district_name", "district_pinyin"],
                          [[d.code, d.name, d.pinyin] for d in city.DISTRICTS]),
        "ref_streets": (["street_code", "street_name", "street_kind", "district_code"],
                        [[s.code, s.name, s.kind, d.code] for d, s in city.all_streets()]),
        "ref_communities": (["community_code", "community_name", "street_code"],
                            [[c.code, c.name, s.code] for _, s in city.all_streets() for c in s.communities]),
        "ref_departments": (["department_code", "department_name", "peer_group", "district_code"],
                            [[d.code, d.name, d.peer_group, d.district_code or ""] for d in city.DEPARTMENTS]),
        "ref_categories": (["category_code", "category_name", "category_l2_code", "category_l2_name",
                            "category_l1_code", "category_l1_name", "default_department"],
                           [[c.code, c.name, c.l2_code, c.l2_name, c.l1_code, c.l1_name, c.department]
                            for c in city.CATEGORIES]),
        "ref_channels": (["channel_code", "channel_name"], [[c, n] for c, n, _ in city.CHANNELS]),
        "ref_demand_types": (["demand_type_code", "demand_type_name", "time_limit_working_days"],
                             [[c, n, "" if lim is None else lim] for c, n, _, lim in city.DEMAND_TYPES]),
        "map_zhujian_categories": (["source_code", "category_code"],
                                   [[exports.zhujian_category_code(c.code), c.code] for c in city.CATEGORIES]),
        "ref_event_types": (["event_type", "event_type_name"], [list(e) for e in city.EVENT_TYPES]),
        **department_code_maps(),
    }


# A department's ticket status in the platform's vocabulary, with its Chinese name.
TICKET_STATUS_NAMES = {"pending": "待签收", "handling": "办理中", "closed": "已办结", "returned": "已退回"}
# 主办 / 协办: the unit's role on a work order.
ROLE_CODES = {"主办": "lead", "协办": "assist"}
# Follow-up results (回访) in the platform's vocabulary.
SATISFACTION_STANDARD = {"满意": "satisfied", "基本满意": "basically_satisfied", "不满意": "dissatisfied",
                         "未评价": "not_rated"}
RESOLUTION_STANDARD = {"解决": "resolved", "部分解决": "partially_resolved", "未解决": "unresolved"}
# 供电公司's catch-all fault type: a known code that names no specific platform category.
GONGDIAN_OTHER_FAULT_TYPE = "E99"


def department_code_maps() -> dict[str, tuple[list[str], list[list]]]:
    """Each department system's own codes mapped to the platform's standard codes (the staging
    models join these; a code missing here is an unknown code, flagged and mapped to NULL)."""

    def statuses(source: dict[str, str]) -> list[list]:
        return [[code, status, TICKET_STATUS_NAMES[status]] for status, code in source.items()]

    return {
        "map_app311_services": (["service_code", "category_code"],
                                [[exports.open311_service_code(c.code), c.code] for c in city.CATEGORIES]),
        "map_zhujian_statuses": (["source_code", "status", "status_name"], statuses(exports.ZHUJIAN_STATUS)),
        "map_zhujian_roles": (["source_value", "role"], [[k, v] for k, v in ROLE_CODES.items()]),
        "map_zhujian_actions": (["source_value", "event_type"],
                                [[name, event_type] for event_type, name in exports.LZ_ACTIONS.items()]),
        "map_chengguan_statuses": (["source_value", "status", "status_name"], statuses(exports.CHENGGUAN_STATUS)),
        "map_gongdian_fault_types": (["source_code", "category_code"],
                                     [*([code, category] for category, code in exports.GONGDIAN_FAULT_TYPES.items()),
                                      [GONGDIAN_OTHER_FAULT_TYPE, ""]]),
        "map_gongdian_states": (["source_code", "status", "status_name"], statuses(exports.GONGDIAN_STATUS)),
        "map_survey_satisfaction": (["source_code", "satisfaction", "satisfaction_name"],
                                    [[code, SATISFACTION_STANDARD[name], name]
                                     for name, code in exports.SATISFACTION_CODES.items()]),
        "map_survey_resolution": (["source_code", "resolution", "resolution_name"],
                                  [[code, RESOLUTION_STANDARD[name], name]
                                   for name, code in exports.RESOLUTION_CODES.items()]),
    }


def write_seeds(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (header, rows) in reference_tables().items():
        path = folder / f"{name}.csv"
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)
        written.append(path)
    return written
