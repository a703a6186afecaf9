"""Servers of the sandbox department systems, on 127.0.0.1 like the real systems are reached.

`SandboxServers` starts the 12345 work-order API and the Open311 endpoint of a generated sandbox
directory (`<dir>/systems/hotline.sqlite`, `<dir>/systems/open311.sqlite`); each server class also
works alone. The shared plumbing (clock, faults, stats) lives in `simulator.servers.base`.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from simulator.servers.base import Faults, HttpError, Request, Response, SandboxServer
from simulator.servers.hotline import DEFAULT_SANDBOX_TOKEN, TOKEN_ENV_VAR, HotlineServer
from simulator.servers.open311 import Open311Server

__all__ = [
    "DEFAULT_HOTLINE_PORT",
    "DEFAULT_OPEN311_PORT",
    "Faults",
    "HotlineServer",
    "HttpError",
    "Open311Server",
    "Request",
    "Response",
    "SandboxServer",
    "SandboxServers",
    "hotline_token_from_env",
]

DEFAULT_HOTLINE_PORT = 18345
DEFAULT_OPEN311_PORT = 18311


def hotline_token_from_env() -> str:
    return os.environ.get(TOKEN_ENV_VAR) or DEFAULT_SANDBOX_TOKEN


class SandboxServers:
    """Both sandbox servers of one sandbox directory, in background threads (port 0: a free port).

    `hotline_url` is the API root (clients add /api/v1/...); `open311_url` is the GeoReport v2
    endpoint (clients add /services.json, /requests.json).
    """

    def __init__(
        self,
        sandbox_dir: str | Path,
        *,
        hotline_port: int = DEFAULT_HOTLINE_PORT,
        open311_port: int = DEFAULT_OPEN311_PORT,
        hotline_token: str | None = None,
        as_of: int | float | str | datetime | None = None,
        seed: int = 0,
    ):
        systems = Path(sandbox_dir) / "systems"
        self.hotline = HotlineServer(
            systems / "hotline.sqlite",
            token=hotline_token if hotline_token is not None else hotline_token_from_env(),
            port=hotline_port,
            as_of=as_of,
            seed=seed,
        )
        self.open311 = Open311Server(systems / "open311.sqlite", port=open311_port, as_of=as_of, seed=seed)

    def start(self) -> SandboxServers:
        self.hotline.start()
        try:
            self.open311.start()
        except BaseException:
            self.hotline.stop()
            raise
        return self

    def stop(self) -> None:
        self.hotline.stop()
        self.open311.stop()

    def __enter__(self) -> SandboxServers:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def set_clock(self, as_of: int | float | str | datetime | None) -> None:
        self.hotline.set_clock(as_of)
        self.open311.set_clock(as_of)

    @property
    def hotline_url(self) -> str:
        return self.hotline.url

    @property
    def open311_url(self) -> str:
        return self.open311.endpoint
