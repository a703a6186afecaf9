"""Publishing: department shares, open data with an Open311 API, BI serving (a DuckDB snapshot and
PostgreSQL with row-level security) and the privacy gate every publication passes. Plain Python;
configuration in publish.yaml. See README.md in this folder."""
