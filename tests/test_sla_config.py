"""The commented SLA example in tix.example.yaml is valid once uncommented, and `tix escalate` uses it."""
from __future__ import annotations

from pathlib import Path

from tests.plugins.sla import Timeline, jkt, start_watch
from tix.sla.escalate import escalate, load_settings

EXAMPLE = Path(__file__).resolve().parent.parent / "tix" / "data" / "tix.example.yaml"


def uncommented_sla_example() -> str:
    """The `calendars:` and `sla:` blocks of the example, without their `# ` (prose lines dropped)."""
    text = EXAMPLE.read_text(encoding="utf-8")
    lines, in_sla = [], False
    for line in text[text.index("# Business calendars: when SLA clocks run"):].splitlines():
        if line.startswith(("# calendars:", "# sla:")) or line.startswith("#  "):
            in_sla = in_sla or line.startswith("# sla:")
            lines.append(line[2:])
        elif in_sla and len(lines) > 1 and lines[-1].startswith(" ") and not line.startswith("#  "):
            break
    return "\n".join(lines) + "\n"


def test_example_calendars_and_policies_are_valid_and_used(store):
    block = uncommented_sla_example()
    assert "calendars:" in block and "policies:" in block and "whatsapp_window" in block
    path = store.path("tix.yaml")
    path.write_text(path.read_text(encoding="utf-8") + "\n" + block, encoding="utf-8")
    store.reload_config()
    settings = load_settings(store)
    assert [p.name for p in settings.sla.policies] == ["urgent", "vip", "normal"]
    assert set(settings.calendars) == {"always", "office", None}
    start_watch(store)  # escalate watched before the ticket came (a first run acts on nothing overdue)
    n = Timeline(store).create(jkt(2026, 11, 23, 9, 0), priority="urgent")
    report = escalate(store, now=jkt(2026, 11, 23, 9, 50), flush_outbox=False)
    assert [(p.ticket, p.step.name) for p in report.planned] == [(n, "warn-lead")]


def test_a_webhook_with_a_password_in_its_url_is_refused_without_echoing_it(store, tix):
    """A webhook URL with `user:password@` was stored in full in the event log."""
    block = uncommented_sla_example().replace('"env:TIX_SLACK_WEBHOOK"', '"https://ops:s3cret-pw@hooks.example.com/T0"')
    path = store.path("tix.yaml")
    path.write_text(path.read_text(encoding="utf-8") + "\n" + block, encoding="utf-8")
    proc = tix("config", "check")
    assert proc.returncode == 2
    assert "a user:password@ in the URL would be stored in the event log" in proc.stderr
    assert "s3cret" not in proc.stderr + proc.stdout
