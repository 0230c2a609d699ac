"""SLA policies: which tickets a policy covers, its targets, and its escalation steps.

    sla:
      warn_at: 75%                    # a clock is `warning` from this share of its target
      whatsapp_window_warning: 1h     # warn this long before WhatsApp's 24 h window closes
      policies:                       # first match wins; a policy without `when` matches all
        - name: urgent
          when: {priority: urgent}
          calendar: always
          targets: {first_response: 1h, next_response: 1h, resolution: 8h}
          steps:
            - on: warning
              notify: {email: lead@example.co.id}
            - on: breached
              notify: {webhook: https://hooks.example.com/T0/B0, slack: true}
              raise_priority: true
              team: support
              tag: sla-breached

`when` uses the field names of rules: priority (a value, a list, or `>=high`), category,
team, channel, inbox, assignee, tag, tier (the contact's `tier` field), `fields.NAME` (a
ticket custom field) and `contact.NAME` (a contact field). All entries must hold. Policies
are matched in SQL over the `tickets` view (with values bound, never pasted), for every
open ticket in one query.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from tix.config import check_keys, suggest
from tix.durations import parse_duration
from tix.errors import Problem
from tix.model import CHANNELS, PRIORITIES, PRIORITY_RANK
from tix.yamlio import LineDict

TARGETS = ("first_response", "next_response", "resolution")
STEP_ON = ("warning", "breached", "whatsapp_window")
WHEN_FIELDS = ("priority", "category", "team", "channel", "inbox", "assignee", "tag", "tier", "status")
STEP_KEYS = ("name", "on", "targets", "notify", "raise_priority", "priority", "team", "assignee", "tag")
POLICY_KEYS = ("name", "when", "calendar", "targets", "warn_at", "steps", "description")
DEFAULT_WARN = 0.75
DEFAULT_WINDOW_WARNING = 3600.0


@dataclass
class Step:
    name: str
    on: str
    targets: tuple[str, ...] = TARGETS
    email: list[str] = field(default_factory=list)
    webhook: str | None = None
    slack: bool = False
    raise_priority: bool = False
    priority: str | None = None
    team: str | None = None
    assignee: str | None = None
    tags: list[str] = field(default_factory=list)

    def describe(self) -> str:
        parts = []
        if self.email:
            parts.append("email " + ", ".join(self.email))
        if self.webhook:
            parts.append("webhook" + (" (slack)" if self.slack else ""))
        if self.raise_priority:
            parts.append("raise priority")
        if self.priority:
            parts.append(f"priority={self.priority}")
        if self.team:
            parts.append(f"team={self.team}")
        if self.assignee:
            parts.append(f"assignee={self.assignee}")
        if self.tags:
            parts.append("tag " + ",".join(self.tags))
        return "; ".join(parts) or "record only"


@dataclass
class Policy:
    name: str
    when: dict = field(default_factory=dict)
    calendar: str | None = None
    targets: dict[str, float] = field(default_factory=dict)  # target -> business seconds
    warn_at: float = DEFAULT_WARN
    steps: list[Step] = field(default_factory=list)
    line: int | None = None


@dataclass
class SlaConfig:
    policies: list[Policy] = field(default_factory=list)
    warn_at: float = DEFAULT_WARN
    window_warning: float = DEFAULT_WINDOW_WARNING

    def by_name(self, name: str) -> Policy | None:
        return next((p for p in self.policies if p.name == name), None)


def _share(value) -> float:
    if isinstance(value, str) and value.strip().endswith("%"):
        v = float(value.strip()[:-1]) / 100
    else:
        v = float(value)
    if not 0 < v < 1:
        raise ValueError(value)
    return v


def parse_sla(node, fname: str, calendars=(), teams=(), agents=()) -> tuple[SlaConfig, list[Problem]]:
    """The `sla:` section -> SlaConfig and every problem found, each with file:line."""
    problems: list[Problem] = []
    out = SlaConfig()
    if node is None:
        return out, problems
    line = getattr(node, "line", None)
    if not isinstance(node, dict):
        return out, [Problem(fname, line, "sla must be a mapping with `policies:`")]
    lines = getattr(node, "lines", {})
    problems += check_keys(node, ("warn_at", "whatsapp_window_warning", "policies"), fname, "sla")
    if "warn_at" in node:
        try:
            out.warn_at = _share(node["warn_at"])
        except (TypeError, ValueError):
            problems.append(Problem(fname, lines.get("warn_at"),
                                    f"sla: warn_at must be a share like 75% or 0.75, got {node['warn_at']!r}"))
    if "whatsapp_window_warning" in node:
        try:
            out.window_warning = _positive(node["whatsapp_window_warning"])
        except ValueError as exc:
            problems.append(Problem(fname, lines.get("whatsapp_window_warning"),
                                    f"sla: whatsapp_window_warning is {exc}"))
    pols = node.get("policies") or []
    if not isinstance(pols, list):
        problems.append(Problem(fname, lines.get("policies", line), "sla: policies must be a list"))
        return out, problems
    seen: set[str] = set()
    plines = getattr(pols, "lines", [])
    for i, pnode in enumerate(pols):
        pline = plines[i] if i < len(plines) else line
        pol = _policy(pnode, fname, pline, out.warn_at, set(calendars), set(teams), set(agents), problems)
        if pol is None:
            continue
        if pol.name in seen:
            problems.append(Problem(fname, pline, f"sla: policy {pol.name!r} is defined twice"))
        seen.add(pol.name)
        out.policies.append(pol)
    return out, problems


def _policy(node, fname, pline, warn, calendars, teams, agents, problems) -> Policy | None:
    if not isinstance(node, dict):
        problems.append(Problem(fname, pline, "sla: each policy must be a mapping with name, calendar, targets"))
        return None
    lines = getattr(node, "lines", {})
    name = str(node.get("name") or "")
    if not name:
        problems.append(Problem(fname, pline, "sla: a policy needs a name"))
        name = f"policy{pline}"
    where = f"sla policy {name!r}"
    problems += check_keys(node, POLICY_KEYS, fname, where, line=pline)
    pol = Policy(name, line=pline, warn_at=warn)
    cal = node.get("calendar")
    if cal is not None:
        if str(cal) not in calendars:
            problems.append(Problem(fname, lines.get("calendar", pline),
                                    f"{where}: unknown calendar {cal!r}{suggest(cal, calendars)}; "
                                    f"calendars: {', '.join(sorted(calendars)) or '(none defined)'}"))
        pol.calendar = str(cal)
    if "warn_at" in node:
        try:
            pol.warn_at = _share(node["warn_at"])
        except (TypeError, ValueError):
            problems.append(Problem(fname, lines.get("warn_at", pline),
                                    f"{where}: warn_at must be a share like 75% or 0.75"))
    targets = node.get("targets") or {}
    tlines = getattr(targets, "lines", {})
    if not isinstance(targets, dict) or not targets:
        problems.append(Problem(fname, lines.get("targets", pline),
                                f"{where}: targets must map first_response/next_response/resolution to durations"))
        targets = {}
    for tname, value in targets.items():
        tl = tlines.get(tname, pline)
        if tname not in TARGETS:
            problems.append(Problem(fname, tl, f"{where}: unknown target {tname!r}{suggest(tname, TARGETS)}; "
                                               f"targets: {', '.join(TARGETS)}"))
            continue
        try:
            pol.targets[tname] = _positive(value)
        except ValueError as exc:
            problems.append(Problem(fname, tl, f"{where}: target {tname} is {exc}"))
    pol.when = _when(node.get("when") or {}, fname, lines.get("when", pline), where, teams, problems)
    steps = node.get("steps") or []
    if not isinstance(steps, list):
        problems.append(Problem(fname, lines.get("steps", pline), f"{where}: steps must be a list"))
        steps = []
    slines = getattr(steps, "lines", [])
    names: set[str] = set()
    for j, snode in enumerate(steps):
        sl = slines[j] if j < len(slines) else pline
        step = _step(snode, j, fname, sl, where, teams, agents, problems)
        if step is None:
            continue
        if step.name in names:
            problems.append(Problem(fname, sl, f"{where}: step name {step.name!r} is used twice"))
        names.add(step.name)
        pol.steps.append(step)
    return pol


def _positive(value) -> float:
    """A duration of more than nothing, in seconds (tix.durations; ValueError otherwise)."""
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"not a duration of more than 0: {value!r}")
    return seconds


def _when(node, fname, line, where, teams, problems) -> dict:
    if not isinstance(node, dict):
        problems.append(Problem(fname, line, f"{where}: when must be a mapping of field: value"))
        return {}
    out = {}
    lines = getattr(node, "lines", {})
    for key, value in node.items():
        k = str(key)
        k = k[7:] if k.startswith("ticket.") else k
        kl = lines.get(key, line)
        if k not in WHEN_FIELDS and not k.startswith(("fields.", "contact.")):
            problems.append(Problem(fname, kl, f"{where}: unknown condition field {key!r}{suggest(k, WHEN_FIELDS)}; "
                                               f"fields: {', '.join(WHEN_FIELDS)}, fields.NAME, contact.NAME"))
            continue
        values = [str(v) if v is not None else None for v in (value if isinstance(value, list) else [value])]
        if k == "priority":
            try:
                values = _priorities(values)
            except ValueError as exc:
                problems.append(Problem(fname, kl, f"{where}: {exc}"))
                continue
        if k == "channel":
            bad = [v for v in values if v not in CHANNELS]
            if bad:
                problems.append(Problem(fname, kl,
                                        f"{where}: unknown channel {bad[0]!r}; channels: {', '.join(CHANNELS)}"))
        if k == "team" and teams:
            bad = [v for v in values if v is not None and v not in teams]
            if bad:
                problems.append(Problem(fname, kl, f"{where}: unknown team {bad[0]!r}{suggest(bad[0], teams)}"))
        out[k] = values
    return out


def _priorities(values: list) -> list[str]:
    out: list[str] = []
    for v in values:
        s = str(v).replace(" ", "").lower()
        for op in (">=", "<=", ">", "<"):
            if s.startswith(op):
                base = s[len(op):]
                if base not in PRIORITY_RANK:
                    raise ValueError(f"unknown priority {base!r}; priorities: {', '.join(PRIORITIES)}")
                r = PRIORITY_RANK[base]
                keep = {">=": lambda x, r=r: x >= r, "<=": lambda x, r=r: x <= r,
                        ">": lambda x, r=r: x > r, "<": lambda x, r=r: x < r}[op]
                out += [p for p in PRIORITIES if keep(PRIORITY_RANK[p])]
                break
        else:
            if s not in PRIORITY_RANK:
                raise ValueError(f"unknown priority {v!r}{suggest(s, PRIORITIES)}; priorities: {', '.join(PRIORITIES)}")
            out.append(s)
    return out


def _step(node, j, fname, sl, where, teams, agents, problems) -> Step | None:
    if not isinstance(node, dict):
        problems.append(Problem(fname, sl,
                                f"{where}: each step must be a mapping with on: warning|breached|whatsapp_window"))
        return None
    lines = dict(getattr(node, "lines", {}))
    if True in node:  # YAML 1.1 reads a bare `on:` key as the boolean true
        lines["on"] = lines.get(True, sl)
        renamed = LineDict((("on" if k is True else k), v) for k, v in node.items())
        renamed.line, renamed.lines = getattr(node, "line", sl), lines
        node = renamed
    problems += check_keys(node, STEP_KEYS, fname, where, line=sl, noun="step key")
    on = str(node.get("on") or "")
    if on not in STEP_ON:
        problems.append(Problem(fname, lines.get("on", sl),
                                f"{where}: step `on` must be one of {', '.join(STEP_ON)}, got {on!r}"))
        return None
    step = Step(str(node.get("name") or f"{on}-{j + 1}"), on)
    if node.get("targets") is not None:
        ts = node["targets"] if isinstance(node["targets"], list) else [node["targets"]]
        bad = [t for t in ts if t not in TARGETS]
        if bad:
            problems.append(Problem(fname, lines.get("targets", sl),
                                    f"{where}: step targets: unknown target {bad[0]!r}"))
        step.targets = tuple(str(t) for t in ts)
    notify = node.get("notify") or {}
    if notify:
        if not isinstance(notify, dict) or not (notify.get("email") or notify.get("webhook")):
            problems.append(Problem(fname, lines.get("notify", sl),
                                    f"{where}: notify needs email: ADDRESS(ES) or webhook: URL"))
        else:
            emails = notify.get("email") or []
            step.email = [str(e) for e in (emails if isinstance(emails, list) else [emails])]
            for e in step.email:
                if "@" not in e and e != "assignee":
                    problems.append(Problem(fname, lines.get("notify", sl), f"{where}: not an email address: {e!r}"))
            if notify.get("webhook"):
                url = str(notify["webhook"])
                from tix.outbox.webhook import target_problem

                problem = target_problem(url)
                if problem:
                    problems.append(Problem(fname, lines.get("notify", sl), f"{where}: webhook {problem}"))
                step.webhook = url
                step.slack = bool(notify.get("slack", False))
    step.raise_priority = bool(node.get("raise_priority", False))
    if node.get("priority") is not None:
        p = str(node["priority"]).lower()
        if p not in PRIORITIES:
            problems.append(Problem(fname, lines.get("priority", sl), f"{where}: unknown priority {p!r}"))
        step.priority = p
    if node.get("team") is not None:
        t = str(node["team"])
        if teams and t not in teams:
            problems.append(Problem(fname, lines.get("team", sl), f"{where}: unknown team {t!r}{suggest(t, teams)}"))
        step.team = t
    if node.get("assignee") is not None:
        a = str(node["assignee"])
        if agents and a not in agents:
            problems.append(Problem(fname, lines.get("assignee", sl),
                                    f"{where}: unknown agent {a!r}{suggest(a, agents)}"))
        step.assignee = a
    if node.get("tag") is not None:
        tags = node["tag"] if isinstance(node["tag"], list) else [node["tag"]]
        step.tags = [str(t).strip().lower() for t in tags]
    return step


def validate_section(node, path) -> list[Problem]:
    """`sla:` validator for `tix config check`: also checks calendar, team and agent names."""
    from tix import yamlio

    raw = yamlio.load(path) or {}
    cals = raw.get("calendars") or {}
    return parse_sla(node, str(path), cals if isinstance(cals, dict) else {},
                     raw.get("teams") or {}, raw.get("agents") or {})[1]


# -- matching ------------------------------------------------------------------------------------
def policy_case_sql(policies: list[Policy]) -> tuple[str, list]:
    """`CASE WHEN … THEN 0 … ELSE -1 END` choosing each ticket's policy index, and its params.

    Over `tickets t LEFT JOIN contacts c`. Values are bound as parameters.
    """
    if not policies:
        return "-1", []
    parts, params = [], []
    for i, pol in enumerate(policies):
        conds = []
        for key, values in pol.when.items():
            sql, p = _cond(key, values)
            conds.append(sql)
            params += p
        parts.append(f"WHEN {' AND '.join(conds) or 'TRUE'} THEN {i}")
    return "CASE " + " ".join(parts) + " ELSE -1 END", params


def _in(expr: str, values: list, expr_params: tuple = ()) -> tuple[str, list]:
    """`lower(EXPR) IN (?, …) OR EXPR IS NULL`; `expr_params` bind EXPR's own placeholders."""
    present = [v for v in values if v is not None]
    clauses, params = [], []
    if present:
        clauses.append(f"lower({expr}) IN ({', '.join('?' for _ in present)})")
        params += [*expr_params, *(v.lower() for v in present)]
    if len(present) != len(values):
        clauses.append(f"{expr} IS NULL")
        params += list(expr_params)
    return "(" + " OR ".join(clauses) + ")", params


def _cond(key: str, values: list) -> tuple[str, list]:
    if key == "tag":
        return "list_has_any(t.tags, ?::VARCHAR[])", [[str(v).lower() for v in values if v]]
    if key == "tier":
        return _in("json_extract_string(c.fields, '$.tier')", values)
    if key.startswith(("fields.", "contact.")):
        col, name = ("t.fields", key[7:]) if key.startswith("fields.") else ("c.fields", key[8:])
        path = '$."' + name.replace('"', "") + '"'
        return _in(f"json_extract_string({col}, ?)", values, (path,))
    return _in(f"t.{key}", values)
