"""The ``blindspot`` command. Each sub-command group lives in its own module and is registered here."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(no_args_is_help=True, help="Blindspot: find where your detector fails.")

# (module under blindspot.cli, group name); a module exposes ``app`` (a typer.Typer).
_GROUPS = [
    ("db", "db"),
    ("stack", "stack"),
    ("eval", "eval"),
    ("data", "data"),
    ("admin", "admin"),
    ("runs", "runs"),
    ("batches", "batches"),
    ("demo", "demo"),
]

for module_name, group in _GROUPS:
    try:
        module = importlib.import_module(f"blindspot.cli.{module_name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"blindspot.cli.{module_name}":
            raise
        continue
    app.add_typer(module.app, name=group)


def main() -> None:
    app()
