"""The one Jinja2 environment of tix: every template renders in a sandbox.

Auto-replies, macros, rule and SLA notifications, WhatsApp template parameters and HTML
reports are all Jinja2, written by the site's admins and fed with customer data. They all
come from `environment()`:

* a `jinja2.sandbox.SandboxedEnvironment`: a template cannot reach Python internals
  (`{{ ''.__class__.__mro__ }}`, `{{ cycler.__init__.__globals__ }}` raise SecurityError);
* `StrictUndefined`: a misspelt variable is an error, never an empty string in a customer's mail;
* the loader looks in the site's `templates/` first, then in the package's examples
  (`tix init` copies those; a site overrides one by keeping its own copy);
* text templates (auto-replies, macros, notifications, WhatsApp) are not escaped, except a
  template named `*.html`/`*.htm`/`*.html.j2`; HTML reports (`autoescape=True`) escape
  everything and trim block lines;
* the filters in `FILTERS` (e.g. `{{ seconds | duration }}` -> `1h30m`) everywhere;
* one environment per process per directory list and flavour (compiled templates are reused).

Rendering goes through `render` / `render_string`, which turn any template error into one
line, `templates/NAME:LINE: message` (`TemplateFailed`, a UsageError), so that a broken or
hostile template fails the one item that uses it with a clear message.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

from tix.durations import format_duration
from tix.errors import UsageError

HTML_SUFFIXES = ("html", "htm", "html.j2")


def local_datetime(value, locale: str = "id", pattern: str = "EEE dd-MM-yyyy HH:mm") -> str:
    """`{{ arrived | datetime(locale) }}` -> `Sel 01-12-2026 21.05 WIB` (id) / `Tue 01-12-2026 21:05 WIB` (en).

    An aware datetime is shown in its own zone, with the zone's abbreviation; Indonesian
    writes the time with a dot. Day names come from Babel, never from the C locale.
    """
    from babel.dates import format_datetime

    loc = "id" if locale == "id" else "en"
    if loc == "id":
        pattern = pattern.replace("HH:mm", "HH.mm")
    zone = value.strftime("%Z") if getattr(value, "tzinfo", None) else ""
    return (format_datetime(value, pattern, tzinfo=value.tzinfo, locale=loc) + f" {zone}").strip()


def local_date(ctx, value, format: str = "long", locale: str | None = None) -> str:
    """`{{ ticket.created_at | date }}` -> `6 Desember 2026` (locale `id`) / `December 6, 2026` (`en`).

    `format`: short, medium, long, full or a Babel pattern; the locale: the argument, else the
    template's `locale` (a macro: the contact's language, else the site's)."""
    from babel.dates import format_date

    loc = locale or ctx.get("locale") or "id"
    return format_date(value, format, locale="id" if loc == "id" else "en")


FILTERS = {"duration": format_duration, "datetime": local_datetime}
CONTEXT_FILTERS = {"date": local_date}  # filters that read the template's context (its `locale`)
MACRO_NAMES = ("{}", "{}.txt", "{}.j2", "{}.txt.j2", "macros/{}", "macros/{}.txt", "macros/{}.j2", "macros/{}.txt.j2")


def with_fields(row) -> dict:
    """A ticket or contact row for a template: a copy whose `fields` (custom fields, stored as JSON
    text) is a mapping, so that `{{ ticket.fields.order_id }}` works in every template."""
    import orjson

    out = dict(row or {})
    if isinstance(out.get("fields"), (str, bytes)):
        out["fields"] = orjson.loads(out["fields"] or "{}")
    elif "fields" in out and out["fields"] is None:
        out["fields"] = {}
    return out


class TemplateFailed(UsageError):
    """A template that does not compile or render; the message is one line with its location."""


class TemplateMissing(TemplateFailed):
    """No template of that name in the site's templates/ nor in the package's examples."""


def template_dirs(where=None) -> tuple[str, ...]:
    """The loader's directories: the site's (a Store, a directory or a list of them), then the examples."""
    from tix.store import examples_dir

    if where is None:
        dirs = []
    elif hasattr(where, "path"):
        dirs = [where.path("templates")]
    elif isinstance(where, (str, os.PathLike)):
        dirs = [where]
    else:
        dirs = list(where)
    dirs.append(examples_dir() / "templates")
    return tuple(str(Path(d)) for d in dirs)


def environment(where=None, autoescape: bool = False):
    """The sandboxed environment for `where` (a Store, a templates directory, a list of them, or
    None for the examples only); `autoescape=True` for HTML. Shared: do not change it.

    For a Store, its templates also get the site's `locale`, `label(field, value)`,
    `team_name(key)` and `agent_name(login)` (tix.config.Config.template_names): the SLA
    notifications speak the site's language and name teams and agents as tix.yaml does.
    """
    env = _environment(template_dirs(where), bool(autoescape))
    config = getattr(where, "config", None) if hasattr(where, "path") else None
    if config is not None:
        env.globals.update(config.template_names())
    return env


@functools.lru_cache(maxsize=64)
def _environment(dirs: tuple[str, ...], html: bool):
    import jinja2
    from jinja2 import FileSystemLoader, StrictUndefined, select_autoescape
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(
        loader=FileSystemLoader(list(dirs)),
        bytecode_cache=_bytecode_cache("html" if html else "text"),
        undefined=StrictUndefined,
        autoescape=True if html else select_autoescape(HTML_SUFFIXES, default_for_string=False, default=False),
        keep_trailing_newline=not html,  # a text template's last newline is part of the text
        trim_blocks=html,
        lstrip_blocks=html,
    )
    env.filters.update(FILTERS)
    env.filters.update({name: jinja2.pass_context(f) for name, f in CONTEXT_FILTERS.items()})
    return env


def _bytecode_cache(kind: str):
    """Compiled templates kept between runs (compiling the weekly report's HTML template took
    0.14 s of each run), in the user's cache directory ($XDG_CACHE_HOME or ~/.cache, then
    tix/jinja-KIND: HTML and text templates compile differently). Jinja keys each by the
    template's file and checks the source's checksum, so an edited template is compiled
    again. A cache that cannot be made or written is no cache: the templates compile."""
    from jinja2 import FileSystemBytecodeCache

    class Cache(FileSystemBytecodeCache):
        def dump_bytecode(self, bucket) -> None:
            try:
                super().dump_bytecode(bucket)
            except OSError:
                pass

    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = os.path.join(base, "tix", f"jinja-{kind}")
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError:
        return None
    return Cache(path)


def render(env, name: str | list[str], context: dict) -> str:
    """Render the template `name` (or the first of several names that exists) with `context`.

    Raises TemplateMissing when there is none, TemplateFailed on any other template error.
    """
    import jinja2

    names = [name] if isinstance(name, str) else list(name)
    try:
        template = env.select_template(names)
    except jinja2.TemplatesNotFound:
        raise TemplateMissing(f"template {names[0]!r} not found in templates/") from None
    except jinja2.TemplateError as exc:
        raise TemplateFailed(_one_line(exc, names[0])) from None
    try:
        return template.render(**context)
    except jinja2.TemplateError as exc:
        raise TemplateFailed(_one_line(exc, template.name, template.filename)) from None


def render_string(env, text: str, context: dict, where: str = "template text") -> str:
    """Render template source `text` (a subject line, a WhatsApp parameter); errors name `where`."""
    import jinja2

    try:
        return _compiled(env, text).render(**context)
    except jinja2.TemplateError as exc:
        raise TemplateFailed(_one_line(exc, None, "<template>", where)) from None


@functools.lru_cache(maxsize=512)
def _compiled(env, text: str):
    return env.from_string(text)  # a subject or parameter is rendered for every ticket: compile it once


def compile_error(env, name: str) -> str | None:
    """Why template `name` cannot be loaded (`templates/NAME:LINE: message`), or None."""
    import jinja2

    try:
        env.get_template(name)
    except jinja2.TemplateNotFound:
        return f"template {name!r} not found in templates/"
    except jinja2.TemplateError as exc:
        return _one_line(exc, name)
    return None


def _one_line(exc, name: str | None, filename: str | None = None, where: str | None = None) -> str:
    """`templates/NAME:LINE: message` for a template error (the line from the traceback
    Jinja2 rewrites to template lines when the error itself does not carry one)."""
    line = getattr(exc, "lineno", None)
    tb = exc.__traceback__ if line is None and filename else None
    while tb is not None:  # the innermost frame in the template
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    message = (getattr(exc, "message", None) or str(exc) or type(exc).__name__).strip().splitlines()[0]
    at = where or f"templates/{getattr(exc, 'name', None) or name}"
    return f"{at}:{line}: {message}" if line else f"{at}: {message}"
