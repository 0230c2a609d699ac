"""The `whatsapp:` section of tix.yaml: its schema, validation (one Problem per mistake,
with its line) and the validated `Settings` the rest of the channel and the intake use."""
from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from tix.errors import ConfigError, Problem

DEFAULT_BASE_URL = "https://graph.facebook.com"
DEFAULT_VERSION = "v25.0"

_KEYS = ("numbers", "verify_token_env", "verify_token_file", "app_secret_env", "app_secret_file",
         "token_env", "token_file", "base_url", "version", "team", "reopen_days", "window_hours",
         "max_body_bytes", "templates", "path", "media_limits_mb", "alerts")
_NUMBER_KEYS = ("phone_number_id", "number", "team")


@dataclass
class Number:
    phone_number_id: str
    number: str
    team: str | None = None


@dataclass
class Settings:
    """The `whatsapp:` section of tix.yaml, validated (see `validate_config`)."""

    raw: dict
    numbers: dict[str, Number] = field(default_factory=dict)
    base_url: str = DEFAULT_BASE_URL
    version: str = DEFAULT_VERSION
    team: str | None = None
    window_hours: float = 24
    max_body_bytes: int = 8 * 1024 * 1024
    templates: dict = field(default_factory=dict)
    path: str | None = None

    def number_for(self, pnid: str, display: str | None) -> Number:
        if pnid in self.numbers:
            return self.numbers[pnid]
        return Number(pnid, digits(display) or pnid, None)

    def by_inbox(self, inbox: str | None) -> Number | None:
        for num in self.numbers.values():
            if num.number == inbox:
                return num
        return None

    def secret(self, what: str) -> str | None:
        from tix.config import read_secret

        return read_secret(self.raw, what)


def validate_config(section, fname: str) -> list[Problem]:
    """Check the `whatsapp:` section; one Problem per mistake, with its line."""
    problems: list[Problem] = []
    if not isinstance(section, dict):
        return [Problem(fname, getattr(section, "line", None), "whatsapp must be a mapping")]
    from tix.config import check_keys

    line = getattr(section, "line_of", lambda k: getattr(section, "line", None))
    problems += check_keys(section, _KEYS, fname, "whatsapp")
    numbers = section.get("numbers") or []
    if not isinstance(numbers, list):
        problems.append(Problem(fname, line("numbers"), "whatsapp.numbers must be a list"))
        numbers = []
    for i, num in enumerate(numbers):
        where = num.line if hasattr(num, "line") else line("numbers")
        if not isinstance(num, dict) or not num.get("phone_number_id"):
            problems.append(Problem(fname, where, f"whatsapp.numbers[{i}] needs phone_number_id (and number)"))
            continue
        problems += check_keys(num, _NUMBER_KEYS, fname, f"whatsapp.numbers[{i}]", line=where)
    for key in ("reopen_days", "window_hours", "max_body_bytes"):
        if key in section:
            try:
                if float(section[key]) < 0:
                    raise ValueError
            except (TypeError, ValueError):
                problems.append(Problem(fname, line(key), f"whatsapp.{key} must be a number >= 0"))
    base = str(section.get("base_url") or DEFAULT_BASE_URL)
    if urlsplit(base).scheme not in ("http", "https"):
        problems.append(Problem(fname, line("base_url"), f"whatsapp.base_url must be an http(s) URL, got {base!r}"))
    problems += _check_templates(section, fname, line)
    problems += _check_media_limits(section, fname, line)
    alerts = section.get("alerts")
    if alerts is not None:
        if not isinstance(alerts, dict):
            problems.append(Problem(fname, line("alerts"), "whatsapp.alerts must be a mapping (email, webhook, slack)"))
        else:
            problems += _check_alerts(alerts, fname, line("alerts"))
    return problems


def _check_alerts(alerts: dict, fname: str, where) -> list[Problem]:
    """`whatsapp.alerts`: whom a WhatsApp incident notifies (email addresses, a webhook)."""
    from tix.config import check_keys
    from tix.outbox.webhook import target_problem

    problems = check_keys(alerts, ("email", "webhook", "slack"), fname, "whatsapp.alerts")
    emails = alerts.get("email") or []
    for e in [emails] if isinstance(emails, str) else emails if isinstance(emails, list) else [emails]:
        if "@" not in str(e):
            problems.append(Problem(fname, where, f"whatsapp.alerts.email: not an email address: {e!r}"))
    if alerts.get("webhook"):
        problem = target_problem(str(alerts["webhook"]))
        if problem:
            problems.append(Problem(fname, where, f"whatsapp.alerts.webhook {problem}"))
    if not alerts.get("email") and not alerts.get("webhook"):
        problems.append(Problem(fname, where, "whatsapp.alerts needs email: ADDRESS(ES) or webhook: URL"))
    return problems


def _check_media_limits(section, fname, line) -> list[Problem]:
    """`media_limits_mb`: {image|video|audio|sticker|document: MB} (tix.outbox.attachments)."""
    from tix.outbox.attachments import WHATSAPP_MB

    limits = section.get("media_limits_mb")
    if limits is None:
        return []
    if not isinstance(limits, dict):
        return [Problem(fname, line("media_limits_mb"), "whatsapp.media_limits_mb must be a mapping of media type "
                                                        f"to MB ({', '.join(WHATSAPP_MB)})")]
    from tix.config import check_keys

    problems = check_keys(limits, tuple(WHATSAPP_MB), fname, "whatsapp.media_limits_mb", listing="types")
    for key, value in limits.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            problems.append(Problem(fname, line("media_limits_mb"), f"whatsapp.media_limits_mb.{key} must be a "
                                                                    f"number of MB > 0, got {value!r}"))
    return problems


def _check_templates(section, fname, line) -> list[Problem]:
    problems = []
    templates = section.get("templates") or {}
    if not isinstance(templates, dict):
        return [Problem(fname, line("templates"), "whatsapp.templates must be a mapping of name to template")]
    for key, spec in templates.items():
        where = templates.line_of(key) if hasattr(templates, "line_of") else line("templates")
        if not isinstance(spec, dict) or not spec.get("name"):
            problems.append(Problem(fname, where, f"whatsapp.templates.{key} needs name (the approved template)"))
        elif not isinstance(spec.get("params") or [], list):
            problems.append(Problem(fname, where, f"whatsapp.templates.{key}.params must be a list"))
        else:
            problems += _check_params(spec, key, fname, where)
    return problems


def _check_params(spec: dict, key: str, fname: str, where) -> list[Problem]:
    """Each parameter must be a Jinja2 template that parses (rendered when a reply is composed)."""
    from jinja2 import TemplateSyntaxError

    from tix.templates import environment

    env = environment()
    problems = []
    for i, param in enumerate(spec.get("params") or []):
        text = next(iter(param.values()), "") if isinstance(param, dict) else param
        try:
            env.parse(str(text))
        except TemplateSyntaxError as exc:
            problems.append(Problem(fname, where, f"whatsapp.templates.{key}.params[{i}]: {exc.message}"))
    return problems


def load_settings(store) -> Settings | None:
    """The validated `whatsapp:` section, or None when tix.yaml has none. Raises ConfigError.

    (`reopen_days` here overrides the `settings:` one for WhatsApp: `tix.ingest` reads it.)"""
    section = store.config.section("whatsapp")
    if section is None:
        return None
    fname = str(store.config.path)
    problems = validate_config(section, fname)
    teams = store.config.teams
    if section.get("team") and section["team"] not in teams:
        problems.append(Problem(fname, section.line_of("team") if hasattr(section, "line_of") else None,
                                f"whatsapp.team: unknown team {section['team']!r}"))
    for i, num in enumerate(section.get("numbers") or []):
        if isinstance(num, dict) and num.get("team") and num["team"] not in teams:
            problems.append(Problem(fname, getattr(num, "line", None),
                                    f"whatsapp.numbers[{i}].team: unknown team {num['team']!r}"))
    if problems:
        raise ConfigError(problems)
    s = Settings(raw=dict(section))
    for num in section.get("numbers") or []:
        pnid = str(num["phone_number_id"])
        s.numbers[pnid] = Number(pnid, digits(str(num.get("number") or "")) or pnid, num.get("team"))
    s.base_url = str(section.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
    s.version = str(section.get("version") or DEFAULT_VERSION)
    s.team = section.get("team")
    s.window_hours = float(section.get("window_hours", 24))
    s.max_body_bytes = int(section.get("max_body_bytes", s.max_body_bytes))
    s.templates = dict(section.get("templates") or {})
    s.path = section.get("path")
    return s


def digits(value) -> str:
    """The digits of a phone number or wa_id (`+62 812-…` -> `62812…`)."""
    text = str(value or "")
    if text.isdigit():
        return text
    return "".join(c for c in text if c.isdigit())
