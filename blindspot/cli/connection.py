"""How the API command groups reach the gateway: URL and API key from options or the environment."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from blindspot.sdk import ApiError, Client

console = Console()
T = TypeVar("T")

UrlOpt = Annotated[str | None, typer.Option("--url", envvar="BLINDSPOT_URL", help="Gateway URL.")]
KeyOpt = Annotated[
    str | None,
    typer.Option("--api-key", envvar="BLINDSPOT_API_KEY", help="API key (bsk_...).", show_default=False),
]


@contextmanager
def connect(url: str | None, api_key: str | None) -> Iterator[Client]:
    """A client; an API error exits 1 with the API's message (never a traceback)."""
    client = Client(url, api_key)
    try:
        yield client
    except ApiError as exc:
        console.print(f"[red]{exc.status} {exc.error}[/red]: {exc.detail}")
        raise typer.Exit(1) from None
    finally:
        client.close()


def print_json(data: Any) -> None:
    console.print_json(json.dumps(data, default=str))


def parse_json(text: str | None, what: str, loader: Callable[[str], T] = json.loads) -> T | None:  # type: ignore[assignment]
    if text is None:
        return None
    try:
        return loader(text)
    except ValueError as exc:
        raise typer.BadParameter(f"{what} must be JSON: {exc}") from None
