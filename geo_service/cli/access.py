"""``geo-service keys`` and ``users``: who may call the API (keys) and who signs in to the
pages (users); together because both decide access."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from geo_service.cli.common import command_engine, console

keys_app = typer.Typer(no_args_is_help=True, help="API keys and roles.")
users_app = typer.Typer(no_args_is_help=True, help="People who sign in to the pages.")


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="reporter|grid_worker|operator|planner|admin")],
    label: Annotated[str | None, typer.Option(help="who holds the key")] = None,
    scope: Annotated[str | None, typer.Option(help="area code a grid worker covers")] = None,
) -> None:
    """Create an API key; the key is printed alone on the last line (only its hash is kept)."""
    from geo_service.auth import create_key

    with command_engine() as engine, engine.begin() as conn:
        key = create_key(conn, role, label=label, scope=scope)
    console.print(f"{role} key created" + (f" for {scope}" if scope else "") + ":")
    print(key)


@keys_app.command("revoke")
def keys_revoke(
    key: Annotated[str, typer.Argument(help="the key's id, its gs_… prefix or its label")],
) -> None:
    """Revoke an API key: refused on every worker within a second; audited, never deleted."""
    from geo_service.auth import revoke_key

    with command_engine() as engine, engine.begin() as conn:
        row = revoke_key(conn, key)
    label = f" ({row.label})" if row.label else ""
    console.print(f"{row.role} key {row.id} {row.prefix}…{label} revoked")


@keys_app.command("list")
def keys_list() -> None:
    """Every API key: id, prefix, role, label, scope, created, revoked (never the key)."""
    from geo_service.store.keys import all_keys

    with command_engine() as engine, engine.connect() as conn:
        rows = all_keys(conn)
    table = Table("id", "prefix", "role", "label", "scope", "created", "revoked")
    for r in rows:
        table.add_row(
            str(r.id),
            r.prefix,
            r.role,
            r.label or "",
            r.scope_area_code or "",
            r.created_at.isoformat(timespec="seconds"),
            r.revoked_at.isoformat(timespec="seconds") if r.revoked_at else "",
        )
    console.print(table)


@users_app.command("create")
def users_create(
    name: Annotated[str, typer.Argument(help="the user name to sign in with")],
    role: Annotated[str, typer.Option(help="reporter|grid_worker|operator|planner|admin")],
    scope: Annotated[str | None, typer.Option(help="area code a grid worker covers")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from standard input")
    ] = False,
) -> None:
    """Add a user who signs in to the pages (only an argon2 hash of the password is kept)."""
    import sys

    from geo_service.accounts import create_user

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    with command_engine() as engine, engine.begin() as conn:
        user_id = create_user(conn, name, role, password, scope)
    where = f", {scope}" if scope else ""
    console.print(f"user {name} ({role}{where}) created: id {user_id}")


@users_app.command("disable")
def users_disable(name: Annotated[str, typer.Argument(help="the user name")]) -> None:
    """Disable a user: it cannot sign in, and its open sessions end at once; audited."""
    from geo_service.accounts import disable_user

    with command_engine() as engine, engine.begin() as conn:
        disable_user(conn, name)
    console.print(f"user {name} disabled; its sessions ended")


@users_app.command("list")
def users_list() -> None:
    """Every user: id, name, role, scope, created, disabled (never a password hash)."""
    from geo_service.accounts import list_users

    with command_engine() as engine, engine.connect() as conn:
        rows = list_users(conn)
    table = Table("id", "name", "role", "scope", "created", "disabled")
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["username"],
            r["role"],
            r["scope"] or "",
            r["created_at"].isoformat(timespec="seconds"),
            r["disabled_at"].isoformat(timespec="seconds") if r["disabled_at"] else "",
        )
    console.print(table)
