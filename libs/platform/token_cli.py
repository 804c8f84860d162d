"""`mgrid token`: issue bearer tokens for operators, integrations and local testing."""

from __future__ import annotations

from typing import Annotated

import typer

from libs.platform.auth import Scope, issue_token

app = typer.Typer(no_args_is_help=True)


@app.callback()
def token() -> None:
    """Issue bearer tokens signed with MGRID_AUTH_SECRET (dev-only default if unset)."""


@app.command()
def issue(
    subject: Annotated[str, typer.Option("--subject", help="Who the token is for (the `sub` claim).")],
    scope: Annotated[list[Scope], typer.Option("--scope", help="Granted scope; repeat for several.")],
    ttl: Annotated[
        int | None, typer.Option("--ttl", min=1, help="Lifetime in seconds; omit for no expiry.")
    ] = None,
) -> None:
    """Print a signed token, e.g. `mgrid token issue --subject alice --scope operator:read`."""
    typer.echo(issue_token(subject, scope, ttl_seconds=ttl))
