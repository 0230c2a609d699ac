"""Issue 15, item 7 (labels and names): with `locale: id` every notification text and every
report speaks Indonesian and names teams and agents as tix.yaml does.

The reproduction: SLA notification mails and webhooks were English; the VIP notification
said `Tue 01-12-2026`; reports showed `high`, `new`, `first_response`; team keys and agent
logins stood where tix.yaml gives names. Here every text template and every report is
rendered in `id`, and no raw value, key or English field word may show.
"""
from __future__ import annotations

import io
import re
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from tix.reports import list_reports, render, run_report
from tix.sla.escalate import Planned, _Renderer, escalate
from tix.store import Store

from .plugins.reports import NOW, build_report_store
from .plugins.sla import SLA_YAML
from .test_config_check_business_hours import render_rule_template, uncomment_example

# Values and keys that must not show in Indonesian text (whole words, case as stored).
RAW = ["first_response", "next_response", "whatsapp_window", "high", "urgent", "low", "new", "open", "pending",
       "resolved", "closed", "phone", "billing", "shipping", "ani", "budi", "citra", "dewa"]
ENGLISH = ["Ticket", "Priority", "team", "assignee", "due", "warning", "breached", "See the clock", "Tue", "Mon",
           "reply now", "Subject"]


def leaks(text: str, words=RAW + ENGLISH) -> list[str]:
    return [w for w in words if re.search(rf"(?<![\w@.-]){re.escape(w)}(?![\w@-])", text)]


@pytest.fixture
def row(store):
    return {**dict.fromkeys(("category", "tags", "fields")), "number": 1042, "subject": "Pembayaran gagal",
            "priority": "urgent", "status": "open", "team": "billing", "assignee": "budi", "channel": "whatsapp"}


@pytest.mark.parametrize("target, state", [("first_response", "warning"), ("next_response", "breached"),
                                           ("resolution", "breached"), ("whatsapp_window", "warning")])
def test_sla_notifications_are_indonesian_with_configured_names(store, row, target, state):
    step = SimpleNamespace(name="langkah-1")
    p = Planned(1042, "kebijakan-a", target, 0, state, "k", step, due=1795400000.0, used=2700, target_s=3600,
                window_close=1795399000.0, window_in=1800)
    subject, body = _Renderer(store, "Asia/Jakarta", store.config.agents).render(p, row)
    text = subject + "\n" + body
    assert leaks(text) == [], text
    if target != "whatsapp_window":
        assert "Prioritas mendesak, tim Tagihan dan pembayaran, penanggung jawab Budi Santoso, kanal WhatsApp" in text


def test_sla_notifications_follow_locale_en(store, row):
    path = store.path("tix.yaml")
    path.write_text(path.read_text().replace("  locale: id ", "  locale: en ", 1))
    store.reload_config()
    p = Planned(1042, "a", "first_response", 0, "warning", "k", SimpleNamespace(name="s"), due=1795400000.0,
                used=2700, target_s=3600)
    subject, body = _Renderer(store, "Asia/Jakarta", store.config.agents).render(p, row)
    assert subject == "[#1042] SLA warning: first response due 2026-11-23 09:13 WIB"
    assert "Priority urgent, team Tagihan dan pembayaran, assignee Budi Santoso, channel WhatsApp" in body


TUESDAY_21_WIB = datetime(2026, 12, 1, 14, 5, tzinfo=timezone.utc)


@pytest.mark.parametrize("name, channel", [("rules_notify_vip.txt.j2", "email"),
                                           ("auto_reply_after_hours_whatsapp.txt.j2", "whatsapp"),
                                           ("auto_reply_received.txt.j2", "email")])
def test_rule_templates_are_indonesian(store, name, channel):
    uncomment_example(store, "calendars", "business_calendar: office")
    text = render_rule_template(store, name, channel, TUESDAY_21_WIB)
    indonesian = text.split("\n--\n", 1)[0]  # the acknowledgement is bilingual on purpose: its Indonesian half
    assert leaks(indonesian) == [], indonesian
    if name == "rules_notify_vip.txt.j2":
        assert "Waktu:  Sel 01-12-2026 21.05 WIB" in text  # was `Tue 01-12-2026 21:05 WIB`


@pytest.fixture
def report_store_sla(store):
    build_report_store(store)
    path = store.path("tix.yaml")
    path.write_text(path.read_text() + SLA_YAML)
    store.reload_config()
    escalate(Store(store.root), now=NOW)
    return store


def test_every_report_in_indonesian_shows_labels_and_names(report_store_sla):
    store = report_store_sla
    names = [r["name"] for r in list_reports(store, "id")]
    assert {"backlog", "response-times", "sla", "agents", "volume", "weekly"} <= set(names)
    seen = ""
    for name in names:
        result = run_report(store, name, {}, now=NOW, locale="id")
        for fmt in ("table", "html"):
            out = io.StringIO()
            render(result, fmt, out, template_dirs=[store.path("templates")])
            text = out.getvalue()
            if fmt == "html":
                text = re.sub(r"<[^>]+>", " ", re.sub(r"<(style|svg)\b.*?</\1>", " ", text, flags=re.S))
                assert f"Laporan {name}" not in text  # the footer said `Laporan weekly`: the title now
            assert leaks(text, RAW) == [], (name, fmt, leaks(text, RAW))
            seen += text
    for shown in ("Tagihan dan pembayaran", "Layanan pelanggan", "Budi Santoso", "Ani Lestari", "mendesak",
                  "respons pertama", "penyelesaian"):
        assert shown in seen, shown


def test_json_and_csv_keep_the_values(report_store_sla):
    result = run_report(report_store_sla, "backlog", {}, now=NOW, locale="id")
    out = io.StringIO()
    render(result, "csv", out)
    assert "billing" in out.getvalue() and "Tagihan dan pembayaran" not in out.getvalue()
