"""`citizen-voice publish ...`: department shares, open data, the BI snapshot, PostgreSQL serving and
the Open311 API, without Dagster. Each publish command runs the privacy gate on its own output."""

from __future__ import annotations

import json
import signal
from dataclasses import asdict

import typer

from citizen_voice import warehouse

publish_app = typer.Typer(help="Publish shares, open data and BI serving; serve the Open311 API.",
                          no_args_is_help=True)


def _echo(report) -> None:
    typer.echo(json.dumps(asdict(report), ensure_ascii=False, indent=1, default=str))


def _gated(action):
    from citizen_voice.publish.gate import PersonalDataFound

    try:
        return action()
    except PersonalDataFound as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(3) from None


@publish_app.command("shares")
def shares():
    """Write each department's own work orders, events and indicators under <published>/shares/."""
    from citizen_voice.publish.shares import publish_shares

    with warehouse.connect(read_only=True) as con:
        _echo(_gated(lambda: publish_shares(con)))


@publish_app.command("open-data")
def open_data():
    """Write the de-identified open dataset and aggregates under <published>/open/."""
    from citizen_voice.publish.open_data import publish_open_data

    with warehouse.connect(read_only=True) as con:
        _echo(_gated(lambda: publish_open_data(con)))


@publish_app.command("snapshot")
def snapshot():
    """Swap in a fresh read-only DuckDB snapshot for BI tools at <published>/serving/warehouse.duckdb."""
    from citizen_voice.publish.snapshot import publish_snapshot

    _echo(_gated(publish_snapshot))


@publish_app.command("postgres")
def postgres(url: str = typer.Option(None, help="PostgreSQL URL (default $CV_SERVING_PG_URL).")):
    """Publish the marts and indicators to PostgreSQL with per-department row-level security."""
    from citizen_voice.publish.postgres import ServingNotConfigured, publish_postgres

    try:
        _echo(_gated(lambda: publish_postgres(url)))
    except ServingNotConfigured as error:
        typer.echo(f"{error} (or pass --url)", err=True)
        raise typer.Exit(2) from None


@publish_app.command("open311")
def open311(port: int = typer.Option(18312, help="Port on 127.0.0.1 (0: any free port)."),
            dataset: str = typer.Option(None, help="Open dataset Parquet file or folder of month parts (default <published>/open/work_orders/).")):
    """Serve the Open311 GeoReport v2 read API over the open dataset until interrupted."""
    from citizen_voice.publish.open311 import Open311Api

    # SIGTERM stops the server like Ctrl-C, also when a parent started it with SIGTERM ignored or blocked
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    api = Open311Api(dataset, port=port).start()
    typer.echo(f"Open311 GeoReport v2  {api.endpoint}/services.json  {api.endpoint}/requests.json")
    typer.echo(f"dataset               {api.dataset.path}")
    try:
        api.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        api.stop()

