"""One module per domain; each exposes build_defs() -> dagster.Definitions."""

# Every asset that writes the DuckDB warehouse (or holds it open) runs in this pool; dagster.yaml
# limits each pool to one slot, so concurrent runs never collide on the file.
WAREHOUSE_POOL = "duckdb_warehouse"
