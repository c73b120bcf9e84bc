"""``blindspot stack``: the local stack (dependencies + the five services and their workers).

``deps``   only what the test suite needs (Postgres, Redis, the pip-installed binaries); quick, idempotent.
``up``     every dependency, the migrations, then the services via honcho; waits for every /readyz.
``down``   stops what the stack started, and only that.
``status`` each dependency and service.  ``logs`` the logs under .stack/logs.
"""

from __future__ import annotations

import re
from pathlib import Path

import typer
from pydantic import ValidationError

from blindspot.stack.deps import StackError
from shared.settings import Settings

app = typer.Typer(no_args_is_help=True, help="The local stack: dependencies and services.")


def _settings() -> Settings:
    """Load the settings, or exit with the setting that is wrong (fail fast, before starting anything)."""
    try:
        return Settings()
    except ValidationError as exc:
        for error in exc.errors():
            loc = "__".join(str(p).upper() for p in error.get("loc", ()))
            name = f"BLINDSPOT_{loc}" if loc else "settings"
            message = str(error.get("msg", "")).removeprefix("Value error, ")
            typer.secho(f"configuration error: {name}: {message}", fg="red", err=True)
        raise typer.Exit(2) from None


def _fail(exc: StackError) -> typer.Exit:
    typer.secho(f"error: {exc}", fg="red", err=True)
    return typer.Exit(1)


def _print_status(rows: list[tuple[str, str, str, str]]) -> None:
    width = max((len(r[0]) for r in rows), default=10) + 2
    for name, state, target, detail in rows:
        color = "green" if state in {"up", "started", "running", "ok", "ready"} else "red"
        typer.echo(
            f"{name:<{width}}" + typer.style(f"{state:<10}", fg=color) + f"{target}  {detail}".rstrip()
        )


AutoStart = typer.Option(None, "--start/--no-start", help="Start local servers that do not answer.")


@app.command()
def deps(start: bool | None = AutoStart) -> None:
    """Make the test suite's dependencies answer: Postgres, Redis, the pip-installed binaries."""
    from blindspot.stack.runner import ensure_test_deps

    settings = _settings()
    try:
        statuses = ensure_test_deps(settings, autostart=settings.stack_autostart if start is None else start)
    except StackError as exc:
        raise _fail(exc) from None
    _print_status([(s.name, s.state, s.target, s.detail) for s in statuses])


@app.command()
def up(
    start: bool | None = AutoStart,
    timeout: float = typer.Option(180.0, help="Seconds to wait for every /readyz."),
    services: bool = typer.Option(True, help="Also start the services (off = dependencies only)."),
) -> None:
    """Start every dependency (or use the configured ones), migrate, start the services, wait for /readyz."""
    from blindspot.stack.runner import stack_up

    settings = _settings()
    try:
        stack_up(
            settings,
            autostart=settings.stack_autostart if start is None else start,
            timeout_s=timeout,
            with_services=services,
            echo=typer.echo,
        )
    except StackError as exc:
        raise _fail(exc) from None


@app.command()
def down() -> None:
    """Stop what `stack up`/`stack deps` started (servers found running are left alone)."""
    from blindspot.stack.runner import stack_down

    for line in stack_down(_settings()):
        typer.echo(line)


@app.command()
def status() -> None:
    """Show each dependency and service: who started it and whether it answers."""
    from blindspot.stack.runner import stack_status

    rows = stack_status(_settings())
    _print_status(rows)
    if any(state not in {"up", "running", "ok", "ready", "off"} for _, state, _, _ in rows):
        raise typer.Exit(1)


@app.command()
def logs(
    name: str = typer.Argument(
        "", help="A log (honcho, postgres-5432...) or a Procfile process (gateway, worker_metrics...)."
    ),
    lines: int = typer.Option(60, "-n", help="Lines from the end."),
) -> None:
    """List the stack's logs, or print the end of one."""
    settings = _settings()
    folder = Path(settings.stack_dir) / "logs"
    found = sorted(folder.glob("*.log")) + sorted(Path(settings.stack_dir).glob("*.log"))
    if not name:
        for path in found:
            typer.echo(str(path))
        return
    matches = [p for p in found if p.stem == name or p.name == name]
    honcho = folder / "honcho.log"
    if not matches and honcho.is_file():
        # A Procfile process (gateway, worker_metrics...): its lines of the honcho log.
        own = [
            line
            for line in honcho.read_text(errors="replace").splitlines()
            if re.match(rf"^\S+ {re.escape(name)}\.\d+\s+\|", line)
        ]
        if own:
            typer.echo("\n".join(own[-lines:]))
            return
    if not matches:
        typer.secho(f"no log named {name!r}; known: {', '.join(p.stem for p in found) or 'none'}", err=True)
        raise typer.Exit(1)
    text = matches[0].read_text(errors="replace").splitlines()
    typer.echo("\n".join(text[-lines:]))
