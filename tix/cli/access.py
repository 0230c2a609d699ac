"""`tix audit` (who read what: the access log) and `tix whoami` (who tix takes you for)."""
from __future__ import annotations

from typing import Optional

import typer

from tix.cli.common import FormatOpt, check_format, local_time, open_store


def register(app: typer.Typer) -> None:
    app.command("audit")(audit)
    app.command("whoami")(whoami)


def audit(
    actor: Optional[str] = typer.Option(None, "--actor", help="Only this user (agent name or OS login)."),
    since: Optional[str] = typer.Option(None, "--since", help="Only reads at or after this time (site zone)."),
    fmt: str = FormatOpt,
) -> None:
    """List the access log: who read which ticket, contact or query, and when (audit_reads: true).

    Example: tix audit --actor budi --since 2026-11-01 --format csv
    """
    from tix.accesslog import read
    from tix.render import render

    check_format(fmt)
    store = open_store()
    rows = read(store, actor=actor, since=local_time(since, store, "--since"))
    for r in rows:
        r["what"] = " ".join(f"{k}={v}" for k, v in r.get("args", {}).items()) if fmt != "json" else r["args"]
        r["by"] = f"{r['as_by']} as {r['actor']}" if r.get("as_by") else r["actor"]
        if fmt != "json":
            from tix.store.log import parse_ts

            r["ts"] = parse_ts(r["ts"])
    render(rows, fmt, tz=store.config.setting("timezone"),
           columns=["ts", "by", "login", "role", "sudo", "command", "what"], headers={"ts": "when"})


def whoami(fmt: str = FormatOpt) -> None:
    """Print who tix takes you for on this store: OS login, agent, role, teams, and why.

    Example: tix whoami
    """
    from tix import access
    from tix.render import render

    check_format(fmt)
    open_store()
    ident = access.current()
    render([{"login": ident.login, "agent": ident.agent or "-", "role": ident.role,
             "teams": list(ident.teams), "how": ident.how + (" (through sudo)" if ident.sudo else "")}], fmt)
