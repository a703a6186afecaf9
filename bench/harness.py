"""The harness: Stage records, measurement in subprocesses, the stage registry, the city cache and results.

Every measurement runs in its own process (`python -m bench.stage TASK`), so its peak RSS is its own:
the harness waits for it with `os.wait4` and reads `ru_maxrss` of that one child. The child times its
work itself (after its imports) and writes a JSON result; the harness adds the process's wall time
and peak RSS. Nothing here is a pass/fail timing check.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = PROJECT_ROOT / "bench" / "results"
BENCH_DIR_ENV = "CV_BENCH_DIR"
DEFAULT_SEED = 12345
DEFAULT_SCALE = 10_000
DOCUMENTED_SCALES = (10_000, 100_000, 1_000_000)

# The cities end on a fixed past day, so they are deterministic per (seed, scale) and wholly in the
# past (connectors that walk time windows up to "now" see all of them).
CITY_END = date(2026, 7, 31)
YEAR_SCALE = 100_000  # from this many work orders on, the city holds a year of history
TYPICAL_ORDERS_PER_DAY = 150

# Stage order of a whole run. A stage without a function is not implemented yet: it is reported as
# skipped with a note, never with numbers. Later issues register theirs with @stage("name").
STAGE_ORDER = ("generate", "ingest", "transform", "checks", "text", "indicators", "publish")
STAGES: dict[str, Callable[[Context], list[Stage]] | None] = dict.fromkeys(STAGE_ORDER)
STAGE_ORDER_EXTRA: list[str] = []  # stages registered beyond STAGE_ORDER, in registration order
PLANNED = {
    "transform": "dbt models, with the transform SQL run directly in DuckDB as the floor (transform issue)",
    "checks": "data-quality checks (data-quality issue)",
    "text": "text processing, with a plain single-process jieba loop as the floor (text issue)",
    "indicators": "indicator computation (indicators issue)",
    "publish": "bulletin, department shares and open data (publishing issue)",
}

# Scenarios: "full" measures the stages on a fresh warehouse; another scenario runs the function it registers
# with @scenario(name) instead of the stages (a scenario without one is reported as skipped with its note).
SCENARIOS: dict[str, str | None] = {
    "full": None,
    "daily-increment": "one new day of orders and late status updates on top of the city's history, through "
                       "the daily_update job (bench/scenario_increment.py)",
}
SCENARIO_FUNCTIONS: dict[str, Callable[[Context], list[Stage]]] = {}


def scenario(name: str):
    """Register a scenario function: (Context) -> list[Stage], run by run_benchmark instead of the stages."""
    def register(function):
        SCENARIO_FUNCTIONS[name] = function
        return function
    return register


def stage(name: str):
    """Register a stage function: (Context) -> list[Stage] (the stage, then any sub-measurements)."""
    def register(function):
        if name not in STAGES:
            STAGE_ORDER_EXTRA.append(name)
        STAGES[name] = function
        return function
    return register


# -- records -----------------------------------------------------------------------------------------------------
@dataclass
class Floor:
    name: str
    seconds: float
    rows: int
    peak_rss_mb: float | None = None
    notes: str = ""


@dataclass
class Stage:
    name: str
    seconds: float | None = None
    rows: int | None = None
    rows_per_second: float | None = None
    peak_rss_mb: float | None = None
    floor_name: str | None = None
    floor_seconds: float | None = None
    floor_rows_per_second: float | None = None
    ratio_to_floor: float | None = None  # rows_per_second / floor_rows_per_second (1.0 = as fast as the floor)
    notes: str = ""
    details: dict = field(default_factory=dict)

    @classmethod
    def measured(cls, name: str, seconds: float, rows: int, peak_rss_mb: float | None,
                 floor: Floor | None = None, notes: str = "", details: dict | None = None) -> Stage:
        record = cls(name=name, seconds=round(seconds, 3), rows=rows, rows_per_second=_rate(rows, seconds),
                     peak_rss_mb=peak_rss_mb, notes=notes, details=details or {})
        if floor is not None:
            record.floor_name = floor.name
            record.floor_seconds = round(floor.seconds, 3)
            record.floor_rows_per_second = _rate(floor.rows, floor.seconds)
            if record.rows_per_second and record.floor_rows_per_second:
                record.ratio_to_floor = round(record.rows_per_second / record.floor_rows_per_second, 3)
            record.details["floor"] = asdict(floor)
        return record

    @classmethod
    def skipped(cls, name: str, why: str) -> Stage:
        return cls(name=name, notes=why, details={"skipped": True})


def _rate(rows: int | None, seconds: float | None) -> float | None:
    if not rows or not seconds or seconds <= 0:
        return None
    return round(rows / seconds, 1)


# -- measuring in a subprocess ---------------------------------------------------------------------------------
@dataclass
class Measurement:
    label: str
    ok: bool
    result: dict  # what the child wrote (its "seconds" is the work alone, after imports)
    process_seconds: float  # wall time of the whole child process (interpreter, imports, work)
    peak_rss_mb: float | None  # the child's own peak resident set size
    error: str = ""

    @property
    def seconds(self) -> float:
        return self.result.get("seconds", self.process_seconds)

    @property
    def rows(self) -> int:
        return int(self.result.get("rows") or 0)


def _maxrss_mb(rusage) -> float:
    # Linux reports KiB, macOS bytes
    divisor = 1024 * 1024 if sys.platform == "darwin" else 1024
    return round(rusage.ru_maxrss / divisor, 1)


def run_child(task: str, args: dict, *, label: str, env: dict[str, str], work_dir: Path,
              profile: bool = False, log: Callable[[str], None] = print) -> Measurement:
    """Run one task of bench.tasks in a fresh Python process; wait for it with wait4 for its own peak RSS."""
    logs = work_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    args_path = logs / f"{label}.args.json"
    out_path = logs / f"{label}.result.json"
    args_path.write_text(json.dumps(args, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    out_path.unlink(missing_ok=True)
    command = [sys.executable, "-m", "bench.stage", task, "--args", str(args_path), "--out", str(out_path)]
    if profile:
        profiles = work_dir / "profiles"
        profiles.mkdir(parents=True, exist_ok=True)
        command += ["--profile", str(profiles / f"{label}.pstats")]
    started = time.perf_counter()
    with open(logs / f"{label}.stdout", "wb") as stdout, open(logs / f"{label}.stderr", "wb") as stderr:
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=stdout, stderr=stderr,
                                   stdin=subprocess.DEVNULL)
        try:
            _, status, rusage = os.wait4(process.pid, 0)
        except BaseException:
            process.kill()
            process.wait()
            raise
        process.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - started
    peak = _maxrss_mb(rusage)
    if process.returncode != 0 or not out_path.exists():
        tail = (logs / f"{label}.stderr").read_text(encoding="utf-8", errors="replace").strip().splitlines()[-12:]
        error = f"exit {process.returncode}: " + " | ".join(tail)
        log(f"[bench] {label}: FAILED ({error[:400]})")
        return Measurement(label, False, {}, elapsed, peak, error)
    result = json.loads(out_path.read_text(encoding="utf-8"))
    return Measurement(label, True, result, elapsed, peak)


# -- the city ----------------------------------------------------------------------------------------------------
def city_params(scale: int, seed: int) -> dict:
    """SandboxParams for a benchmark city of about `scale` work orders (calibrated on the work calendar:
    `orders_per_day` is per working day; weekends and holidays are quieter, see simulator.generator)."""
    from simulator.workcal import WorkCalendar

    if scale < 1:
        raise ValueError("scale must be at least 1 work order")
    days = 365 if scale >= YEAR_SCALE else max(30, min(92, round(scale / TYPICAL_ORDERS_PER_DAY)))
    start = CITY_END - timedelta(days=days - 1)
    calendar = WorkCalendar(start, CITY_END)
    weight = 0.0
    for offset in range(days):
        day = start + timedelta(days=offset)
        weight += 1.0 if calendar.is_workday(day) else (0.6 if day.weekday() < 5 else 0.75)
    return {"days": days, "orders_per_day": max(1, round(scale / weight)), "seed": seed, "start": start.isoformat()}


def sandbox_params(params: dict):
    from simulator.generator import SandboxParams

    return SandboxParams(days=params["days"], orders_per_day=params["orders_per_day"], seed=params["seed"],
                         start=date.fromisoformat(params["start"]))


def manifest_matches(city_dir: Path, params: dict) -> bool:
    from simulator.manifest import MANIFEST_VERSION

    path = city_dir / "manifest.json"
    if not path.exists():
        return False
    manifest = json.loads(path.read_text(encoding="utf-8"))
    wanted = sandbox_params(params)
    expected = {**asdict(wanted), "start": wanted.start.isoformat(), "end": wanted.end.isoformat()}
    return manifest.get("manifest_version") == MANIFEST_VERSION and manifest.get("params") == expected


def bench_dir(override: str | Path | None = None) -> Path:
    if override:
        return Path(override).resolve()
    if os.environ.get(BENCH_DIR_ENV):
        return Path(os.environ[BENCH_DIR_ENV]).resolve()
    from citizen_voice import settings

    return settings.project_root().resolve() / "data" / "bench"


# -- the context of a run ----------------------------------------------------------------------------------------
# Fixed keys for the benchmark's sandbox data, so no key file is generated (unless the caller sets its own).
BENCH_PSEUDONYM_KEY = "hex:" + "b3" * 32
BENCH_IDENTITY_KEY = "hex:" + "3b" * 32


@dataclass
class Context:
    scale: int
    seed: int
    root: Path  # data/bench/<seed>-<scale>
    profile: bool = False
    regenerate: bool = False
    log: Callable[[str], None] = print
    failures: list[str] = field(default_factory=list)
    generated: Measurement | None = None  # set when this run built the city

    @property
    def params(self) -> dict:
        return city_params(self.scale, self.seed)

    @property
    def city_dir(self) -> Path:
        return self.root / "city"

    @property
    def work_dir(self) -> Path:
        return self.root / "run"

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"

    def base_env(self) -> dict[str, str]:
        """The children's environment: the platform's data locations under the bench folder."""
        env = dict(os.environ)
        env.setdefault("CV_PSEUDONYM_KEY", BENCH_PSEUDONYM_KEY)
        env.setdefault("CV_IDENTITY_KEY", BENCH_IDENTITY_KEY)
        env.update({
            "CV_HOME": str(PROJECT_ROOT),
            "CV_SANDBOX": str(self.city_dir),
            "CV_WAREHOUSE": str(self.warehouse),
            "CV_PUBLISHED": str(self.work_dir / "published"),
            "DAGSTER_HOME": str(self.work_dir / "dagster_home"),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")])),
            "PYTHONHASHSEED": "0",
        })
        return env

    def measure(self, task: str, args: dict, *, label: str, env: dict[str, str] | None = None) -> Measurement:
        self.log(f"[bench] {label} ...")
        measurement = run_child(task, args, label=label, env=env or self.base_env(), work_dir=self.work_dir,
                                profile=self.profile, log=self.log)
        if measurement.ok:
            rows = measurement.rows
            rate = f", {rows / measurement.seconds:,.0f} rows/s" if rows and measurement.seconds else ""
            self.log(f"[bench] {label}: {measurement.seconds:.2f} s work ({measurement.process_seconds:.2f} s "
                     f"process), {rows:,} rows{rate}, peak RSS {measurement.peak_rss_mb:,.0f} MB")
        else:
            self.failures.append(f"{label}: {measurement.error}")
        return measurement

    def ensure_city(self) -> Path:
        """The cached city for (seed, scale): reused when its manifest matches, else generated (measured)."""
        params = self.params
        if not self.regenerate and manifest_matches(self.city_dir, params):
            return self.city_dir
        building = self.root / "city.building"
        shutil.rmtree(building, ignore_errors=True)
        self.root.mkdir(parents=True, exist_ok=True)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.log(f"[bench] generating the city: {params['days']} days from {params['start']}, "
                 f"{params['orders_per_day']} orders per working day, seed {params['seed']}")
        measurement = self.measure("generate", {"params": params, "out_dir": str(building)}, label="generate")
        if not measurement.ok:
            raise RuntimeError(f"generating the city failed: {measurement.error}")
        shutil.rmtree(self.city_dir, ignore_errors=True)
        building.rename(self.city_dir)
        record = {"built_at": datetime.now().isoformat(timespec="seconds"), "seconds": measurement.seconds,
                  "process_seconds": round(measurement.process_seconds, 3), "peak_rss_mb": measurement.peak_rss_mb,
                  "result": measurement.result}
        (self.city_dir / "bench-generate.json").write_text(json.dumps(record, ensure_ascii=False, indent=1),
                                                           encoding="utf-8")
        self.generated = measurement
        return self.city_dir

    def manifest(self) -> dict:
        return json.loads((self.city_dir / "manifest.json").read_text(encoding="utf-8"))


# -- a run -------------------------------------------------------------------------------------------------------
def _version(module: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:  # noqa: BLE001 - informational only
        return None


def _git_commit() -> str | None:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=PROJECT_ROOT, capture_output=True,
                               text=True, timeout=30).stdout.strip()
        return f"{head}{' (with uncommitted changes)' if dirty else ''}" if head else None
    except (OSError, subprocess.SubprocessError):
        return None


def _load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def machine() -> dict:
    memory = None
    try:
        memory = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    return {"cpus": os.cpu_count(), "memory_gib": memory, "load_average": _load_average(), "platform": platform.platform(),
            "python": platform.python_version(), "duckdb": _version("duckdb"), "dlt": _version("dlt"),
            "pyarrow": _version("pyarrow"), "commit": _git_commit()}


def all_stage_names() -> list[str]:
    return [*STAGE_ORDER, *STAGE_ORDER_EXTRA]


def run_benchmark(scale: int, seed: int = DEFAULT_SEED, stages: list[str] | None = None, *,
                  data_dir: str | Path | None = None, results_dir: str | Path | None = None,
                  scenario: str = "full", profile: bool = False, regenerate: bool = False, repeat: int = 1,
                  log: Callable[[str], None] = print) -> dict:
    """Measure the selected stages at a scale; write the JSON and Markdown results; return the results."""
    from bench import stages as _stages  # noqa: F401 - registers the implemented stages

    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
    wanted = stages or all_stage_names()
    root = bench_dir(data_dir) / f"{seed}-{scale}"
    context = Context(scale=scale, seed=seed, root=root, profile=profile, regenerate=regenerate, log=log)
    started = datetime.now()
    machine_at_start = machine()
    records: list[Stage] = []
    if scenario in SCENARIO_FUNCTIONS:
        try:
            records.extend(best_of([SCENARIO_FUNCTIONS[scenario](context) for _ in range(max(1, repeat))]))
        except Exception as exc:  # noqa: BLE001 - reported as a failure with the results, like a stage
            context.failures.append(f"{scenario}: {type(exc).__name__}: {exc}")
            log(f"[bench] {scenario}: FAILED: {type(exc).__name__}: {exc}")
            records.append(Stage(name=scenario, notes=f"failed: {type(exc).__name__}: {exc}"))
    elif SCENARIOS[scenario] is not None:
        log(f"[bench] scenario {scenario}: {SCENARIOS[scenario]}")
        records.append(Stage.skipped(scenario, SCENARIOS[scenario]))
    else:
        for name in wanted:
            function = STAGES.get(name, "unknown")
            if function == "unknown":
                why = f"unknown stage (known: {', '.join(all_stage_names())})"
                log(f"[bench] {name}: skipped: {why}")
                records.append(Stage.skipped(name, why))
            elif function is None:
                why = f"not implemented yet: {PLANNED.get(name, 'no stage function registered')}"
                log(f"[bench] {name}: skipped: {why}")
                records.append(Stage.skipped(name, why))
            else:
                try:
                    rounds = 1 if name in ONCE else max(1, repeat)
                    samples = []
                    for number in range(rounds):
                        if rounds > 1:
                            log(f"[bench] {name}: round {number + 1} of {rounds}")
                        samples.append(function(context))
                    records.extend(best_of(samples))
                except Exception as exc:  # noqa: BLE001 - one stage failing must not hide the others
                    context.failures.append(f"{name}: {type(exc).__name__}: {exc}")
                    log(f"[bench] {name}: FAILED: {type(exc).__name__}: {exc}")
                    records.append(Stage(name=name, notes=f"failed: {type(exc).__name__}: {exc}"))
    city = None
    if (context.city_dir / "manifest.json").exists():
        manifest = context.manifest()
        city = {"dir": str(context.city_dir), "params": manifest["params"], "counts": manifest["counts"]}
    results = {
        "benchmark": "citizen-voice",
        "scale": scale,
        "seed": seed,
        "scenario": scenario,
        "date": started.date().isoformat(),
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now().isoformat(timespec="seconds"),
        "stages_requested": wanted,
        "machine": {**machine_at_start, "load_average_at_end": _load_average()},
        "city": city,
        "profiled": profile,
        "repeat": repeat,
        "stages": [asdict(r) for r in records],
        "failures": context.failures,
        "method": METHOD,
    }
    if results_dir is None:  # a profiled run's timings are inflated: kept beside its profiles, not in bench/results
        results_dir = context.work_dir / "profiles" if profile else RESULTS_DIR
    write_results(results, Path(results_dir))
    return results


ONCE = {"generate"}  # stages measured once whatever --repeat says (the city is built once and cached)


def best_of(samples: list[list[Stage]]) -> list[Stage]:
    """Several rounds of one stage -> one list: per record name, the round with the fewest seconds, and the
    floor of the round whose floor was fastest (on a shared machine the best round is the least disturbed)."""
    if len(samples) == 1:
        return samples[0]
    merged = []
    for first in samples[0]:
        rounds = [r for sample in samples for r in sample if r.name == first.name]
        timed = [r for r in rounds if r.seconds is not None]
        if not timed:
            merged.append(first)
            continue
        best = min(timed, key=lambda r: r.seconds)
        floors = [r for r in timed if r.floor_seconds is not None]
        floor = None
        if floors:
            fastest = min(floors, key=lambda r: r.floor_seconds)
            floor = Floor(**fastest.details["floor"])
        record = Stage.measured(best.name, best.seconds, best.rows, max(r.peak_rss_mb or 0 for r in timed) or None,
                                floor=floor, notes=best.notes + f"; best of {len(timed)} rounds",
                                details={**best.details})
        record.details["rounds_seconds"] = [r.seconds for r in timed]
        if floors:
            record.details["floor_rounds_seconds"] = [r.floor_seconds for r in floors]
        merged.append(record)
    return merged


METHOD = ("Each measurement runs in its own Python process (python -m bench.stage); seconds = the work "
          "timed inside that process after its imports; peak RSS = ru_maxrss of that process (os.wait4), "
          "imports included. rows/s = rows / seconds. ratio = rows/s of the stage / rows/s of its floor "
          "(1.0 = as fast as the floor; the ingestion goal is >= 0.25 for file and SQL sources). With --repeat N, "
          "each figure is the best of N rounds (stage and floor separately). A load average above the CPU "
          "count means other work shared the machine: compare such figures with care.")


# -- results -----------------------------------------------------------------------------------------------------
def _number(value, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def _load(m: dict) -> str:
    """1-minute load average at start → end: above the CPU count, other work shared the machine."""
    start, end = m.get("load_average"), m.get("load_average_at_end")
    return f"{start[0] if start else '?'} → {end[0] if end else '?'}"


def markdown(results: dict) -> str:
    city = results.get("city") or {}
    counts = city.get("counts") or {}
    params = city.get("params") or {}
    m = results["machine"]
    lines = [
        f"# Benchmark: {results['scale']:,} work orders (seed {results['seed']}, {results['scenario']})",
        "",
        f"{results['started_at']} · {m['cpus']} CPUs, {m['memory_gib']} GiB, load average {_load(m)} · "
        f"Python {m['python']}, "
        f"DuckDB {m['duckdb']}, dlt {m['dlt']} · commit {m['commit']}" + (" · **profiled**" if results['profiled']
                                                                            else ""),
        "",
    ]
    if counts:
        lines += [f"City: {params.get('days')} days from {params.get('start')} "
                  f"({params.get('orders_per_day')} orders per working day): {counts.get('work_orders', 0):,} work "
                  f"orders, {counts.get('events', 0):,} events; records per system: "
                  + ", ".join(f"{k} {v:,}" for k, v in (counts.get("system_records") or {}).items()), ""]
    lines += [
        "| stage | seconds | rows | rows/s | peak RSS MB | floor | floor s | floor rows/s | ratio | notes |",
        "|---|--:|--:|--:|--:|---|--:|--:|--:|---|",
    ]
    for r in results["stages"]:
        notes = (r.get("notes") or "").replace("|", "\\|").replace("\n", " ")
        lines.append(
            f"| {r['name']} | {_number(r['seconds'], 2)} | {_number(r['rows'])} | {_number(r['rows_per_second'])} "
            f"| {_number(r['peak_rss_mb'])} | {r['floor_name'] or '—'} | {_number(r['floor_seconds'], 2)} "
            f"| {_number(r['floor_rows_per_second'])} | {_number(r['ratio_to_floor'], 3)} | {notes} |")
    lines += breakdown(results)
    lines += ["", results["method"]]
    if results["failures"]:
        lines += ["", "**Failures:**", *[f"- {f}" for f in results["failures"]]]
    return "\n".join(lines) + "\n"


BREAKDOWN = (("connector", "connector"), ("boundary_checks", "checks"), ("privacy", "privacy"),
             ("dlt_extract", "dlt extract (total)"), ("dlt_normalize", "dlt normalize"), ("dlt_load", "dlt load"))


def breakdown(results: dict) -> list[str]:
    """Where the time of each ingestion goes (seconds, from per-batch timers and dlt's trace)."""
    rows = [r for r in results["stages"] if (r.get("details") or {}).get("breakdown_seconds")]
    if not rows:
        return []
    lines = ["", "Where the time goes (seconds). *dlt extract* runs the connector, the checks and privacy "
             "(the boundary) and writes dlt's extract files; *other* = pipeline set-up, identities, load log.", "",
             "| stage | work | " + " | ".join(title for _, title in BREAKDOWN) + " | other |",
             "|---|--:|" + "--:|" * (len(BREAKDOWN) + 1)]
    for r in rows:
        b = r["details"]["breakdown_seconds"]
        steps = [b.get(k) for k in ("dlt_extract", "dlt_normalize", "dlt_load")]
        other = r["seconds"] - sum(steps) if all(isinstance(v, int | float) for v in steps) else None
        lines.append(f"| {r['name']} | {_number(r['seconds'], 2)} | "
                     + " | ".join(_number(b.get(k), 2) if isinstance(b.get(k), int | float) else "—"
                                  for k, _ in BREAKDOWN) + f" | {_number(other, 2)} |")
    return lines


def results_paths(results: dict, results_dir: Path) -> tuple[Path, Path]:
    suffix = "" if results["scenario"] == "full" else f"-{results['scenario']}"
    suffix += "-profiled" if results["profiled"] else ""  # a profiled run never replaces a clean one
    return (results_dir / f"{results['date']}-{results['scale']}{suffix}.json",
            results_dir / f"latest-{results['scale']}{suffix}.md")


def write_results(results: dict, results_dir: Path) -> tuple[Path, Path]:
    results_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = results_paths(results, results_dir)
    json_path.write_text(json.dumps(results, ensure_ascii=False, indent=1, default=str) + "\n", encoding="utf-8")
    md_path.write_text(markdown(results), encoding="utf-8")
    results["paths"] = {"json": str(json_path), "markdown": str(md_path)}
    return json_path, md_path
