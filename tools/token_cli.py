"""`mgrid token`: issue bearer tokens of the local issuer for operators, integrations and local testing."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import typer

from libs.platform.auth import Grant, Scope, auth_settings, issue_token
from libs.platform.signing_keys import configured_secret, ensure_local_key

app = typer.Typer(no_args_is_help=True)


@app.callback()
def token() -> None:
    """Issue HS256 bearer tokens signed with MGRID_AUTH_SECRET(_FILE), else the local stack's key."""


@app.command()
def issue(
    subject: Annotated[str, typer.Option("--subject", help="Who the token is for (the `sub` claim).")],
    scope: Annotated[list[Scope], typer.Option("--scope", help="Granted scope; repeat for several.")],
    microgrid: Annotated[
        list[UUID] | None, typer.Option("--microgrid", help="A microgrid the token may act on; repeat for several.")
    ] = None,
    depot: Annotated[
        list[UUID] | None, typer.Option("--depot", help="A depot the token may act on; repeat for several.")
    ] = None,
    all_microgrids: Annotated[
        bool, typer.Option("--all-microgrids", help="Grant every microgrid (platform operators, local tools).")
    ] = False,
    ttl: Annotated[
        int | None, typer.Option("--ttl", min=1, help="Lifetime in seconds (default 1 h, at most the maximum).")
    ] = None,
) -> None:
    """Print a signed token, e.g. `mgrid token issue --subject alice --scope operator:read --microgrid <id>`."""
    if not (microgrid or depot or all_microgrids):
        raise typer.BadParameter("name what the token may act on: --microgrid, --depot or --all-microgrids")
    maximum = auth_settings().token_max_ttl_s
    if ttl is not None and ttl > maximum:
        raise typer.BadParameter(f"at most {maximum} s (MGRID_AUTH_TOKEN_MAX_TTL_S)", param_hint="--ttl")
    if configured_secret() is None:
        ensure_local_key()  # first use on a fresh checkout: the local stack's key, made now
    grant = Grant(everything=all_microgrids, microgrids=frozenset(microgrid or ()), depots=frozenset(depot or ()))
    typer.echo(issue_token(subject, scope, grant, ttl_seconds=ttl))
