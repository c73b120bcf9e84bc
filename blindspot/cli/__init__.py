"""The ``blindspot`` command. Each sub-command group lives in its own module and is registered here.

Groups are imported lazily: ``blindspot eval coco ...`` imports only ``blindspot.cli.eval`` (start-up time
matters for a command timed against pycocotools and friends; its plain spelling does not even build the
typer app: ``eval_coco.run_fast``); ``--help`` and ``app`` load them all.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import typer

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


def build_app(only: str | None = None) -> typer.Typer:
    """The CLI with every group, or with just ``only``."""
    import typer  # not at import time: ``eval coco`` runs without it (``eval_coco.run_fast``)

    root = typer.Typer(no_args_is_help=True, help="Blindspot: find where your detector fails.")
    for module_name, group in _GROUPS:
        if only is not None and group != only:
            continue
        try:
            module = importlib.import_module(f"blindspot.cli.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"blindspot.cli.{module_name}":
                raise
            continue
        root.add_typer(module.app, name=group)
    return root


def __getattr__(name: str) -> Any:
    if name == "app":
        return build_app()
    raise AttributeError(name)


def main() -> None:
    if sys.argv[1:3] == ["eval", "coco"]:
        from blindspot.cli.eval_coco import run_fast

        code = run_fast(sys.argv[3:])
        if code is not None:
            # Done, its report written and closed: leave without tearing the interpreter down (freeing the
            # ground truth's ~10^5 objects and ~300 MB of arrays one by one costs ~40 ms of a 0.6 s run).
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except BrokenPipeError:  # `... | head`: what was left unread is dropped, as on a normal exit
                    code = code or 1
            os._exit(code)
    groups = {group for _, group in _GROUPS}
    only = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] in groups else None
    build_app(only)()
