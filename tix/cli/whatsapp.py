"""`tix webhook serve`: the always-on WhatsApp webhook receiver (see tix.channels.whatsapp.webhook)."""
from __future__ import annotations

import typer

from tix.cli.common import FormatOpt, check_format, open_store, state


def register(app) -> None:
    """Add the `webhook` group to the app."""
    group = typer.Typer(help="The WhatsApp webhook receiver (Meta pushes; `tix fetch` ingests the spool).",
                        no_args_is_help=True)
    group.command("serve")(webhook_serve)
    group.command("events")(webhook_events)
    app.add_typer(group, name="webhook")


def webhook_events(
    incidents: bool = typer.Option(False, "--incidents", help="Only incidents: bans, restrictions, rejections."),
    fmt: str = FormatOpt,
) -> None:
    """List what WhatsApp reported about the account, its numbers and templates (`tix fetch` records it).

    Example: tix webhook events --incidents
    """
    from tix.ingest.whatsapp import account_events
    from tix.render import render

    check_format(fmt)
    store = open_store()
    render(account_events(store, incidents), fmt, tz=store.config.setting("timezone"),
           columns=["ts", "field", "event", "severity", "number", "template", "text"])


def webhook_serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (put a TLS proxy in front)."),
    port: int = typer.Option(8080, "--port", "-p", help="Port to listen on (0: any free port)."),
) -> None:
    """Receive WhatsApp webhooks: verify the signature, spool the body durably, answer 200.

    Needs the `whatsapp:` section of tix.yaml with app_secret_env (and verify_token_env for
    Meta's subscription handshake). Payloads wait in spool/whatsapp/ until `tix fetch`.
    With -v it prints the address it listens on and one line per request.

    Example: TIX_WA_APP_SECRET=… TIX_WA_VERIFY_TOKEN=… tix webhook serve --host 0.0.0.0 --port 8080
    """
    import sys

    from tix.channels.whatsapp.webhook import serve

    store = open_store()

    def ready(server):
        if state.verbose:
            h, p = server.server_address[:2]
            sys.stderr.write(f"tix webhook: listening on http://{h}:{p}/ (spool: {store.path('spool', 'whatsapp')})\n")
            sys.stderr.flush()

    try:
        serve(store, host, port, verbose=bool(state.verbose), ready=ready)
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        from tix.errors import UsageError

        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
