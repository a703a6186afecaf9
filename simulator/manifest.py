"""Build a sandbox city on disk: the department systems' data and the ground-truth manifest.

Layout under the sandbox folder:
  systems/hotline.sqlite      central 12345 system (served as a JSON API)
  systems/open311.sqlite      city app channel (served as Open311 GeoReport v2)
  systems/zhujian.sqlite      住建局's ticket database (SQLite; copied to PostgreSQL on request)
  drops/chengguan/*.csv       城管局's daily GBK CSV drops
  drops/gongdian/*.xlsx       供电公司's daily XLSX drops
  exports/survey/*.json       回访 survey system's daily exports
  truth/*.parquet|json        what really happened (see manifest.json)
  manifest.json               parameters, counts, files, bursts and fault summary
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from simulator import exports
from simulator.generator import SandboxParams, SandboxTruth, generate

MANIFEST_VERSION = 2  # bump when the generator's output changes for the same parameters


def _write_parquet(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def _order_truth(truth: SandboxTruth) -> list[dict]:
    rows = []
    for o in truth.orders:
        rows.append({
            "order_no": o.order_no, "received_at": o.received_at, "channel_code": o.channel_code,
            "demand_type_code": o.demand_type_code, "urgency": o.urgency, "category_code": o.category_code,
            "district_code": o.district_code, "street_code": o.street_code, "community_code": o.community_code,
            "address": o.address, "title": o.title, "content": o.content, "caller_key": o.caller_key,
            "confidential": o.confidential, "pii_in_text": o.pii_in_text, "external_ref": o.external_ref,
            "status": o.status, "is_direct_answer": o.is_direct_answer, "lead_dept_code": o.lead_dept_code,
            "assist_dept_codes": ",".join(o.assist_dept_codes) or None, "dispatched_at": o.dispatched_at,
            "signed_at": o.signed_at, "sign_due_at": o.sign_due_at, "due_at": o.due_at,
            "base_due_at": o.base_due_at, "closed_at": o.closed_at, "visited_at": o.visited_at,
            "resolution": o.resolution, "satisfaction": o.satisfaction, "parent_order_no": o.parent_order_no,
            "returned": o.returned, "extended": o.extended, "supervised": o.supervised, "redone": o.redone,
            "repeat_of": o.repeat_of, "repeat_group": o.repeat_group, "burst_id": o.burst_id,
        })
    return rows


def _personal_values(truth: SandboxTruth) -> list[dict]:
    seen = set()
    rows = []
    for o in truth.orders:
        for kind, value in (("name", o.caller.name), ("phone", o.caller.phone), ("id_no", o.caller.id_no)):
            if (kind, value) not in seen:
                seen.add((kind, value))
                rows.append({"kind": kind, "value": value, "caller_key": o.caller_key})
    return rows


def build_sandbox(params: SandboxParams, out_dir: Path) -> dict:
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    truth = generate(params)
    generated = time.perf_counter()
    rng = random.Random(params.seed + 1)
    plans = {name: exports.FaultPlan(rng, name, params.fault_rate, types) for name, types in (
        ("hotline", exports.HOTLINE_FAULTS), ("open311", exports.OPEN311_FAULTS),
        ("zhujian", exports.ZHUJIAN_FAULTS), ("chengguan", exports.CHENGGUAN_FAULTS),
        ("gongdian", exports.GONGDIAN_FAULTS), ("survey", exports.SURVEY_FAULTS))}
    systems = out_dir / "systems"
    records = {
        "hotline": exports.write_hotline(truth, systems / "hotline.sqlite", plans["hotline"]),
        "open311": exports.write_open311(truth, systems / "open311.sqlite", plans["open311"]),
    }
    records["zhujian"], zhujian_ids = exports.write_zhujian(truth, systems / "zhujian.sqlite", plans["zhujian"])
    records["chengguan"] = exports.write_chengguan_drops(truth, out_dir / "drops" / "chengguan", plans["chengguan"])
    records["gongdian"] = exports.write_gongdian_drops(truth, out_dir / "drops" / "gongdian", plans["gongdian"])
    records["survey"] = exports.write_survey_exports(truth, out_dir / "exports" / "survey", plans["survey"])
    faults = [f for plan in plans.values() for f in plan.faults]

    truth_dir = out_dir / "truth"
    _write_parquet(truth_dir / "work_orders.parquet", _order_truth(truth))
    _write_parquet(truth_dir / "events.parquet", [
        {k: v for k, v in e.__dict__.items()} for e in truth.events])
    _write_parquet(truth_dir / "personal_values.parquet", _personal_values(truth))
    system_records = [{"system": "hotline", "local_id": o.order_no, "order_no": o.order_no} for o in truth.orders]
    system_records += [{"system": "open311", "local_id": o.external_ref, "order_no": o.order_no}
                       for o in truth.orders if o.external_ref]
    system_records += [{"system": "zhujian", "local_id": bjbh, "order_no": no} for bjbh, no in zhujian_ids]
    _write_parquet(truth_dir / "system_records.parquet", system_records)
    (truth_dir / "faults.json").write_text(json.dumps(exports.faults_as_dicts(faults), ensure_ascii=False, indent=1),
                                           encoding="utf-8")
    bursts = [dict(asdict(b), start=b.start.isoformat(),
                   orders=sum(1 for o in truth.orders if o.burst_id == b.burst_id)) for b in truth.bursts]
    (truth_dir / "bursts.json").write_text(json.dumps(bursts, ensure_ascii=False, indent=1), encoding="utf-8")

    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "params": {**asdict(params), "start": params.start.isoformat(), "end": params.end.isoformat()},
        "horizon": params.horizon.isoformat() + "+08:00",
        "counts": {
            "work_orders": len(truth.orders),
            "events": len(truth.events),
            "repeat_orders": sum(1 for o in truth.orders if o.repeat_of),
            "merged_orders": sum(1 for o in truth.orders if o.parent_order_no),
            "burst_orders": sum(1 for o in truth.orders if o.burst_id),
            "orders_with_pii_in_text": sum(1 for o in truth.orders if o.pii_in_text),
            "system_records": records,
            "faults_by_system": dict(Counter(f.system for f in faults)),
            "faults_by_type": dict(Counter(f.fault_type for f in faults)),
        },
        "bursts": bursts,
        "files": {
            "work_orders": "truth/work_orders.parquet",
            "events": "truth/events.parquet",
            "personal_values": "truth/personal_values.parquet",
            "system_records": "truth/system_records.parquet",
            "faults": "truth/faults.json",
            "bursts": "truth/bursts.json",
            "hotline_store": "systems/hotline.sqlite",
            "open311_store": "systems/open311.sqlite",
            "zhujian_db": "systems/zhujian.sqlite",
            "chengguan_drops": "drops/chengguan",
            "gongdian_drops": "drops/gongdian",
            "survey_exports": "exports/survey",
        },
        "seconds": {"generate": round(generated - started, 2), "total": round(time.perf_counter() - started, 2)},
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
    return manifest


def load_manifest(sandbox_dir: Path) -> dict:
    return json.loads((Path(sandbox_dir) / "manifest.json").read_text(encoding="utf-8"))
