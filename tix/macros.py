"""Macros: canned replies an agent sends with `tix reply N --macro NAME`.

A macro is a Jinja2 text template in `templates/macros/` of the store (`NAME`, `NAME.txt`,
`NAME.j2` or `NAME.txt.j2`), else in the package's examples; an older site's macro at the
top of `templates/` is still found. It renders in the one sandboxed environment of
tix.templates (a misspelt name is an error, never an empty string in a customer's mail; an
error is one line `templates/macros/NAME:LINE: message` with the template's own line).

What a macro gets (`context`):

    ticket    the ticket as a mapping: number, ref (`#1042`), subject, status, priority,
              category, team, assignee, channel, inbox, tags (a list), fields (a mapping of
              the custom fields: `{{ ticket.fields.order_id }}`), times (created_at,
              updated_at, first_response_at, resolved_at, last_customer_at, ...) as aware
              datetimes in the site's time zone
    fields    the ticket's custom fields (the same mapping as ticket.fields)
    contact   the customer: id, name, emails, phones, fields (a mapping: tier, language,
              the contact fields of tix.yaml); an empty mapping when the ticket has none
    agent     who is replying: login, name, email and signature from tix.yaml `agents:`
              (`{{ agent }}` alone is the name)
    locale    the contact's `language` when it is `id` or `en`, else the site's `locale`
    now       the time of rendering, in the site's time zone
    and label(), team_name(), agent_name() as in every template of a store.

Dates read as people write them in the locale: `{{ ticket.created_at | date }}` (`6 Desember
2026`), `{{ ticket.created_at | date("short") }}`, `{{ now | datetime(locale) }}`.

`tix macro list|show|preview` (tix.cli.agent) and `tix reply --macro` call this module.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from tix.errors import NotFound, UsageError
from tix.templates import MACRO_NAMES, TemplateMissing, environment, render, template_dirs, with_fields

SUFFIXES = (".txt.j2", ".txt", ".j2")
LOCALES = ("id", "en")


@dataclass(frozen=True)
class AgentInfo:
    """`agent` in a macro: `{{ agent.name }}`, `{{ agent.signature }}`; `{{ agent }}` is the name."""

    login: str
    name: str
    email: str = ""
    signature: str = ""

    def __str__(self) -> str:
        return self.name


def agent_info(config, actor: str) -> AgentInfo:
    login = actor.split(":", 1)[1] if actor.startswith("user:") else actor
    spec = config.agents.get(login)
    if spec is None:
        return AgentInfo(login, login)
    return AgentInfo(login, spec.display or login, spec.email, spec.signature)


def macro_list(store) -> list[dict]:
    """Every macro: name, where (`site` or `package`), path (relative to the store or package); a
    site's macro hides the package's one of the same name."""
    out: dict[str, dict] = {}
    for where, d in zip(("site", "package"), template_dirs(store), strict=True):
        base = Path(d) / "macros"
        for f in sorted(base.iterdir()) if base.is_dir() else ():
            if f.is_file() and not f.name.startswith("."):
                name = _stem(f.name)
                out.setdefault(name, {"name": name, "where": where, "path": f"templates/macros/{f.name}"})
    return sorted(out.values(), key=lambda r: r["name"])


def _stem(filename: str) -> str:
    for suffix in SUFFIXES:
        if filename.endswith(suffix) and len(filename) > len(suffix):
            return filename[: -len(suffix)]
    return filename


def macro_source(store, name: str) -> tuple[str, str]:
    """(path shown to people, template text) of macro `name`; UsageError if there is none."""
    import jinja2

    env = environment(store)
    for candidate in _names(name):
        try:
            source, _filename, _ = env.loader.get_source(env, candidate)
        except jinja2.TemplateNotFound:
            continue
        return f"templates/{candidate}", source
    raise _missing(store, name)


def _names(name: str) -> list[str]:
    # the macros/ directory first: it is where macros live now
    names = [n.format(name) for n in MACRO_NAMES]
    return [n for n in names if n.startswith("macros/")] + [n for n in names if not n.startswith("macros/")]


def _missing(store, name: str) -> UsageError:
    known = [m["name"] for m in macro_list(store)]
    from tix.config import suggest

    return UsageError(f"no macro {name!r}{suggest(name, known)}; macros: {', '.join(known) or '(none)'} "
                      f"(in {store.path('templates', 'macros')})")


def context(store, reader, row: dict, actor: str) -> dict:
    """What a macro gets (see the module docstring)."""
    from tix.store.log import utcnow

    config = store.config
    tz = ZoneInfo(config.setting("timezone"))
    ticket = {k: _local(v, tz) if k.endswith("_at") else v for k, v in with_fields(row).items()}
    ticket["tags"] = list(row.get("tags") or [])
    ticket["ref"] = f"#{row['number']}"
    contact: dict = {}
    if row.get("contact") is not None:
        found = reader.contact(row["contact"])
        if found is not None:
            contact = {k: _local(v, tz) if k.endswith("_at") else v for k, v in with_fields(found).items()}
            contact["emails"], contact["phones"] = list(found.get("emails") or []), list(found.get("phones") or [])
    language = (contact.get("fields") or {}).get("language")
    names = config.template_names()
    locale = language if language in LOCALES else names["locale"]
    return {**names, "ticket": ticket, "fields": ticket["fields"], "contact": contact,
            "agent": agent_info(config, actor), "locale": locale, "now": utcnow().astimezone(tz)}


def _local(value, tz):
    """A stored time (ISO text or a naive UTC datetime) as an aware datetime in `tz`."""
    from tix.store.log import parse_ts

    if value is None:
        return None
    if isinstance(value, str):
        return parse_ts(value).astimezone(tz)
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).astimezone(tz)
    return value


def render_macro(store, reader, row: dict, name: str, actor: str) -> str:
    """Macro `name` rendered for ticket `row` as `actor` would send it.

    Raises UsageError when there is no such macro, TemplateFailed (a UsageError) with
    `templates/macros/NAME:LINE: message` when it does not compile or render."""
    try:
        return render(environment(store), _names(name), context(store, reader, row, actor))
    except TemplateMissing:
        raise _missing(store, name) from None


def preview(store, number: int, name: str, actor: str) -> str:
    """`tix macro preview NAME N`: the macro rendered for ticket N; nothing is written."""
    from tix import access

    reader = store.read()
    row = reader.ticket(number)
    if row is None:
        raise NotFound(f"ticket #{number} not found")
    access.check_ticket(dict(row))  # an agent: the tickets of their teams (tix.access)
    return render_macro(store, reader, dict(row), name, actor)
