"""Rule actions: validated when the rules load, applied to one ticket at a time.

In YAML, `then:` is a list; each item is one action::

    then:
      - set: {category: refund, priority: high, order_id: "?"}   # any field `tix set` accepts
      - priority: urgent                    # shorthand for set (category, priority, team, status)
      - tag: [refund]                       # add tags;  untag: [baru] removes them
      - assign: {team: billing, strategy: round_robin}   # or least_loaded, skill; or assign: ani
      - auto_reply: auto_reply_received.txt.j2           # a template in the store's templates/
      - notify: {email: budi, subject: "VIP ticket {{ ticket.ref }}"}  # or webhook: URL
      - stop                                # no further rules for this message

Each applied action emits its events with actor `rule:NAME`; `apply()` returns a line
saying what it did (or why it did nothing), which `--dry-run`, `-v` and `--explain` show.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from tix.config import Config, check_keys, suggest
from tix.errors import Problem, UsageError
from tix.rules.assign import STRATEGIES

ACTIONS = ("set", "tag", "untag", "assign", "auto_reply", "notify", "stop",
           "category", "priority", "team", "status")
SHORTHAND = ("category", "priority", "team", "status")

# Senders that must never get an auto-reply (RFC 3834 section 2 and common practice).
NO_REPLY_SENDER = re.compile(
    r"^(?:no[-_.]?reply|do[-_.]?not[-_.]?reply|mailer[-_.]?daemon|postmaster|bounces?|"
    r"notifications?|listserv|majordomo|owner-[^@]*|[^@]*-(?:request|bounces?|owner))(?:[+@]|$)", re.I)
DEFAULT_MAX_PER_SENDER = 3
DEFAULT_PER_HOURS = 24


class Action:
    kind = ""
    line = 0

    def describe(self) -> str:
        return self.kind

    def apply(self, rt, rule, ctx) -> str | None:
        raise NotImplementedError


@dataclass
class SetAction(Action):
    changes: dict
    line: int = 0
    kind = "set"

    def describe(self) -> str:
        return "set " + ", ".join(f"{k}={v}" for k, v in self.changes.items())

    def apply(self, rt, rule, ctx) -> str | None:
        from tix.tickets import set_fields

        row = ctx.ticket
        ev = set_fields(rt.as_rule(rule), row, self.changes, why=rt.why(rule))
        if ev is None:
            return None
        custom = {k[7:]: v for k, v in ev["data"]["set"].items() if k.startswith("fields.")}
        if custom:
            fields = ctx.ticket_fields()
            fields.update(custom)
            row["fields"] = fields_json(fields)
        if "assignee" in ev["data"]["set"]:
            rt.assigner.assigned(ev["data"]["old"].get("assignee"), ev["data"]["set"]["assignee"])
        return "set " + ", ".join(f"{k}={v}" for k, v in ev["data"]["set"].items())


def fields_json(fields: dict) -> str:
    import orjson

    return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS).decode()


@dataclass
class TagAction(Action):
    add: list
    remove: list
    line: int = 0
    kind = "tag"

    def describe(self) -> str:
        parts = [f"+{t}" for t in self.add] + [f"-{t}" for t in self.remove]
        return "tag " + " ".join(parts)

    def apply(self, rt, rule, ctx) -> str | None:
        from tix.tickets import tag

        ev = tag(rt.as_rule(rule), ctx.ticket, self.add, self.remove, why=rt.why(rule))
        if ev is None:
            return None
        data = ev["data"]
        return "tag " + " ".join([f"+{t}" for t in data.get("add", [])] + [f"-{t}" for t in data.get("remove", [])])


@dataclass
class AssignAction(Action):
    agent: str | None = None
    team: str | None = None
    strategy: str | None = None
    skills: list = field(default_factory=list)
    reassign: bool = False
    line: int = 0
    kind = "assign"

    def describe(self) -> str:
        if self.agent:
            return f"assign to {self.agent}"
        where = f"team {self.team}" if self.team else "all agents"
        return f"assign by {self.strategy} in {where}"

    def apply(self, rt, rule, ctx) -> str | None:
        row = ctx.ticket
        current = row.get("assignee")
        if current and not self.reassign:
            changes = {"team": self.team} if self.team and row.get("team") != self.team else {}
            if changes:
                SetAction(changes).apply(rt, rule, ctx)
            return f"kept assignee {current} (reassign: false)"
        agent = self.agent or rt.assigner.pick(self.strategy, self.team, category=row.get("category"),
                                               language=ctx.msg.get("language"), skills=self.skills)
        if agent is None:
            return f"not assigned: no available agent in team {self.team}" if self.team else \
                "not assigned: no available agent"
        changes = {"assignee": agent}
        if self.team:
            changes["team"] = self.team
        done = SetAction(changes).apply(rt, rule, ctx)
        how = f" ({self.strategy.replace('_', ' ')})" if self.strategy else ""
        return f"assigned to {agent}{how}" if done else f"already assigned to {agent}"


@dataclass
class AutoReplyAction(Action):
    template: str
    subject: str | None = None
    max_per_sender: int = DEFAULT_MAX_PER_SENDER
    per_hours: float = DEFAULT_PER_HOURS
    line: int = 0
    kind = "auto_reply"

    def describe(self) -> str:
        return f"auto-reply with {self.template}"

    def blocked(self, rt, rule, ctx) -> str | None:
        """Why this message must not get an auto-reply (None: it may)."""
        msg = ctx.msg
        sender = str(msg.get("from") or "").strip().lower()
        if msg.get("auto"):
            return f"message is auto-generated ({msg.get('auto_reason') or 'auto'})"
        if not sender:
            return "message has no sender"
        if NO_REPLY_SENDER.match(sender):
            return f"sender {sender} is a no-reply or bulk address"
        if sender in rt.own_addresses or sender == str(msg.get("inbox") or "").strip().lower():
            return f"sender {sender} is one of our own addresses"
        channel = msg.get("channel") or ctx.ticket.get("channel")
        if channel not in ("email", "whatsapp"):
            return f"channel {channel} cannot send replies"
        if rt.replies.already(ctx.ticket["number"], rule.name):
            return f"rule {rule.name} already auto-replied on this ticket"
        if rt.replies.recent(sender, self.per_hours, rt.now) >= self.max_per_sender:
            return f"rate limit: {self.max_per_sender} auto-replies to {sender} in {self.per_hours:g}h"
        return None

    def apply(self, rt, rule, ctx) -> str | None:
        why = rt.history(ctx)
        if why:
            rt.skipped["auto_reply"] += 1
            return f"no auto-reply: {why}"
        why = self.blocked(rt, rule, ctx)
        if why:
            return f"no auto-reply: {why}"
        sender = str(ctx.msg.get("from")).strip().lower()
        channel = ctx.msg.get("channel") or ctx.ticket.get("channel") or "email"
        text = rt.templates.render(self.template, rt.template_context(rule, ctx))
        subject = rt.templates.render_string(self.subject, rt.template_context(rule, ctx)) if self.subject else None
        state = rt.send_auto_reply(rule, ctx, channel, text, self.template, subject)
        if state == "capped":
            return f"no auto-reply: the outbox's auto-reply cap for {sender} is reached"
        data = {"template": self.template, "channel": channel, "to": sender, "queued": state == "queued"}
        if subject:
            data["subject"] = subject
        rt.as_rule(rule).emit("rule.auto_reply", ticket=ctx.ticket["number"], data=data, why=rt.why(rule))
        rt.replies.add(ctx.ticket["number"], rule.name, sender, rt.now)
        shown = "queued" if state == "queued" else "recorded (no outbox)"
        return f"auto-reply {self.template} to {sender} {shown}"


@dataclass
class NotifyAction(Action):
    how: str  # email | webhook
    target: str
    subject: str
    body: str | None = None
    template: str | None = None
    line: int = 0
    kind = "notify"

    def describe(self) -> str:
        return f"notify {self.how} {_shown(self.target)}"

    def apply(self, rt, rule, ctx) -> str | None:
        why = rt.history(ctx)
        if why:
            rt.skipped["notification"] += 1
            return f"no notification: {why}"
        target = self.target
        if self.how == "email":
            target = rt.resolve_email(target, ctx)
            if not target:
                return f"no notification: {self.target} has no email address"
        tctx = rt.template_context(rule, ctx)
        subject = rt.templates.render_string(self.subject, tctx)
        if self.template:
            body = rt.templates.render(self.template, tctx)
        else:
            body = rt.templates.render_string(self.body or self.subject, tctx)
        key = f"rule:{rule.name}:{ctx.ticket['number']}:{ctx.seq}"
        queued = rt.notify(rule, ctx, self.how, target, subject, body, key)
        return f"notify {self.how} {_shown(target)} {'queued' if queued else 'recorded (no notifier yet)'}"


def _shown(target: str) -> str:
    """A webhook URL often holds a token: show only its host."""
    if target.startswith(("http://", "https://")):
        from urllib.parse import urlsplit

        return f"{urlsplit(target).scheme}://{urlsplit(target).hostname}/…"
    return target


@dataclass
class StopAction(Action):
    line: int = 0
    kind = "stop"

    def apply(self, rt, rule, ctx) -> str | None:
        return None


# -- building from YAML --------------------------------------------------------------------
class Builder:
    """Validates `then:` items against tix.yaml and the templates; collects problems."""

    def __init__(self, config: Config, templates, fname: str, problems: list[Problem]):
        self.config, self.templates, self.fname, self.problems = config, templates, fname, problems

    def problem(self, line, message) -> None:
        self.problems.append(Problem(self.fname, line, message))

    def build(self, items, line) -> list[Action]:
        if items is None:
            return []
        if not isinstance(items, list):
            items = [items]
        out = []
        lines = getattr(items, "lines", [line] * len(items))
        for item, iline in zip(items, lines, strict=True):
            action = self.one(item, iline)
            if action is not None:
                action.line = iline
                out.append(action)
        return out

    def one(self, item, line) -> Action | None:
        if item == "stop":
            return StopAction()
        if isinstance(item, str):
            self.problem(line, f"unknown action {item!r}{suggest(item, ACTIONS)}; actions: {', '.join(ACTIONS)}")
            return None
        if not isinstance(item, dict) or len(item) != 1:
            self.problem(line, "each action is a mapping with one key, e.g. '- set: {priority: high}'; "
                               f"actions: {', '.join(ACTIONS)}")
            return None
        (kind, value), = item.items()
        kind = str(kind)
        if kind in SHORTHAND:
            return self._set({kind: value}, line)
        method = getattr(self, f"_{kind}", None) if kind in ACTIONS else None
        if method is None:
            self.problem(line, f"unknown action {kind!r}{suggest(kind, ACTIONS)}; actions: {', '.join(ACTIONS)}")
            return None
        return method(value, line)

    def _stop(self, value, line):
        if value is not True:
            self.problem(line, "write '- stop' (or 'stop: true' on the rule)")
            return None
        return StopAction()

    def _set(self, value, line):
        from tix.tickets import coerce_value, normalize_field

        if not isinstance(value, dict) or not value:
            self.problem(line, "set takes a mapping of field: value, e.g. {category: refund, priority: high}")
            return None
        changes = {}
        for name, v in value.items():
            vline = value.line_of(name) if hasattr(value, "line_of") else line
            try:
                key = normalize_field(self.config, str(name))
                changes[key] = coerce_value(self.config, key, v)
            except UsageError as exc:
                self.problem(vline, str(exc))
        return SetAction(changes) if changes else None

    def _tag(self, value, line, remove=False):
        from tix.tickets import clean_tags

        tags = value if isinstance(value, list) else [value]
        try:
            clean = clean_tags(tags)
        except UsageError as exc:
            self.problem(line, str(exc))
            return None
        if not clean:
            self.problem(line, "tag needs at least one tag")
            return None
        return TagAction([], clean) if remove else TagAction(clean, [])

    def _untag(self, value, line):
        return self._tag(value, line, remove=True)

    def _keys(self, value: dict, allowed, what, line) -> bool:
        found = check_keys(value, allowed, self.fname, line=line, noun=f"{what} option", listing="options")
        self.problems += found
        return not found

    def _assign(self, value, line):
        if isinstance(value, str):
            value = {"agent": value}
        if not isinstance(value, dict):
            self.problem(line, "assign takes an agent name or {team: T, strategy: round_robin|least_loaded|skill}")
            return None
        if not self._keys(value, ("agent", "team", "strategy", "skills", "reassign"), "assign", line):
            return None
        agent, team, strategy = value.get("agent"), value.get("team"), value.get("strategy")
        ok = True
        if agent is not None and str(agent) not in self.config.agents:
            ok = self._bad(line, self._unknown("agent", agent, self.config.agents))
        if team is not None and str(team) not in self.config.teams:
            ok = self._bad(line, self._unknown("team", team, self.config.teams))
        if agent and strategy:
            ok = self._bad(line, "assign takes either agent or strategy, not both")
        if not agent:
            strategy = strategy or "round_robin"
            if strategy not in STRATEGIES:
                ok = self._bad(line, f"unknown assign strategy {strategy!r}{suggest(strategy, STRATEGIES)}; "
                                     f"strategies: {', '.join(STRATEGIES)}")
            elif ok and not any(team is None or team in a.teams for a in self.config.agents.values()):
                ok = self._bad(line, f"team {team!r} has no agents in tix.yaml")
        skills = value.get("skills") or []
        if not isinstance(skills, list):
            ok = self._bad(line, "assign skills must be a list")
        reassign = value.get("reassign", False)
        if not isinstance(reassign, bool):
            ok = self._bad(line, "assign reassign must be true or false")
        if not ok:
            return None
        return AssignAction(agent=str(agent) if agent else None, team=str(team) if team else None,
                            strategy=None if agent else strategy, skills=[str(s) for s in skills],
                            reassign=reassign)

    def _unknown(self, what, name, known) -> str:
        return (f"unknown {what} {name!r}{suggest(name, known)}; "
                f"{what}s: {', '.join(sorted(known)) or '(none declared in tix.yaml)'}")

    def _bad(self, line, message) -> bool:
        self.problem(line, message)
        return False

    def _auto_reply(self, value, line):
        if isinstance(value, str):
            value = {"template": value}
        if not isinstance(value, dict) or not value.get("template"):
            self.problem(line, "auto_reply takes a template name from templates/, e.g. auto_reply_received.txt.j2")
            return None
        if not self._keys(value, ("template", "subject", "max_per_sender", "per_hours"), "auto_reply", line):
            return None
        ok = self._template(str(value["template"]), line)
        if value.get("subject") is not None:
            ok = self._inline(str(value["subject"]), line, "auto_reply subject") and ok
        limit, hours = value.get("max_per_sender", DEFAULT_MAX_PER_SENDER), value.get("per_hours", DEFAULT_PER_HOURS)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            ok = self._bad(line, f"auto_reply max_per_sender must be a whole number >= 1, got {limit!r}")
        if isinstance(hours, bool) or not isinstance(hours, (int, float)) or hours <= 0:
            ok = self._bad(line, f"auto_reply per_hours must be a number of hours > 0, got {hours!r}")
        if not ok:
            return None
        return AutoReplyAction(str(value["template"]), value.get("subject"), limit, float(hours))

    def _notify(self, value, line):
        if not isinstance(value, dict):
            self.problem(line, "notify takes {email: ADDRESS|AGENT|assignee, subject: …} or {webhook: URL, …}")
            return None
        if not self._keys(value, ("email", "webhook", "subject", "body", "template"), "notify", line):
            return None
        hows = [k for k in ("email", "webhook") if value.get(k)]
        if len(hows) != 1:
            self.problem(line, "notify needs exactly one of email: or webhook:")
            return None
        how, target = hows[0], str(value[hows[0]])
        ok = True
        if how == "webhook":
            from tix.outbox.webhook import target_problem

            problem = target_problem(target)
            if problem:
                ok = self._bad(line, f"notify webhook {problem}")
        if how == "email" and "@" not in target and target != "assignee" and target not in self.config.agents:
            ok = self._bad(line, f"notify email must be an address, an agent or 'assignee', got {target!r}"
                                 f"{suggest(target, self.config.agents)}")
        subject = str(value.get("subject") or "Ticket {{ ticket.ref }}: {{ ticket.subject }}")
        ok = self._inline(subject, line, "notify subject") and ok
        if value.get("body") is not None:
            ok = self._inline(str(value["body"]), line, "notify body") and ok
        if value.get("template") is not None:
            ok = self._template(str(value["template"]), line) and ok
        if not ok:
            return None
        return NotifyAction(how, target, subject, value.get("body"), value.get("template"))

    def _template(self, name: str, line) -> bool:
        problem = self.templates.check(name)
        if problem:
            self.problem(line, problem)
            return False
        return True

    def _inline(self, text: str, line, what) -> bool:
        problem = self.templates.check_string(text)
        if problem:
            self.problem(line, f"{what}: {problem}")
            return False
        return True
