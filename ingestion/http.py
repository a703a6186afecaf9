"""A small JSON-over-HTTP client for department APIs: timeouts, retries with exponential
backoff that honour Retry-After, and a clear error once the retry budget is spent."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import requests

RETRY_STATUSES = {429, 500, 502, 503, 504}


class SourceUnavailable(RuntimeError):
    """The source kept failing after every retry."""


@dataclass
class RetryPolicy:
    attempts: int = 8
    base_delay: float = 0.2
    max_delay: float = 10.0


@dataclass
class JsonApiClient:
    base_url: str
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    stats: dict[str, int] = field(default_factory=lambda: {"requests": 0, "retries": 0})

    def __post_init__(self):
        self.session = requests.Session()
        self.session.headers.update(self.headers)

    def get(self, path: str, params: dict | None = None) -> dict | list:
        url = self.base_url.rstrip("/") + "/" + path.lstrip("/")
        last_problem = ""
        for attempt in range(self.retry.attempts):
            self.stats["requests"] += 1
            try:
                response = self.session.get(url, params=params, timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout) as exc:
                last_problem = f"{type(exc).__name__}: {exc}"
                delay = self._backoff(attempt)
            else:
                if response.status_code not in RETRY_STATUSES:
                    if response.status_code >= 400:
                        raise SourceUnavailable(
                            f"GET {url} answered {response.status_code}: {response.text[:300]}")
                    return response.json()
                last_problem = f"HTTP {response.status_code}"
                delay = self._retry_after(response) or self._backoff(attempt)
            self.stats["retries"] += 1
            time.sleep(delay)
        raise SourceUnavailable(f"GET {url} failed {self.retry.attempts} times; last problem: {last_problem}")

    def _backoff(self, attempt: int) -> float:
        return min(self.retry.max_delay, self.retry.base_delay * 2**attempt)

    def _retry_after(self, response: requests.Response) -> float | None:
        value = response.headers.get("Retry-After")
        if value is None:
            return None
        try:
            return min(self.retry.max_delay, float(value))
        except ValueError:
            return None
