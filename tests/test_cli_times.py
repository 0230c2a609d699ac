"""Issue 15, item 6: one rule for a time without a zone, in every option that takes a time: the
site's time zone (Asia/Jakarta here), unless the time carries an offset. The reproduction:
`tix escalate --now` read such a time as UTC while `tix rules test --at` read it as local."""
from __future__ import annotations

import json

import pytest

from .plugins.sla import jkt


def _options():
    import typer.main

    from tix.cli import app

    stack = [((), typer.main.get_command(app))]
    while stack:
        path, cmd = stack.pop()
        for name, sub in (getattr(cmd, "commands", None) or {}).items():
            stack.append(((*path, name), sub))
        for p in getattr(cmd, "params", ()):
            if p.name in ("now", "at"):
                yield " ".join(path), p


def test_every_time_option_says_how_it_reads_a_time():
    found = {(cmd, p.opts[0]): p.help for cmd, p in _options()}
    assert set(found) >= {("escalate", "--now"), ("sla", "--now"), ("notify flush", "--now"),
                          ("rules test", "--at")}
    for key, text in found.items():
        assert "in the site time zone unless it carries an offset" in text, key


def _planned(tix, now: str) -> list[dict]:
    return json.loads(tix("escalate", "--dry-run", "--now", now, "-f", "json", check=0).stdout)


@pytest.mark.parametrize("now, states", [
    ("2026-11-24T08:30", []),                      # 30 minutes into a 1 h target: running
    ("2026-11-24 08:30", []),
    ("2026-11-24T01:30Z", []),                     # the same instant, in UTC
    ("2026-11-24T08:50", ["warning"]),             # past 75 %
    ("2026-11-24T08:50+07:00", ["warning"]),
    ("2026-11-24T09:30", ["breached", "breached"]),  # the breach is recorded, and its step
])
def test_escalate_now_is_site_local(sla_store, timeline, tix, now, states):
    timeline.create(jkt(2026, 11, 24, 8, 0), priority="urgent")  # policy urgent: 1 h on a 24/7 calendar
    rows = [r for r in _planned(tix, now) if r["target"] == "first_response"]
    assert [r["state"] for r in rows] == states, rows


def test_rules_test_at_is_site_local(store, tix, tmp_path):
    msg = tmp_path / "m.json"
    msg.write_text(json.dumps({"from": "6281234567890", "text": "halo"}))
    for at in ("2026-11-24T21:00", "2026-11-24 21:00", "2026-11-24T14:00Z"):
        head = tix("rules", "test", str(msg), "--at", at, check=0).stdout.splitlines()[0]
        assert "arrived Tue 2026-11-24 21:00 WIB (outside business hours)" in head, (at, head)


def test_notify_flush_now_is_site_local(store, tix):
    assert tix("notify", "flush", "--now", "2026-11-24T09:00", check=0).returncode == 0
    bad = tix("notify", "flush", "--now", "besok")
    assert bad.returncode == 2 and bad.stderr.startswith("Error: --now: not a date and time: 'besok'")
