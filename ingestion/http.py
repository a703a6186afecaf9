"""A small JSON-over-HTTP client for department APIs: timeouts, retries with exponential
backoff that honour Retry-After, and a clear error once the retry budget is spent.

`get()` decodes JSON; `get_bytes()` returns the raw body (XML sources parse it themselves).
A client error (4xx other than 429) is not retried: it raises `RequestRefused`, a
`SourceUnavailable` that carries the status and the body, so a connector can tell "the source
refused this one request" (reject the unit, go on) from "the source cannot be reached" (stop).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import requests

RETRY_STATUSES = {429, 500, 502, 503, 504}
TRANSIENT_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


class SourceUnavailable(RuntimeError):
    """The source kept failing after every retry."""


class RequestRefused(SourceUnavailable):
    """The source answered a request with a client error (4xx other than 429); retrying will not help."""

    def __init__(self, message: str, status: int, body: str):
        super().__init__(message)
        self.status = status
        self.body = body


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
        return self.request(path, params).json()

    def get_bytes(self, path: str, params: dict | None = None) -> bytes:
        """The raw response body (e.g. an XML document, parsed from bytes so its declared encoding holds)."""
        return self.request(path, params).content

    def request(self, path: str, params: dict | None = None) -> requests.Response:
        """GET with retries; returns the successful response or raises SourceUnavailable/RequestRefused."""
        url = self.base_url.rstrip("/") + "/" + path.lstrip("/")
        last_problem = ""
        for attempt in range(self.retry.attempts):
            self.stats["requests"] += 1
            try:
                response = self.session.get(url, params=params, timeout=self.timeout)
            except TRANSIENT_ERRORS as exc:
                last_problem = f"{type(exc).__name__}: {exc}"
                delay = self._backoff(attempt)
            else:
                if response.status_code not in RETRY_STATUSES:
                    if response.status_code >= 400:
                        raise RequestRefused(f"GET {url} answered {response.status_code}: {response.text[:300]}",
                                             response.status_code, response.text)
                    return response
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
