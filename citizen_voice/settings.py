"""Where things live. Read from the environment when called (never at import time), with
project-local defaults so a fresh clone works without configuration.

  CV_HOME         project root (default: the checkout that holds this package)
  CV_WAREHOUSE    the DuckDB warehouse file            (default data/warehouse.duckdb)
  CV_SANDBOX      the sandbox city                     (default data/sandbox)
  CV_PUBLISHED    published outputs                    (default data/published)
  DAGSTER_HOME    Dagster's instance folder            (default .dagster_home)
  CV_PSEUDONYM_KEY, CV_IDENTITY_KEY   keys for pseudonyms and encrypted identifiers
                  (citizen_voice.privacy; a generated key under data/.secrets/ for the sandbox)
  CV_REQUIRE_KEYS=1  refuse to generate keys (production)
  CV_OPS_DIR      operational records: alerts          (default data/ops)
  CV_MODELS       trained classifier models            (default data/models, beside the warehouse)
  CV_ALERT_WEBHOOK_URL     post each alert to this URL (optional; secret, from the environment)
  CV_ALERT_WEBHOOK_FORMAT  json (default), wecom (企业微信机器人) or dingtalk (钉钉机器人)
  CV_DAGSTER_UI_URL        base address of the Dagster UI used in alert links (default http://127.0.0.1:3000)
Department systems' addresses and credentials are named per source in ingestion/sources.yaml
(e.g. CV_HOTLINE_URL, CV_HOTLINE_TOKEN, CV_ZHUJIAN_URL).
"""

from __future__ import annotations

import os
from pathlib import Path

SANDBOX_HOTLINE_PORT = 18345
SANDBOX_OPEN311_PORT = 18311
SANDBOX_HOTLINE_TOKEN = "sandbox-token"  # the sandbox's own token; real systems' tokens come from the environment


def project_root() -> Path:
    return Path(os.environ.get("CV_HOME", Path(__file__).resolve().parent.parent))


def _path(var: str, default: str) -> Path:
    value = os.environ.get(var)
    return (Path(value) if value else project_root() / default).resolve()


def warehouse_path() -> Path:
    return _path("CV_WAREHOUSE", "data/warehouse.duckdb")


DEFAULT_DUCKDB_MEMORY_LIMIT = "1GB"


def duckdb_config() -> dict[str, str]:
    """Settings of every connection the platform opens to the warehouse file. DuckDB's own default memory
    limit is 80 % of the machine's RAM, which a year of events fills while merging and joining; with a
    limit it spills to a temporary folder beside the file instead. CV_DUCKDB_MEMORY_LIMIT overrides it."""
    return {"memory_limit": os.environ.get("CV_DUCKDB_MEMORY_LIMIT", DEFAULT_DUCKDB_MEMORY_LIMIT)}


def sandbox_dir() -> Path:
    return _path("CV_SANDBOX", "data/sandbox")


def published_dir() -> Path:
    return _path("CV_PUBLISHED", "data/published")


def dbt_project_dir() -> Path:
    return project_root() / "dbt_project"


def dagster_home() -> Path:
    return _path("DAGSTER_HOME", ".dagster_home")


def hotline_token() -> str:
    return os.environ.get("CV_HOTLINE_TOKEN", SANDBOX_HOTLINE_TOKEN)


def ops_dir() -> Path:
    return _path("CV_OPS_DIR", "data/ops")


def alert_webhook_url() -> str | None:
    return os.environ.get("CV_ALERT_WEBHOOK_URL") or None


def alert_webhook_format() -> str:
    return os.environ.get("CV_ALERT_WEBHOOK_FORMAT", "json")


def dagster_ui_url() -> str:
    return os.environ.get("CV_DAGSTER_UI_URL", "http://127.0.0.1:3000").rstrip("/")
