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
