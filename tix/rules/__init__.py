"""Rules: classify and route tickets with the store's `rules/*.yaml` (`tix route`).

This package owns everything between "a customer wrote" and "the right person has it":
loading and validating rule files (`loader`: file:line problems with suggestions),
conditions over the message, its ticket and its contact (`conditions`, with accent- and
case-insensitive whole-word keywords and linear-time RE2 regexes in `text`), actions
(`actions`: set fields, tags, assignment, auto-replies, notifications, stop), assignment
strategies (`assign`: round robin with its position in `state/`, least loaded, skill), the
run itself (`engine.route`), and the explanations (`explain`). It depends on the business
calendar only through `site.business_hours`, on the outbox only in
`engine.Runtime.send_auto_reply` and on notifications only in `engine.Runtime.notify`.

Contract with the store: a ticket needs routing when `intake_seq > routed_seq`. Every
action is an event with actor `rule:NAME`; each routed ticket gets one `ticket.routed`
event `{upto: intake_seq, rules: [matched names]}`, so a second run does nothing. Other
event types written here: `rule.auto_reply` (`template, channel, to, queued`; the record
that enforces once-per-ticket-per-rule and the per-sender rate limit), `rule.notify` (when
no notifier is installed) and `rule.failed` (`error`).
"""
from __future__ import annotations

from pathlib import Path

from tix.errors import Problem
from tix.rules.engine import RouteResult, load, route
from tix.rules.explain import explain, parse_at, test_message

__all__ = ["RouteResult", "check", "explain", "load", "parse_at", "route", "test_message"]


def check(store) -> tuple[int, list[Problem]]:
    """Validate every rule file of the store: (number of valid rules, every problem found)."""
    from tix.rules.loader import check_rules
    from tix.rules.templates import Templates

    ruleset, problems = check_rules(Path(store.path("rules")), store.config, Templates(store.path("templates")))
    return len(ruleset), problems
