"""`citizen-voice indicators …`: compute indicators, trace a value back to its work orders.

Wired in citizen_voice/cli.py with `app.add_typer(indicators_app, name="indicators")`."""

from __future__ import annotations

import json

import typer

indicators_app = typer.Typer(help="Indicators (指标): compute, explain, list the catalogue.", no_args_is_help=True)


def _periods(con, period: str, period_type: str):
    from citizen_voice.indicators import engine
    from citizen_voice.indicators.periods import Period

    if period == "all":
        return engine.periods_in_data(con, period_type)
    return [Period.parse(p, period_type) for p in period.split(",")]


@indicators_app.command("compute")
def compute(
    period: str = typer.Option(..., help="YYYY-MM (month), YYYY-MM-DD (day), several separated by commas, "
                                         "or 'all' (every period in the data)."),
    period_type: str = typer.Option("month", help="month or day (for 'all' and YYYY-MM-DD keys)."),
    only_stale: bool = typer.Option(False, "--only-stale", help="Skip periods already computed with the same "
                                                               "definitions on the same data."),
    catalogue: str = typer.Option(None, help="Catalogue YAML (default: the package's definitions.yaml)."),
):
    """Compute every indicator at every grain for the periods (replacing their rows), then scores."""
    from citizen_voice import warehouse
    from citizen_voice.indicators import service
    from citizen_voice.indicators.catalogue import CatalogueError, load_catalogue

    try:
        loaded = load_catalogue(catalogue)
        with warehouse.connect() as con:
            periods = _periods(con, period, period_type)
            summary = service.refresh(con, periods, period_type=period_type, only_stale=only_stale,
                                      catalogue=loaded)
    except (CatalogueError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"computed {len(summary['computed'])} period(s): {', '.join(summary['computed']) or '-'}; "
               f"up to date: {', '.join(summary['skipped']) or '-'}; {summary['rows']:,} rows in "
               f"{summary['seconds']:.2f} s")
    for warning in summary["warnings"]:
        typer.echo(f"warning: {warning}")
    if summary.get("city"):
        typer.echo(f"全市 {summary['newest_period']}: " + json.dumps(summary["city"], ensure_ascii=False))


@indicators_app.command("explain")
def explain(
    indicator: str = typer.Argument(..., help="Indicator key, e.g. satisfaction_rate."),
    unit: str = typer.Option("city", help="Unit code (district, street, department, category or channel code)."),
    period: str = typer.Option(..., help="YYYY-MM (month) or YYYY-MM-DD (day)."),
    grain: str = typer.Option(None, help="city, district, street, department, category_l1, category_l2, channel."),
    limit: int = typer.Option(0, help="List at most this many order numbers per side (0: all)."),
    catalogue: str = typer.Option(None, help="Catalogue YAML (default: the package's definitions.yaml)."),
):
    """List the work orders in the numerator and the denominator of one value, and the definition used."""
    from citizen_voice import warehouse
    from citizen_voice.indicators import engine
    from citizen_voice.indicators.catalogue import CatalogueError, load_catalogue
    from citizen_voice.indicators.periods import Period

    try:
        loaded = load_catalogue(catalogue)
        with warehouse.connect(read_only=True) as con:
            result = engine.explain(con, indicator, Period.parse(period), unit, grain, loaded)
    except (CatalogueError, KeyError, ValueError) as exc:
        typer.echo(f"error: {exc.args[0] if isinstance(exc, KeyError) else exc}", err=True)
        raise typer.Exit(2) from exc
    d = result.indicator
    typer.echo(f"{d.name} ({d.key}) · {result.grain} {result.unit_code} · {result.period.label}")
    typer.echo(f"definition: version {d.version}, effective from {d.effective_from} ({d.kind}, {d.unit})")
    for rule in result.rules:
        typer.echo(f"  {rule}")
    typer.echo(f"value: {_fmt(result.value)} = numerator {_fmt(result.numerator)} / denominator "
               f"{_fmt(result.denominator)}")
    if result.stored is not None:
        same = result.stored["definition_version"] == d.version and _close(result.stored["value"], result.value)
        typer.echo(f"stored: {_fmt(result.stored['value'])} (version {result.stored['definition_version']}, "
                   f"computed {result.stored['computed_at']})" + ("" if same else " — differs: recompute the period"))
    else:
        typer.echo("stored: not computed yet")
    numerator = [f"{o}×{w:g}" if w != 1.0 else o for o, w in result.numerator_orders]
    for label, orders in (("numerator", numerator), ("denominator", result.denominator_orders)):
        shown = orders[:limit] if limit else orders
        more = f" (first {len(shown)})" if len(shown) < len(orders) else ""
        typer.echo(f"{label} orders: {len(orders)}{more}")
        for start in range(0, len(shown), 6):
            typer.echo("  " + " ".join(shown[start:start + 6]))


@indicators_app.command("list")
def list_definitions(catalogue: str = typer.Option(None, help="Catalogue YAML.")):
    """Every indicator version in the catalogue."""
    from citizen_voice.indicators.catalogue import load_catalogue

    for d in load_catalogue(catalogue).indicators:
        typer.echo(f"{d.key:24} v{d.version} from {d.effective_from}  {d.name} ({d.unit}, {d.direction})")


def _fmt(value) -> str:
    return "—" if value is None else f"{value:,.6g}"


def _close(a, b) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and abs(a - b) < 1e-9)
