"""One check of config keys (tix.config.check_keys): every validator reports an unknown key the same
way, `FILE:LINE: WHERE: unknown NOUN 'hots' (did you mean 'host'?)`, at the key's own line."""
from __future__ import annotations

from pathlib import Path

import pytest

from tix import yamlio
from tix.channels.mail.smtp import validate as validate_outbound
from tix.channels.whatsapp import validate_config as validate_whatsapp
from tix.config import check_keys
from tix.errors import ConfigError, Problem
from tix.reports.definition import parse_file
from tix.sla.calendar import parse_calendar
from tix.sla.policy import parse_sla


def _lines(problems) -> list[str]:
    return [str(p) for p in problems]


def test_check_keys_declaration():
    node = yamlio.loads("host: x\nhots: y\nport: '25'\ntimeout: 2\nold: 1\n", "f.yaml")
    schema = {"host": str, "port": int, "timeout": (int, float)}
    assert check_keys(node, schema, "f.yaml", "outbound", types=True, aliases=("old",)) == [
        Problem("f.yaml", 2, "outbound: unknown key 'hots' (did you mean 'host'?)"),
        Problem("f.yaml", 3, "outbound: port must be int, got '25'"),
    ]
    assert _lines(check_keys(["iff"], ("if", "then"), "r.yaml", line=4, noun="rule key", listing="keys")) == [
        "r.yaml:4: unknown rule key 'iff' (did you mean 'if'?); keys: if, then"]
    assert check_keys({"on": True}, {"on": bool}, "f", types=True) == []
    assert _lines(check_keys({"n": True}, {"n": int}, "f", types=True)) == ["f: n must be int, got True"]


def test_outbound_and_whatsapp():
    node = yamlio.loads("host: smtp.example\nhots: x\nport: '587'\nfrom: a@example.co.id\n", "tix.yaml")
    assert _lines(validate_outbound(node, "tix.yaml")) == [
        "tix.yaml:2: outbound: unknown key 'hots' (did you mean 'host'?)",
        "tix.yaml:3: outbound: port must be int, got '587'",
    ]
    node = yamlio.loads("numbers:\n  - phone_number_id: '1'\n    numbr: '62811'\n", "tix.yaml")
    assert _lines(validate_whatsapp(node, "tix.yaml")) == [
        "tix.yaml:3: whatsapp.numbers[0]: unknown key 'numbr' (did you mean 'number'?)"]


def test_calendar_policy_and_step_keys():
    node = yamlio.loads("timezon: Asia/Jakarta\nhours: 24/7\n", "tix.yaml")
    problems: list = []
    parse_calendar("a", node, "tix.yaml", problems=problems)
    assert _lines(problems) == ["tix.yaml:1: calendar 'a': unknown key 'timezon' (did you mean 'timezone'?); "
                                "keys: timezone, hours, holidays, dates, description"]
    node = yamlio.loads("""
warn_at: 75%
polices: []
policies:
  - name: p
    targets: {first_response: 1h}
    calender: office
    steps:
      - on: breached
        raise_prority: true
""", "tix.yaml")
    _, problems = parse_sla(node, "tix.yaml", calendars=("office",))
    assert _lines(problems) == [
        "tix.yaml:3: sla: unknown key 'polices' (did you mean 'policies'?)",
        "tix.yaml:7: sla policy 'p': unknown key 'calender' (did you mean 'calendar'?)",
        "tix.yaml:10: sla policy 'p': unknown step key 'raise_prority' (did you mean 'raise_priority'?)",
    ]


def test_rule_action_option_and_report_section_key(rk, tmp_path):
    from tix import rules

    rk.rules("""
        - name: a
          then:
            - assign: {team: billing, stratgy: round_robin}
        """)
    problems = [p for p in rules.check(rk.store)[1] if "50-test" in p.file]
    assert [f"{Path(p.file).name}:{p.line}: {p.message}" for p in problems] == [
        "50-test.yaml:3: unknown assign option 'stratgy' (did you mean 'strategy'?); options: agent, team, strategy, "
        "skills, reassign"]
    sql = tmp_path / "r.sql"
    sql.write_text("-- title: R\n\n-- section: s\n-- chrt: bar\nSELECT 1 AS n;\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        parse_file(Path(sql))
    assert f"{sql}:4: unknown section key 'chrt' (did you mean 'chart'?)" in _lines(info.value.problems)
