"""Workspaces and API keys (``blindspot admin ...``)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from blindspot.cli.connection import KeyOpt, UrlOpt, connect, console

app = typer.Typer(no_args_is_help=True, help="Workspaces and API keys.")


@app.command("create-workspace")
def create_workspace(
    name: str,
    url: UrlOpt = None,
    bootstrap_token: Annotated[
        str, typer.Option(envvar="BLINDSPOT_GATEWAY__BOOTSTRAP_TOKEN", help="The gateway's bootstrap token.")
    ] = "dev-only-bootstrap-token",
) -> None:
    """Create a workspace and print its first admin key (shown once: store it)."""
    with connect(url, None) as bs:
        out = bs.create_workspace(name, bootstrap_token)
    console.print(f"workspace [bold]{out['name']}[/bold] (id {out['workspace_id']})")
    console.print("admin API key (shown once):")
    typer.echo(out["api_key"]["key"])


@app.command("create-key")
def create_key(
    name: str,
    scope: Annotated[
        list[str] | None, typer.Option("--scope", help="read, write or admin (repeatable).")
    ] = None,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """Create an API key in the caller's workspace; the key is printed once."""
    with connect(url, api_key) as bs:
        out = bs.create_api_key(name, scope or ["read"])
    console.print(f"key {out['id']} ({', '.join(out['scopes'])}), shown once:")
    typer.echo(out["key"])


@app.command("keys")
def keys(url: UrlOpt = None, api_key: KeyOpt = None) -> None:
    """List the workspace's API keys (never their secrets)."""
    with connect(url, api_key) as bs:
        rows = bs.api_keys()
    table = Table("id", "name", "prefix", "scopes", "created", "last used", "revoked")
    for k in rows:
        table.add_row(str(k["id"]), k["name"], k["prefix"], ",".join(k["scopes"]), str(k["created_at"])[:19],
                      str(k["last_used_at"] or "")[:19], str(k["revoked_at"] or "")[:19])  # fmt: skip
    console.print(table)


@app.command("revoke-key")
def revoke_key(key_id: int, url: UrlOpt = None, api_key: KeyOpt = None) -> None:
    """Revoke an API key: it is refused from the next request on."""
    with connect(url, api_key) as bs:
        out = bs.revoke_api_key(key_id)
    console.print(f"key {out['id']} revoked at {out['revoked_at']}")
