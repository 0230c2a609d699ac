"""`tix.yaml`: loading, defaults and validation.

The file is YAML, loaded with line numbers (`tix.yaml:LINE: message` in every error).
Secrets never appear in it: a section names the environment variable (`password_env:`)
or a 0600 file (`password_file:`) that holds them.

Each top-level section is validated by one function; `validate()` runs all of them and
reports every problem at once. Sections owned by other stages (channels, calendars, sla,
outbound mail, whatsapp) are validated by those stages' own modules, listed in
`SECTION_VALIDATORS` by import path so that loading the config imports nothing heavy.
"""
from __future__ import annotations

import difflib
import importlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tix import yamlio
from tix.errors import ConfigError, Problem, UsageError

CONFIG_NAME = "tix.yaml"

def boolean(value) -> bool:
    """A YAML true/false (a word like "no" is not quietly true)."""
    if not isinstance(value, bool):
        raise ValueError(value)
    return value


boolean.__name__ = "true or false"


def _duration(value) -> str:
    """A setting in the duration grammar (`4h`, `1d`): kept as written, checked here."""
    from tix.durations import parse_duration

    parse_duration(value)
    return str(value)


_duration.__name__ = "a duration (e.g. 30m, 4h, 1d)"

# One declaration of the settings: name -> (default, converter, description).
SETTINGS: dict[str, tuple[Any, type, str]] = {
    "timezone": ("Asia/Jakarta", str, "site time zone for display, calendars and reports"),
    "locale": ("id", str, "language of reports and templates: id or en"),
    "subject_tag": ("#", str, "prefix of the ticket number in subjects, e.g. [#1042]"),
    "lock_timeout": (30.0, float, "seconds a writer waits for the store lock before exit 75"),
    "snapshot_every": (20000, int, "refresh the Parquet snapshot when the log tail has this many events"),
    "bulk_confirm_over": (50, int, "`tix update` without --yes refuses more tickets than this off a terminal"),
    "reopen_days": (14, int, "a customer reply within this many days reopens a resolved ticket"),
    "business_calendar": ("", str, "the calendar (calendars:) of business hours for rules and auto-replies"),
    "act_within": ("4h", _duration, "auto-replies, notifications and SLA steps only for what is newer than this"),
    "audit_reads": (False, boolean, "log who read what (show, attachment, contact export, sql) to access/"),
}

KNOWN_SECTIONS = (
    "settings", "teams", "agents", "custom_fields", "contact_fields",
    "channels", "outbound", "calendars", "sla", "whatsapp", "notify", "auto_reply", "reports", "redact",
    "retention",
    "agent_mail",
)

# Sections validated by the stage that owns them: section -> "module:function".
# Each function takes (section_value, config_path) and returns a list of Problem.
SECTION_VALIDATORS: dict[str, str] = {
    "channels": "tix.channels.base:validate_channels",
    "outbound": "tix.channels.mail.smtp:validate",
    "whatsapp": "tix.channels.whatsapp:validate_config",
    "calendars": "tix.sla.calendar:validate_section",
    "sla": "tix.sla.policy:validate_section",
    "reports": "tix.store.history:validate_section",
    "retention": "tix.tickets.retention:validate_section",
    "redact": "tix.redact:validate_section",
    "agent_mail": "tix.channels.mail.agentauth:validate_section",
}


@dataclass
class Agent:
    name: str
    display: str = ""
    email: str = ""
    teams: list[str] = field(default_factory=list)
    skills: list[str] = field(default_factory=list)
    away: bool = False
    logins: tuple[str, ...] = ()  # the OS logins that act as this agent (tix.access)
    role: str = "agent"  # agent, lead or admin (tix.access.ROLES)
    signature: str = ""  # what macros sign with: {{ agent.signature }}
    mail_client: bool = False  # works from their own mail client (`agent_mail:`, tix.ingest.agentmail)


@dataclass
class Config:
    path: Path
    raw: dict
    settings: dict
    teams: dict[str, dict]
    agents: dict[str, Agent]
    custom_fields: dict[str, dict]
    contact_fields: dict[str, dict] = field(default_factory=dict)  # besides name, tier, language

    def setting(self, name: str):
        return self.settings[name]

    def act_within(self) -> float:
        """Seconds: side effects that reach people only for what is newer than this (issue 17)."""
        from tix.durations import parse_duration

        return parse_duration(self.setting("act_within"))

    def display_names(self) -> dict[str, dict[str, str]]:
        """How people see teams and agents: {"team": {key: name}, "assignee"/"agent": {login: name}}."""
        teams = {key: str(spec.get("name") or key) for key, spec in self.teams.items()}
        agents = {login: agent.display or login for login, agent in self.agents.items()}
        return {"team": teams, "assignee": agents, "agent": agents}

    def template_names(self) -> dict:
        """What every template may use to show values as people read them, in the site's locale:
        `locale`, `label(field, value)` (tix.model.VALUE_LABELS), `team_name(key)`, `agent_name(login)`."""
        from tix.model import value_label

        locale = self.setting("locale")
        names = self.display_names()
        return {"locale": locale,
                "label": lambda field, value: value_label(field, value, locale),
                "team_name": lambda key: names["team"].get(key, key) if key else "-",
                "agent_name": lambda login: names["agent"].get(login, login) if login else "-"}

    def section(self, name: str, default=None):
        value = self.raw.get(name)
        return default if value is None else value

    def line_of(self, *keys) -> int | None:
        node = self.raw
        line = getattr(node, "line", None)
        for key in keys:
            if not isinstance(node, dict) or key not in node:
                break
            line = node.lines.get(key, line) if hasattr(node, "lines") else line
            node = node[key]
        return line

    def check_agent(self, name: str) -> str:
        if name not in self.agents:
            raise UsageError(f"unknown agent {name!r}{suggest(name, self.agents)}; "
                             f"agents: {', '.join(sorted(self.agents)) or '(none declared in tix.yaml)'}")
        return name

    def check_team(self, name: str) -> str:
        if name not in self.teams:
            raise UsageError(f"unknown team {name!r}{suggest(name, self.teams)}; "
                             f"teams: {', '.join(sorted(self.teams)) or '(none declared in tix.yaml)'}")
        return name


def suggest(word: str, choices) -> str:
    """` (did you mean 'priority'?)` or an empty string."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_keys(node, allowed, fname: str, where: str = "", *, line: int | None = None, noun: str = "key",
               listing: str | None = None, aliases=(), types: bool = False) -> list[Problem]:
    """The one check of a config mapping's keys: a Problem for each key not in `allowed`.

    Each reads `FILE:LINE: WHERE: unknown NOUN 'hots' (did you mean 'host'?)`, followed by
    `; LISTING: a, b, c` when `listing` names the accepted keys.

    Args:
        node: a mapping from `tix.yamlio` (each key's own line is used), or any iterable of keys.
        allowed: the accepted keys: a tuple or set, or a dict whose keys they are.
        fname: the file named in the message.
        where: the mapping (`outbound`, `channels[2] (support)`, `sla policy 'x'`); "" at the top level.
        line: the line of a key when `node` does not know it (default: the mapping's own line).
        noun: what a key is called: `key`, `setting`, `rule key`, `assign option`.
        listing: when given, the accepted keys are listed under this name (`keys`, `options`).
        aliases: keys accepted as well, but never suggested or listed (old spellings).
        types: `allowed` maps each key to a type or a tuple of types; a non-null value of another
            type is a problem too (`WHERE: port must be int, got 'x'`). A bool is no number;
            an int is a float.

    Returns:
        The problems, in the order of the keys.
    """
    known = [str(k) for k in allowed]
    prefix = f"{where}: " if where else ""
    shown = f"; {listing}: {', '.join(known)}" if listing else ""
    problems = []
    for key in node:
        at = node.line_of(key) if hasattr(node, "line_of") else (line or getattr(node, "line", None))
        if key not in allowed and key not in aliases:
            problems.append(Problem(fname, at, f"{prefix}unknown {noun} {key!r}{suggest(key, known)}{shown}"))
        elif types and key in allowed and node[key] is not None and not _type_ok(node[key], allowed[key]):
            want = allowed[key] if isinstance(allowed[key], tuple) else (allowed[key],)
            want = " or ".join(t.__name__ for t in want)
            problems.append(Problem(fname, at, f"{prefix}{key} must be {want}, got {node[key]!r}"))
    return problems


def _type_ok(value, want) -> bool:
    for typ in want if isinstance(want, tuple) else (want,):
        if typ in (int, float) and isinstance(value, bool):
            continue
        if isinstance(value, typ) or (typ is float and isinstance(value, int)):
            return True
    return False


def load(path: Path, validate_sections: bool = False) -> Config:
    """Load and validate `tix.yaml`; raise ConfigError listing every problem.

    An empty file (nothing but blanks and comments: a truncated or overwritten one) is an
    error too, like one that does not parse: with the defaults alone, fetch and escalate
    would find nothing to do and exit 0 (issue 18).
    """
    path = Path(path)
    fname = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[:exc.start].count(b"\n") + 1
        raise ConfigError([Problem(fname, line, "not UTF-8 text (a damaged file?)")]) from None
    except OSError as exc:
        raise ConfigError([Problem(fname, None, f"cannot read: {exc.strerror or exc}")]) from None
    raw = yamlio.loads(text, fname)
    if raw is None:
        raise ConfigError([Problem(fname, 1, "the file is empty (no settings, teams or other sections): "
                                             "restore it from a backup, or start from the example "
                                             "`tix init` writes")])
    problems: list[Problem] = []
    if not isinstance(raw, dict):
        raise ConfigError([Problem(fname, getattr(raw, "line", 1) or 1,
                                   "tix.yaml must be a mapping of sections (settings:, teams:, …)")])
    problems += check_keys(raw, KNOWN_SECTIONS, fname, noun="section")
    settings = _settings(raw.get("settings") or {}, fname, problems)
    teams = _teams(raw.get("teams") or {}, fname, problems)
    agents = _agents(raw.get("agents") or {}, teams, fname, problems)
    custom = _custom_fields(raw.get("custom_fields") or {}, fname, problems)
    contact = _custom_fields(raw.get("contact_fields") or {}, fname, problems, "contact_fields")
    if validate_sections:
        problems += validate_owned_sections(raw, fname)
    if problems:
        raise ConfigError(problems)
    return Config(path, raw, settings, teams, agents, custom, contact)


def validate_owned_sections(raw: dict, fname: str) -> list[Problem]:
    problems: list[Problem] = []
    for section, target in SECTION_VALIDATORS.items():
        if raw.get(section) is None:
            continue
        module, func = target.split(":")
        problems += getattr(importlib.import_module(module), func)(raw[section], fname)
    return problems


def _line(node, key=None) -> int | None:
    if key is not None and hasattr(node, "line_of"):
        return node.line_of(key)
    return getattr(node, "line", None)


def _settings(node, fname, problems) -> dict:
    out = {name: spec[0] for name, spec in SETTINGS.items()}
    if not isinstance(node, dict):
        problems.append(Problem(fname, _line(node), "settings must be a mapping"))
        return out
    problems += check_keys(node, SETTINGS, fname, noun="setting")
    for key, value in node.items():
        if key not in SETTINGS:
            continue
        try:
            out[key] = SETTINGS[key][1](value)
        except (TypeError, ValueError):
            problems.append(Problem(fname, _line(node, key),
                                    f"setting {key!r} must be {SETTINGS[key][1].__name__}, got {value!r}"))
    if not _zone_ok(out["timezone"]):  # e.g. a file cut off in the middle of `Asia/Jakarta`
        problems.append(Problem(fname, _line(node, "timezone"), f"setting 'timezone': unknown time zone "
                                f"{out['timezone']!r} (an IANA name such as Asia/Jakarta)"))
        out["timezone"] = SETTINGS["timezone"][0]
    env_timeout = os.environ.get("TIX_LOCK_TIMEOUT")
    if env_timeout:
        try:
            out["lock_timeout"] = float(env_timeout)
        except ValueError:
            problems.append(Problem("TIX_LOCK_TIMEOUT", None, f"not a number: {env_timeout!r}"))
    return out


def _zone_ok(name: str) -> bool:
    from zoneinfo import ZoneInfo

    try:
        ZoneInfo(str(name))
    except (KeyError, ValueError, OSError):  # ZoneInfoNotFoundError is a KeyError
        return False
    return True


def _teams(node, fname, problems) -> dict[str, dict]:
    if not isinstance(node, dict):
        problems.append(Problem(fname, _line(node), "teams must be a mapping of team name to settings"))
        return {}
    return {str(k): dict(v or {}) for k, v in node.items()}


_AGENT_KEYS = ("name", "email", "teams", "skills", "away", "login", "role", "signature", "mail_client")
_ROLES = ("agent", "lead", "admin")  # tix.access.ROLES (not imported: loading the config stays light)


def _agents(node, teams, fname, problems) -> dict[str, Agent]:
    out: dict[str, Agent] = {}
    if not isinstance(node, dict):
        problems.append(Problem(fname, _line(node), "agents must be a mapping of login name to settings"))
        return out
    for login, spec in node.items():
        spec = spec or {}
        if not isinstance(spec, dict):
            problems.append(Problem(fname, _line(node, login), f"agent {login!r} must be a mapping"))
            continue
        problems += check_keys(spec, _AGENT_KEYS, fname, noun="agent key")
        for team in spec.get("teams") or []:
            if team not in teams:
                problems.append(Problem(fname, _line(spec, "teams"),
                                        f"agent {login!r} is in unknown team {team!r}{suggest(team, teams)}"))
        role = str(spec.get("role") or "agent")
        if role not in _ROLES:
            problems.append(Problem(fname, _line(spec, "role"), f"agent {login!r}: unknown role {role!r}"
                                    f"{suggest(role, _ROLES)}; roles: {', '.join(_ROLES)}"))
        logins = spec.get("login") or []
        logins = [logins] if isinstance(logins, (str, int)) else logins
        for other in (a for a in out.values() if set(a.logins) & {str(x) for x in logins}):
            problems.append(Problem(fname, _line(spec, "login"), f"agent {login!r}: login "
                                    f"{sorted(set(other.logins) & {str(x) for x in logins})[0]!r} is also "
                                    f"agent {other.name!r}'s"))
        out[str(login)] = Agent(str(login), str(spec.get("name") or login), str(spec.get("email") or ""),
                                list(spec.get("teams") or []), [str(s) for s in spec.get("skills") or []],
                                bool(spec.get("away", False)), tuple(str(x) for x in logins), role,
                                str(spec.get("signature") or ""), mail_client=bool(spec.get("mail_client", False)))
        if spec.get("mail_client"):
            problems += _mail_client_problems(str(login), spec, fname, _line(spec, "mail_client"))
    return out


def _mail_client_problems(login: str, spec: dict, fname: str, line) -> list[Problem]:
    """An agent who works from their mail client needs an address, and a login that fits
    in the reply token of a `+tag` address (tix.channels.mail.agentauth)."""
    from tix.channels.mail.agentauth import LOGIN_RE

    out = []
    if "@" not in str(spec.get("email") or ""):
        out.append(Problem(fname, line, f"agent {login!r}: mail_client needs the agent's email address"))
    if not LOGIN_RE.fullmatch(login):
        out.append(Problem(fname, line, f"agent {login!r}: mail_client needs a login of letters, digits, "
                                        "'_' or '-' (at most 32): it goes into the reply address"))
    return out


_FIELD_TYPES = ("string", "int", "float", "bool", "date")


def _custom_fields(node, fname, problems, section: str = "custom_fields") -> dict[str, dict]:
    """`custom_fields:` (tickets) or `contact_fields:` (contacts): name -> {type, values}."""
    out: dict[str, dict] = {}
    if not isinstance(node, dict):
        problems.append(Problem(fname, _line(node), f"{section} must be a mapping"))
        return out
    for name, spec in node.items():
        if isinstance(spec, dict):
            problems += check_keys(spec, ("type", "values", "description"), fname, noun=f"{section} key")
        spec = dict(spec or {})
        ftype = spec.get("type", "string")
        if ftype not in _FIELD_TYPES:
            problems.append(Problem(fname, _line(node, name),
                                    f"{section[:-1].replace('_', ' ')} {name!r}: unknown type {ftype!r}; "
                                    f"types: {', '.join(_FIELD_TYPES)}"))
        if spec.get("values") is not None and not isinstance(spec["values"], list):
            problems.append(Problem(fname, _line(node, name), f"{section}: {name}: values must be a list"))
        spec["type"] = ftype
        out[str(name)] = spec
    return out


def read_secret(spec: dict, what: str) -> str | None:
    """A secret named by a config section: `<what>_env` (variable) or `<what>_file` (0600 file).

    The secret's value is never put in an error message.
    """
    env = spec.get(f"{what}_env")
    if env:
        value = os.environ.get(str(env))
        if value is None:
            raise UsageError(f"{what}: environment variable {env} is not set")
        return value
    path = spec.get(f"{what}_file")
    if path:
        p = Path(os.path.expanduser(str(path)))
        try:
            mode = p.stat().st_mode
        except FileNotFoundError:
            raise UsageError(f"{what}: secret file {p} does not exist") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise UsageError(f"{what}: secret file {p} must not be readable by others (chmod 600)")
        return p.read_text(encoding="utf-8").strip()
    return None


# -- `tix config check`: every check there is ----------------------------------------------------
# Run in this order once tix.yaml itself is valid (they check other files against it); each is
# "module:function", takes the Store and returns a list of Problem.
STORE_CHECKS: tuple[tuple[str, str], ...] = (
    ("calendars and SLA policies", "tix.config:_check_sla"),
    ("business calendar", "tix.config:_check_business_calendar"),
    ("rules", "tix.config:_check_rules"),
    ("templates", "tix.config:_check_templates"),
    ("agent mail", "tix.outbox.agentmail:check_template"),
    ("reports", "tix.config:_check_reports"),
    ("environment variables and files", "tix.config:check_secrets"),
)


def check_store(store) -> list[Problem]:
    """Every problem `tix config check` finds, each once, as `file:line: message`.

    First tix.yaml (every section); when it has problems, those alone (the other checks read
    the store's files against it: an unknown team in rules/ may only mean a broken teams:).
    Then, each on its own (one that raises is a problem too, the others still run): calendars
    and SLA policies with their references to teams and agents, the business calendar of the
    rules, every rule file, every template (compiled; those whose context tix knows rendered
    with a sample, the agent mail's too when an agent has `mail_client`), every report file,
    and every environment variable and file the configuration names (`*_env`, `*_file`,
    `ca_file`, maildir/mbox paths, `env:VAR` webhooks).
    """
    try:
        cfg = load(store.root / CONFIG_NAME, validate_sections=True)
    except ConfigError as exc:
        return list(exc.problems)
    store.set_config(cfg)
    problems: list[Problem] = []
    for what, target in STORE_CHECKS:
        module, func = target.split(":")
        try:
            problems += getattr(importlib.import_module(module), func)(store)
        except ConfigError as exc:
            problems += exc.problems
        except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others' problems
            problems.append(Problem(str(store.root), None, f"{what}: the check itself failed: "
                                                           f"{type(exc).__name__}: {exc}"))
    seen: set[str] = set()
    return [p for p in problems if not (str(p) in seen or seen.add(str(p)))]


def _check_sla(store) -> list[Problem]:
    """Policies against the calendars, teams and agents they name (as `tix escalate` loads them)."""
    from tix.sla.calendar import parse_calendars
    from tix.sla.policy import parse_sla

    cfg, fname = store.config, str(store.root / CONFIG_NAME)
    specs, problems = parse_calendars(cfg.raw.get("calendars"), fname, cfg.setting("timezone"), cfg.setting("locale"))
    _sla, more = parse_sla(cfg.raw.get("sla"), fname, specs, cfg.teams, cfg.agents)
    return problems + more


def _check_business_calendar(store) -> list[Problem]:
    from tix.rules.site import check

    return check(store.config)


def _check_rules(store) -> list[Problem]:
    """`tix rules check`, then (when the rules are valid) every rule template rendered with samples."""
    from tix import rules
    from tix.rules.preflight import template_problems

    _count, problems = rules.check(store)
    return problems or template_problems(store)


def _check_templates(store) -> list[Problem]:
    """Every template (the store's and the examples it falls back on) compiles; SLA notifications render."""
    from tix import templates

    env = templates.environment(store)
    problems = []
    for name in sorted(env.list_templates()):
        error = templates.compile_error(env, name)
        if error:
            problems.append(Problem(*_where(error), error.split(": ", 1)[-1]))
    return problems + _sla_template_problems(store)


def _where(located: str) -> tuple[str, int | None]:
    """`templates/x.j2:3: message` -> ("templates/x.j2", 3)."""
    head = located.split(": ", 1)[0]
    name, _, line = head.rpartition(":")
    return (name, int(line)) if line.isdigit() else (head, None)


def _sla_template_problems(store) -> list[Problem]:
    """The SLA notification templates rendered as `tix escalate` renders them, with a sample ticket."""
    from types import SimpleNamespace

    from tix.sla.escalate import Planned, _Renderer
    from tix.store.fold import empty_ticket
    from tix.store.log import utcnow
    from tix.templates import TemplateFailed

    cfg = store.config
    row = empty_ticket(1042)
    row.update(subject="Pesanan INV-1001 belum sampai", status="open", priority="high",
               team=next(iter(cfg.teams), None), assignee=next(iter(cfg.agents), None), channel="whatsapp")
    now = utcnow().timestamp()
    step = SimpleNamespace(name="sample", email=[], webhook=None, describe=lambda: "notify")
    renderer = _Renderer(store, cfg.setting("timezone"), cfg.agents)
    problems = []
    for target, state in (("first_response", "warning"), ("resolution", "breached"), ("whatsapp_window", "warning")):
        p = Planned(1042, "sample", target, 0, state, f"1042:{target}:0:sample", step, due=now + 3600, used=2700,
                    target_s=3600, window_close=now + 1800, window_in=1800)
        try:
            renderer.render(p, row)
        except TemplateFailed as exc:
            problems.append(Problem(*_where(str(exc)), str(exc).split(": ", 1)[-1]))
    return problems


def _check_reports(store) -> list[Problem]:
    """Every report file of the store parses (header, parameters, sections, charts)."""
    from tix.reports.definition import parse_file

    problems = []
    for path in sorted(store.path("reports").glob("*.sql")):
        try:
            parse_file(path)
        except ConfigError as exc:
            problems += exc.problems
    return problems


SECRET_SECTIONS = ("channels", "outbound", "whatsapp", "agent_mail")


def check_secrets(store) -> list[Problem]:
    """Environment variables and files the configuration names: each must be there now.

    `*_env` names a variable that must be set and not empty; `*_file` a secret file that must
    exist and be readable by its owner only; `ca_file` a file that must exist; a maildir or
    mbox source's `path` must exist; `env:VAR` as an SLA or rule webhook needs VAR. Run it as
    the user and with the environment cron uses: a variable missing here is missing there too.
    """
    cfg, fname = store.config, str(store.root / CONFIG_NAME)
    problems: list[Problem] = []
    channels = cfg.raw.get("channels") or []
    for i, spec in enumerate(channels if isinstance(channels, list) else []):
        if isinstance(spec, dict):
            where = f"channels[{i}] ({spec.get('name') or '?'})"
            problems += _secrets_of(spec, where, fname)
            if spec.get("type") in ("maildir", "mbox") and spec.get("path"):
                problems += _exists(spec, "path", where, fname)
    for section in ("outbound", "whatsapp", "agent_mail"):
        node = cfg.raw.get(section)
        if isinstance(node, dict):
            problems += _secrets_of(node, section, fname)
    problems += _env_refs(cfg.raw.get("sla"), "sla", fname)
    return problems + _rule_env_refs(store)


def _secrets_of(node: dict, where: str, fname: str) -> list[Problem]:
    problems = []
    for key, value in node.items():
        key = str(key)
        if not value or not isinstance(value, str):
            continue
        line = node.line_of(key) if hasattr(node, "line_of") else None
        if key.endswith("_env") and not os.environ.get(value):
            problems.append(Problem(fname, line, f"{where}: {key}: environment variable {value} is not set"))
        elif key == "ca_file":
            problems += _exists(node, key, where, fname)
        elif key.endswith("_file"):
            p = Path(os.path.expanduser(value))
            if not p.is_file():
                problems.append(Problem(fname, line, f"{where}: {key}: {p} does not exist"))
            elif p.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                problems.append(Problem(fname, line, f"{where}: {key}: {p} must not be readable by others (chmod 600)"))
    return problems


def _exists(node: dict, key: str, where: str, fname: str) -> list[Problem]:
    p = Path(os.path.expanduser(str(node[key])))
    if p.exists():
        return []
    line = node.line_of(key) if hasattr(node, "line_of") else None
    return [Problem(fname, line, f"{where}: {key}: {p} does not exist")]


def _env_refs(node, where: str, fname: str, line: int | None = None) -> list[Problem]:
    """`env:VAR` values anywhere below `node` whose variable is not set."""
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _env_refs(v, where, fname, node.line_of(k)
                                                               if hasattr(node, "line_of") else line)]
    if isinstance(node, list):
        lines = getattr(node, "lines", [line] * len(node))
        return [p for v, ln in zip(node, lines, strict=False) for p in _env_refs(v, where, fname, ln)]
    if isinstance(node, str) and node.startswith("env:") and not os.environ.get(node[4:]):
        return [Problem(fname, line, f"{where}: {node}: environment variable {node[4:]} is not set")]
    return []


def _rule_env_refs(store) -> list[Problem]:
    """Rule notifications to `webhook: env:VAR` (the rules themselves are checked by _check_rules)."""
    from tix.rules.engine import load as load_rules

    try:
        ruleset = load_rules(store)
    except ConfigError:
        return []
    problems = []
    for rule in ruleset.rules:
        for action in rule.actions:
            target = str(getattr(action, "target", "") or "")
            webhook = getattr(action, "how", None) == "webhook"
            if webhook and target.startswith("env:") and not os.environ.get(target[4:]):
                problems.append(Problem(rule.file, getattr(action, "line", 0) or rule.line,
                                        f"rule {rule.name!r}: webhook {target}: environment variable "
                                        f"{target[4:]} is not set"))
    return problems
