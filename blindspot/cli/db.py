from __future__ import annotations

import typer

from shared.settings import get_settings

app = typer.Typer(no_args_is_help=True, help="Database schema (Alembic).")


@app.command()
def upgrade(revision: str = "head", create: bool = typer.Option(True, help="Create the database.")) -> None:
    """Apply migrations up to REVISION."""
    from shared.db import migrate  # Alembic is slow to import: only for this command

    url = get_settings().database.url
    if create:
        migrate.ensure_database(url)
    migrate.upgrade(url, revision)
    typer.echo(f"database at {revision}")


@app.command()
def downgrade(revision: str = "base") -> None:
    """Revert migrations down to REVISION."""
    from shared.db import migrate

    migrate.downgrade(get_settings().database.url, revision)
    typer.echo(f"database at {revision}")
