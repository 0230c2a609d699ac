"""Issue 15, item 3: which calendar is "business hours" is explicit and documented, and the
example configuration's after-hours auto-replies fire.

The reproduction: `business_hours` used the calendar named `default`, else the first one
declared; the example tix.yaml declares `always` (24/7, for urgent SLAs) first, so with its
calendars in use it was never after hours. The auto-reply texts also hard-coded
"Senin-Jumat 08.00-17.00", which disagrees with the example's office calendar.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest

from tix import rules
from tix.rules.site import business_hours, check
from tix.store import Store

from .plugins.rules import RulesKit

TUESDAY_21_WIB = datetime(2026, 11, 24, 14, 0, tzinfo=timezone.utc)
TUESDAY_10_WIB = datetime(2026, 11, 24, 3, 0, tzinfo=timezone.utc)


def uncomment_example(store, section: str, settings: str = "") -> None:
    """Put the example's commented `section:` block into use, as an admin following it would."""
    text = store.path("tix.yaml").read_text(encoding="utf-8")
    block = re.search(rf"^# {section}:\n(?:#.*\n)+", text, flags=re.M).group(0)
    live = "".join(line[2:] + "\n" for line in block.splitlines())
    text = text.replace(block, live)
    if settings:
        text = text.replace("settings:\n", f"settings:\n  {settings}\n", 1)
    store.path("tix.yaml").write_text(text, encoding="utf-8")
    store.reload_config()


@pytest.mark.parametrize("settings", ["", "business_calendar: office"])
def test_the_example_configs_after_hours_auto_replies_fire(store, settings):
    uncomment_example(store, "whatsapp")
    uncomment_example(store, "calendars", settings)
    assert [str(c) for c in store.config.raw["calendars"]] == ["always", "office"]  # 24/7 first
    rk = RulesKit(store)
    late = rk.message(channel="whatsapp", sender="6281234567890", name="Sari", at=TUESDAY_21_WIB)
    day = rk.message(channel="whatsapp", sender="6281299990000", name="Budi", at=TUESDAY_10_WIB)
    mail = rk.message(sender="rina@example.com", name="Rina", at=TUESDAY_21_WIB)
    # a dry run: the WhatsApp outbox checks Meta's 24-hour window against the wall clock
    res = rules.route(Store(store.root), now=TUESDAY_21_WIB, dry_run=True)
    replies = {(ln.ticket, ln.rule) for ln in res.lines if ln.text.startswith("auto-reply")}
    assert replies == {(late, "di-luar-jam-kerja-whatsapp"), (mail, "terima-kasih-email")}, res.lines
    assert day not in {t for t, _r in replies}
    text = render_rule_template(store, "auto_reply_after_hours_whatsapp.txt.j2", "whatsapp", TUESDAY_21_WIB)
    assert "Saat ini di luar jam kerja (Senin-Jumat 08.00-12.00, 13.00-17.00; Sabtu 09.00-13.00 WIB)" in text
    assert "akan kami balas mulai Rabu 25 November 08.00 WIB." in text
    ack = render_rule_template(store, "auto_reply_received.txt.j2", "email", TUESDAY_21_WIB)
    assert "(business hours: Mon-Fri 08:00-12:00, 13:00-17:00; Sat 09:00-13:00 WIB)" in ack
    assert "jam kerja berikutnya, Rabu 25 November 08.00 WIB" in ack


def render_rule_template(store, name: str, channel: str, arrived) -> str:
    """A template rendered with the context `tix route` gives a new ticket on `channel` (tix.rules.preflight)."""
    from tix.rules.engine import load
    from tix.rules.explain import _runtime
    from tix.rules.preflight import sample_context

    ruleset = load(store)
    rt = _runtime(store, store.read(), arrived, fresh=set())
    ctx = sample_context(rt, ruleset, channel, arrived)
    return rt.templates.render(name, rt.template_context(ruleset.rules[0], ctx))


def test_without_calendars_the_built_in_hours_are_quoted(store):
    text = render_rule_template(store, "auto_reply_after_hours_whatsapp.txt.j2", "whatsapp", TUESDAY_21_WIB)
    assert "(Senin-Jumat 08.00-17.00 WIB)" in text and "mulai Rabu 25 November 08.00 WIB" in text


@pytest.mark.parametrize("yaml, settings, chosen, reason", [
    ("", "", "built-in (Mon-Fri 08:00-17:00)", "no calendar is declared"),
    ("office", "", "office", "the only calendar"),
    ("always,office", "", "office", "the first calendar not open around the clock"),
    ("always,office,default", "", "default", "the calendar named default"),
    ("always,office", "business_calendar: always", "always", "settings: business_calendar"),
])
def test_the_choice_of_calendar_is_documented_order(store, yaml, settings, chosen, reason):
    cals = {"always": "  always:\n    hours: 24/7\n    holidays: false\n",
            "office": "  office:\n    hours: {mon-fri: ['08:00-17:00']}\n    holidays: false\n",
            "default": "  default:\n    hours: {mon-sat: ['09:00-18:00']}\n    holidays: false\n"}
    text = store.path("tix.yaml").read_text()
    if settings:
        text = text.replace("settings:\n", f"settings:\n  {settings}\n", 1)
    if yaml:
        text += "\ncalendars:\n" + "".join(cals[n] for n in yaml.split(","))
    store.path("tix.yaml").write_text(text)
    store.reload_config()
    hours = business_hours(store.config)
    assert (hours.name, hours.reason) == (chosen, reason)


def test_config_check_asks_to_name_the_calendar(store, tix):
    uncomment_example(store, "calendars")
    path = store.path("tix.yaml")
    line = next(i for i, ln in enumerate(path.read_text().splitlines(), 1) if ln == "calendars:")
    assert [str(p) for p in check(store.config)] == [
        f"{path}:{line}: several calendars and no settings: business_calendar; the business_hours of rules and "
        "auto-replies would use 'office' (the first not open around the clock): name it, "
        "e.g. business_calendar: office"]
    proc = tix("config", "check")
    assert proc.returncode == 2 and "name it, e.g. business_calendar: office" in proc.stderr
    uncomment_example_setting(store, "business_calendar: ofice")
    proc = tix("config", "check")
    assert proc.returncode == 2
    assert "setting business_calendar: unknown calendar 'ofice' (did you mean 'office'?); calendars: always, office" \
        in proc.stderr
    uncomment_example_setting(store, "business_calendar: office")
    assert tix("config", "check", check=0).stderr == ""


def uncomment_example_setting(store, line: str) -> None:
    path = store.path("tix.yaml")
    text = re.sub(r"^  #? ?business_calendar: \w+", "  " + line, path.read_text(), count=1, flags=re.M)
    path.write_text(text)
    store.reload_config()
