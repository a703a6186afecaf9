"""Great Expectations suites written as code, one module per layer (data-quality issue #5)."""
