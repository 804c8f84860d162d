"""`mgrid simulate` (one scenario or the library) and `mgrid demo` (the whole system, end to end)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from simulator.clock import wall_anchor
from simulator.expectations import StepTrace
from simulator.report import REPORTS_DIR, print_failures, summary_table, write_html
from simulator.runner import RunResult, ScenarioRun
from simulator.scenario import Scenario, library, library_names, load_scenario
from simulator.service_processes import ServiceProcesses, ServiceStartError, ServiceStatus
from simulator.transport import DryRunTransport, LiveTransport, SimulatorSettings

console = Console()
# How a user runs the CLI from a checkout (it is not on the PATH): every command we print says it this way.
CLI = "./mgrid"
DEMO_SCENARIO = "depot-tour"
# The demo's services answer quickly: a short outbox poll keeps each hop of a cycle well under a second.
DEMO_SERVICE_ENV = {"MGRID_OUTBOX_POLL_INTERVAL_S": "0.1"}


async def run_scenario(scenario: Scenario, settings: SimulatorSettings, *, seed: int | None = None,
                       on_step: Callable[[StepTrace], None] | None = None) -> RunResult:
    """One live run against the services `settings` point at (a fresh observer per scenario)."""
    async with LiveTransport(settings) as transport:
        return await ScenarioRun(scenario, transport, seed=seed, anchor=wall_anchor(), on_step=on_step).play()


async def dry_run(scenario: Scenario, *, seed: int | None = None) -> tuple[RunResult, list[str]]:
    transport = DryRunTransport()
    result = await ScenarioRun(scenario, transport, seed=seed).play()
    return result, transport.lines


def run_with_progress(scenarios: list[Scenario], settings: SimulatorSettings, seed: int | None) -> list[RunResult]:
    results: list[RunResult] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        overall = progress.add_task("scenarios", total=len(scenarios))
        for scenario in scenarios:
            task = progress.add_task(f"  {scenario.name}", total=len(scenario.steps))
            def advance(_: object, task: TaskID = task) -> None:
                progress.advance(task)

            result = asyncio.run(run_scenario(scenario, settings, seed=seed, on_step=advance))
            status = "[green]pass[/]" if result.passed else "[red]FAIL[/]"
            progress.update(task, description=f"  {scenario.name} {status}", completed=len(scenario.steps))
            progress.advance(overall)
            results.append(result)
    return results


def services_not_answering(settings: SimulatorSettings, timeout_s: float = 2.0) -> list[tuple[str, str, str]]:
    """(service, url, why) for each service whose /health does not answer: a live run needs all of them."""
    import httpx

    from simulator.wire import SERVICES

    down = []
    for service in SERVICES:
        url = settings.service_url(service)
        try:
            r = httpx.get(f"{url}/health", timeout=timeout_s)
            if r.status_code != 200:
                down.append((service, url, f"/health answered {r.status_code}"))
        except httpx.HTTPError as exc:
            down.append((service, url, type(exc).__name__))
    return down


def refuse_without_services(settings: SimulatorSettings) -> None:
    """Say plainly that the services are not running and how to start them, and exit 2."""
    down = services_not_answering(settings)
    if not down:
        return
    console.print("The services are not running, so there is nothing to play the scenarios against:",
                  style="red", highlight=False)
    for service, url, why in down:
        console.print(f"  {service} at {url}: {why}", highlight=False, markup=False)
    console.print(f"Start them with `{CLI} demo` (the stack, the four services and a scenario; they keep running),\n"
                  f"or `{CLI} stack up` and then `{CLI} run <service>` for each of: topology, envelope_lifecycle,"
                  f" balancing, compatibility_adapter.\n`{CLI} simulate <scenario> --dry-run` shows a scenario without"
                  " services.", highlight=False, markup=False)
    raise typer.Exit(2)


def report(results: list[RunResult], report_dir: Path, title: str) -> Path:
    console.print(summary_table(results, title))
    print_failures(console, results)
    path = write_html(results, report_dir)
    console.print(f"report: [bold]{path}[/]", highlight=False)
    return path


def simulate(
    scenario: Annotated[str | None, typer.Argument(help="scenario name (scenarios/<name>.yaml) or a path")] = None,
    all_: Annotated[bool, typer.Option("--all", help="run the whole scenario library")] = False,
    seed: Annotated[int | None, typer.Option(help="override the scenario's seed")] = None,
    dry_run_: Annotated[bool, typer.Option("--dry-run", help="print what would be sent (JSON lines)")] = False,
    list_: Annotated[bool, typer.Option("--list", help="list the scenario library")] = False,
    report_dir: Annotated[Path, typer.Option(help="where the HTML report goes")] = REPORTS_DIR,
) -> None:
    """Play depot scenarios against the running services; exit 1 on any failed expectation."""
    if list_:
        table = Table(title="scenario library")
        for column in ("scenario", "depot", "requirements", "title"):
            table.add_column(column, overflow="fold")
        for s in library():
            table.add_row(s.name, s.depot, " ".join(s.requirements), s.title)
        console.print(table)
        return
    if all_ == (scenario is not None):
        raise typer.BadParameter(f"name one scenario or pass --all (library: {', '.join(library_names())})")
    scenarios = library() if all_ else [load_scenario(scenario)]  # type: ignore[arg-type]
    if dry_run_:
        for s in scenarios:
            _, lines = asyncio.run(dry_run(s, seed=seed))
            for line in lines:
                typer.echo(line)
        return
    settings = SimulatorSettings()
    refuse_without_services(settings)
    results = run_with_progress(scenarios, settings, seed)
    report(results, report_dir, "mgrid simulate" + (" --all" if all_ else f" {scenarios[0].name}"))
    if not all(r.passed for r in results):
        raise typer.Exit(1)


def demo(
    scenario: Annotated[str, typer.Option(help="the scenario to play")] = DEMO_SCENARIO,
    stop: Annotated[bool, typer.Option("--stop", help="stop the four services afterwards")] = False,
    run: Annotated[bool, typer.Option("--run/--no-run", help="play the scenario (--no-run --stop: stop only)")] = True,
    report_dir: Annotated[Path, typer.Option(help="where the HTML report goes")] = REPORTS_DIR,
) -> None:
    """Bring up the stack, start the four services, play a depot scenario and show the result."""
    from tools import stack

    processes = ServiceProcesses(env=DEMO_SERVICE_ENV)
    if not run:
        _show_services("services stopped", processes.stop() if stop else processes.status())
        return
    console.print("[bold]1/4[/] the stack: Kafka, Postgres, Redis (installs what is missing on first run)")
    try:
        statuses = stack.up()
    except stack.StackError as exc:
        console.print(str(exc), style="red", markup=False, highlight=False)
        raise typer.Exit(1) from exc
    console.print(", ".join(f"{s.name} {s.state.value} ({s.action.value if s.action else ''})" for s in statuses))
    os.environ.update(stack.endpoints())
    console.print(f"[bold]2/4[/] the four services, each its own process (`{CLI} run <service>`)")
    try:
        _show_services("services", processes.start())
    except ServiceStartError as exc:
        console.print(str(exc), style="red", markup=False, highlight=False)
        raise typer.Exit(1) from exc
    os.environ.update(processes.urls_env())
    console.print(f"operator console: {console_url(processes, None)}", highlight=False)
    console.print(f"[bold]3/4[/] playing scenario [bold]{scenario}[/]")
    results = run_with_progress([load_scenario(scenario)], SimulatorSettings(), None)
    console.print("[bold]4/4[/] result")
    path = report(results, report_dir, f"mgrid demo: {scenario}")
    if stop:
        _show_services("services stopped", processes.stop())
    else:
        microgrids = [r for r in results if r.steps]
        console.print(_explore_hint(processes, microgrids[0] if microgrids else None, path), highlight=False)
    if not all(r.passed for r in results):
        raise typer.Exit(1)


def _show_services(title: str, statuses: list[ServiceStatus]) -> None:
    table = Table(title=title)
    for column in ("service", "state", "url", "pid", "log"):
        table.add_column(column, overflow="fold")
    for s in statuses:
        state = s.state.value + (f" ({s.action})" if s.action else "")
        table.add_row(s.name, state, s.url, str(s.pid or "-"), str(s.log_file))
    console.print(table)


def console_url(processes: ServiceProcesses, result: RunResult | None) -> str:
    """The operator console (served by balancing), opened on the scenario's depot when there is one."""
    base = f"{processes.url('balancing')}/console"
    if result is None:
        return base
    from simulator.identity import Identities, run_namespace

    depot = Identities(run_namespace(result.scenario.name, result.seed, result.anchor)).of(
        "depot", result.scenario.layout().name)
    return f"{base}/depots/{depot}"


def _explore_hint(processes: ServiceProcesses, result: RunResult | None, report_path: Path) -> str:
    lines = ["", "The system is still running. Explore it:"]
    token = (f"TOKEN=$({CLI} token issue --subject demo-operator --scope operator:read --scope operator:write"
             " --scope integration:write --all-microgrids)")
    lines.append(f"  {token}")
    url = console_url(processes, result)
    lines.append(f'  echo "{url}#token=$TOKEN"   # the operator console, live; open that URL in a browser')
    if "/depots/" in url:
        depot = url.rsplit("/", 1)[1]
        lines.append(f'  curl -s -H "Authorization: Bearer $TOKEN" {processes.url("topology")}'
                     f"/api/depot/{depot}/microgrid | python -m json.tool")
    lines += [f"  open {report_path}", f"  {CLI} simulate --list        # the scenario library",
              f"  {CLI} demo --no-run --stop   # stop the four services; `{CLI} stack down` stops the stack"]
    return "\n".join(lines)


simulate_app = simulate
demo_app = demo


def dump_json(result: RunResult) -> str:
    """A compact machine-readable summary (used by the system tests' failure messages)."""
    return json.dumps({"scenario": result.scenario.name, "passed": result.passed, "error": result.error,
                       "failures": [{"step": w, "check": f.check, "expected": f.expected, "observed": f.observed}
                                    for w, f in result.failures]}, indent=1)
