"""citizen-voice (市民之声数据平台): the platform's own domain logic, testable without Dagster."""

__version__ = "0.1.0"
