"""Data quality: quarantine, scorecard and the department-facing report (issue #5)."""
