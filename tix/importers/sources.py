"""Which source and intake step an import kind uses (`tix.importers.run_import`)."""
from __future__ import annotations

from pathlib import Path

from tix.errors import UsageError


def open_import(store, kind: str, path: str | None, *, since=None, mapping=None, address=None, folder=None,
                me=None, phone=None):
    """(source, step factory, spec) for one import; UsageError (exit 2) when the input is missing."""
    if kind == "imap":
        return _imap(store, path, since, folder, address)
    if not path:
        raise UsageError(f"tix import {kind} needs the path of the export")
    p = Path(path).expanduser().absolute()
    if not p.exists():
        raise UsageError(f"{path}: no such file or directory")
    name = f"import-{kind}"
    spec = {"name": name, "type": kind, "path": str(p), "after": "keep", "batch": 200,
            **({"address": address} if address else {})}
    if kind in ("mbox", "maildir"):
        from tix.importers import mail

        cls = mail.MboxImport if kind == "mbox" else mail.MaildirImport
        return cls(store, spec, None), lambda run: mail.ImportMailStep(run, address), spec
    if kind == "whatsapp":
        from tix.importers import whatsapp

        source = whatsapp.ChatSource(store, spec, None, me=me, phone=phone)
        return source, lambda run: whatsapp.ChatStep(run, source), spec
    from tix.importers import helpdesk

    if not mapping:
        raise UsageError("tix import helpdesk needs --mapping FILE (the columns of the export)")
    source = helpdesk.HelpdeskSource(store, spec, None, mapping=mapping)
    return source, lambda run: helpdesk.HelpdeskStep(run, source), spec


def _imap(store, name, since, folder, address):
    from tix.importers import mail

    specs = {str(s.get("name")): s for s in store.config.section("channels", []) or [] if s.get("type") == "imap"}
    if not name or name not in specs:
        raise UsageError(f"tix import imap needs the name of an imap source in tix.yaml; "
                         f"imap sources: {', '.join(sorted(specs)) or '(none)'}")
    spec = {**specs[name], "after": "seen"}
    if folder:
        spec["folders"] = [folder]
    if since is not None:
        spec["since"] = since
    return mail.ImapImport(store, spec, None), lambda run: mail.ImportMailStep(run, address), spec
