"""Loading `rules/*.yaml`: file-name order, then order within the file; every problem at once.

A rule file is a YAML list of rules (or a mapping with one key, `rules:`, holding that list)::

    - name: refund                      # required, unique across all files
      description: Refunds go to billing
      when: new                         # new (default) | reply | any
      if:                               # conditions (tix.rules.conditions); omit = always
        text: {keywords: [refund, pengembalian dana]}
      then:                             # actions (tix.rules.actions)
        - set: {category: refund, team: billing}
      stop: true                        # no further rules for this message
      enabled: true

`load_rules()` raises ConfigError listing every problem as `file:line: message`;
`check_rules()` returns the same problems without raising.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tix import yamlio
from tix.config import Config, check_keys, suggest
from tix.errors import ConfigError, Problem
from tix.rules.actions import Action, Builder, StopAction
from tix.rules.conditions import Compiler
from tix.rules.templates import Templates

RULE_KEYS = ("name", "description", "when", "if", "then", "stop", "enabled")
ALIASES = {"conditions": "if", "actions": "then"}
WHEN = ("new", "reply", "any")


@dataclass
class Rule:
    name: str
    when: str
    condition: object
    actions: list[Action]
    stop: bool = False
    description: str = ""
    file: str = ""
    line: int = 0

    def applies(self, when: str) -> bool:
        return self.when == "any" or self.when == when

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class RuleSet:
    rules: list[Rule] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    uses_contact: bool = False
    bank: object = None  # tix.rules.text.RegexBank shared by all rules
    kwbank: object = None  # tix.rules.text.KeywordBank shared by all rules
    _by_when: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rules)

    def for_when(self, when: str) -> list[Rule]:
        """The rules that apply to a new ticket or a reply, in order."""
        return self.plan(when).rules

    def plan(self, when: str) -> "Plan":
        """How to evaluate the rules for `when` quickly (computed once per rule set)."""
        plan = self._by_when.get(when)
        if plan is None:
            plan = self._by_when[when] = Plan([r for r in self.rules if r.applies(when)])
        return plan


class Plan:
    """Rules in order, split into those always evaluated and those evaluated only when
    their keyword/regex trigger fired on the message (see conditions.trigger_of)."""

    def __init__(self, rules: list[Rule]):
        from tix.rules.conditions import trigger_of

        self.rules = rules
        self.always: list[int] = []
        self.kw: dict[str, dict[int, list[int]]] = {}
        self.rx: dict[str, dict[int, list[int]]] = {}
        self.getters: dict[str, object] = {}
        for pos, rule in enumerate(rules):
            trig = trigger_of(rule.condition)
            if trig is None:
                self.always.append(pos)
                continue
            kind, fname, ids = trig
            table = (self.kw if kind == "kw" else self.rx).setdefault(fname, {})
            for i in ids:
                table.setdefault(i, []).append(pos)
            self.getters[fname] = _getter(rule.condition, fname)

    def candidates(self, ctx) -> list[Rule]:
        """The rules that may match this message, in order."""
        pos = set(self.always)
        for fname, table in self.kw.items():
            for i in ctx.kwhits(fname, self.getters[fname]):
                pos.update(table.get(i, ()))
        for fname, table in self.rx.items():
            for i in ctx.hits(fname, self.getters[fname]):
                pos.update(table.get(i, ()))
        rules = self.rules
        return [rules[p] for p in sorted(pos)]


def _getter(node, fname):
    from tix.rules.conditions import Leaf

    if isinstance(node, Leaf):
        return node.get if node.field == fname else None
    for child in getattr(node, "children", ()):
        g = _getter(child, fname)
        if g is not None:
            return g
    return None


def rule_files(rules_dir: Path) -> list[Path]:
    if not rules_dir.is_dir():
        return []
    return sorted(p for p in rules_dir.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def check_rules(rules_dir: Path, config: Config, templates: Templates) -> tuple[RuleSet, list[Problem]]:
    """Parse and validate every rule file; return what loaded and every problem found."""
    from tix.rules.text import KeywordBank, RegexBank

    problems: list[Problem] = []
    ruleset = RuleSet(files=rule_files(Path(rules_dir)), bank=RegexBank(), kwbank=KeywordBank())
    seen: dict[str, str] = {}
    for path in ruleset.files:
        fname = _display(path)
        try:
            doc = yamlio.loads(path.read_text(encoding="utf-8"), fname)
        except ConfigError as exc:
            problems += exc.problems
            continue
        except UnicodeDecodeError:
            problems.append(Problem(fname, None, "not UTF-8 text"))
            continue
        for name, line, rule in _file_rules(doc, fname, config, templates, problems, ruleset):
            if name in seen:
                problems.append(Problem(fname, line, f"duplicate rule name {name!r} (first defined at {seen[name]})"))
                continue
            seen[name] = f"{fname}:{line}"
            if rule is not None:
                ruleset.rules.append(rule)
    return ruleset, problems


def load_rules(rules_dir: Path, config: Config, templates: Templates) -> RuleSet:
    ruleset, problems = check_rules(rules_dir, config, templates)
    if problems:
        raise ConfigError(problems)
    return ruleset


def _display(path: Path) -> str:
    """`rules/10-triage.yaml` relative to the store when possible (shorter errors)."""
    try:
        return str(path.relative_to(path.parent.parent))
    except ValueError:  # pragma: no cover
        return str(path)


def _file_rules(doc, fname, config, templates, problems, ruleset) -> list[tuple]:
    """(name, line, Rule or None when it has problems or is disabled) for each rule of a file."""
    if doc is None:
        return []
    if isinstance(doc, dict) and list(doc) == ["rules"]:
        doc = doc["rules"] or []
    if not isinstance(doc, list):
        problems.append(Problem(fname, getattr(doc, "line", 1), "a rule file is a list of rules ('- name: …')"))
        return []
    out = []
    for item, line in zip(doc, doc.lines, strict=True):
        out.append(_rule(item, line, fname, config, templates, problems, ruleset))
    return [r for r in out if r is not None]


def _rule(item, line, fname, config, templates, problems, ruleset) -> tuple | None:
    if not isinstance(item, dict):
        problems.append(Problem(fname, line, f"a rule must be a mapping with name, if and then; got {item!r}"))
        return None
    before = len(problems)
    spec = {}
    problems += check_keys(item, RULE_KEYS, fname, noun="rule key", listing="keys", aliases=ALIASES)
    for key in item:
        canon = ALIASES.get(key, key)
        if canon in RULE_KEYS:
            spec[canon] = (item[key], item.line_of(key))
    name = spec.get("name", (None, line))[0]
    if not isinstance(name, (str, int)) or isinstance(name, bool) or not str(name).strip():
        problems.append(Problem(fname, line, "a rule needs a name ('name: refund')"))
        name = f"<rule at line {line}>"
    name = str(name).strip()
    when, wline = spec.get("when", ("new", line))
    if when not in WHEN:
        problems.append(Problem(fname, wline, f"rule {name!r}: when must be one of {', '.join(WHEN)}, "
                                              f"got {when!r}{suggest(str(when), WHEN)}"))
    for flag in ("stop", "enabled"):
        if flag in spec and not isinstance(spec[flag][0], bool):
            problems.append(Problem(fname, spec[flag][1], f"rule {name!r}: {flag} must be true or false"))
    compiler = Compiler(config, fname, problems, ruleset.bank, ruleset.kwbank)
    cond_node, cline = spec.get("if", (None, line))
    condition = compiler.compile(cond_node, cline)
    ruleset.uses_contact |= compiler.uses_contact
    then, tline = spec.get("then", (None, line))
    if then is None and "stop" not in spec:
        problems.append(Problem(fname, line, f"rule {name!r} has no actions ('then:')"))
    actions = Builder(config, templates, fname, problems).build(then, tline)
    if len(problems) > before or spec.get("enabled", (True,))[0] is False:
        return name, line, None
    stop = spec.get("stop", (False,))[0] is True or any(isinstance(a, StopAction) for a in actions)
    description = str(spec.get("description", ("",))[0] or "")
    return name, line, Rule(name, when, condition, [a for a in actions if not isinstance(a, StopAction)], stop,
                            description, fname, line)
