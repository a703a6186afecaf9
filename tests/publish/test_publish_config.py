"""publish.yaml validation: the shipped file loads; mistakes are refused with the file and field named."""

from __future__ import annotations

import pytest
import yaml

from citizen_voice.publish.config import DEFAULT_CONFIG, PublishConfigError, load_config


def test_the_shipped_configuration_loads():
    config = load_config()
    names = [t.name for t in config.department_shares.tables]
    assert names[:2] == ["work_orders", "work_order_events"]
    assert config.open_data.suppression_threshold >= 2
    assert "marts" in config.serving.schemas and "indicators" in config.serving.schemas
    assert "caller_key" in config.department_shares.tables[0].exclude_columns


def write_variant(tmp_path, change) -> str:
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8"))
    change(raw)
    path = tmp_path / "publish.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.parametrize(("change", "message"), [
    (lambda c: c["open_data"]["columns"].update(caller=("o.caller_key")), "never published"),
    (lambda c: c["open_data"]["columns"].update(phone=("o.caller_phone_masked")), "never published"),
    (lambda c: c["open_data"]["columns"].update(x="zz.order_no"), "open_data.columns"),
    (lambda c: c["open_data"]["columns"].pop("order_no"), "'order_no' is required"),
    (lambda c: c["open_data"].update(suppression_threshold=0), "open_data.suppression_threshold"),
    (lambda c: c["open_data"]["aggregates"].append({"name": "x", "group_by": ["nope"]}), "group_by ['nope']"),
    (lambda c: c["department_shares"]["tables"].append(dict(c["department_shares"]["tables"][0])), "duplicate name"),
    (lambda c: c["department_shares"]["tables"][0].update(table="fct_work_orders"), "schema.table"),
    (lambda c: c["department_shares"]["tables"][0].update(key="street_code"), "department_shares.tables.0.key"),
    (lambda c: c["department_shares"]["tables"][0].update(exclude_columns=["lead_dept_code"]), "cannot be excluded"),
    (lambda c: c["serving"].update(unknown=1), "serving.unknown"),
])
def test_mistakes_are_refused_naming_the_field(tmp_path, change, message):
    path = write_variant(tmp_path, change)
    with pytest.raises(PublishConfigError) as error:
        load_config(path)
    assert str(path) in str(error.value)
    assert message in str(error.value)


def test_not_yaml_is_a_clear_error(tmp_path):
    path = tmp_path / "publish.yaml"
    path.write_text("version: [1\n", encoding="utf-8")
    with pytest.raises(PublishConfigError, match="not valid YAML"):
        load_config(path)
