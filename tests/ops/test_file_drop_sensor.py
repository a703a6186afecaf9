"""The file-drop sensor fires on a file with new content, not on a re-dropped one."""

from __future__ import annotations

import shutil

import dagster as dg

from ingestion.registry import load_registry
from orchestration.defs.ingestion import new_files_sensor, source_assets


def _evaluate(sensor, cursor):
    with dg.build_sensor_context(cursor=cursor) as context:
        result = sensor(context)
        return result, context.cursor


def test_sensor_fires_on_new_content_only(pipeline_city, tmp_path, monkeypatch):
    city, _ = pipeline_city
    drops = tmp_path / "drops"
    drops.mkdir()
    files = sorted((city / "drops" / "chengguan").glob("*.csv"))
    for path in files[:3]:
        shutil.copy(path, drops / path.name)
    monkeypatch.setenv("CV_CHENGGUAN_DROPS", str(drops))
    entry = load_registry().get("chengguan")
    sensor = new_files_sensor(entry, source_assets(entry))

    first, cursor = _evaluate(sensor, None)
    assert isinstance(first, dg.RunRequest)
    assert set(first.asset_selection) == {dg.AssetKey(["raw_chengguan", "tickets"]),
                                          dg.AssetKey(["raw_chengguan", "_quarantine"])}
    assert first.tags["citizen_voice/new_files"] == ", ".join(p.name for p in files[:3])

    again, cursor = _evaluate(sensor, cursor)
    assert isinstance(again, dg.SkipReason)

    shutil.copy(files[0], drops / ("城管工单_重发_" + files[0].name.split("_", 1)[1]))  # same content, new name
    (drops / files[1].name).touch()  # touched, unchanged
    redropped, cursor = _evaluate(sensor, cursor)
    assert isinstance(redropped, dg.SkipReason)

    (drops / "说明.txt").write_text("not a drop file", encoding="utf-8")
    shutil.copy(files[3], drops / files[3].name)
    fresh, cursor = _evaluate(sensor, cursor)
    assert isinstance(fresh, dg.RunRequest)
    assert fresh.tags["citizen_voice/new_files"] == files[3].name
    assert fresh.run_key != first.run_key
