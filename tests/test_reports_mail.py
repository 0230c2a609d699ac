"""`tix report weekly --mail-to`: delivered to a real aiosmtpd server on loopback."""
from __future__ import annotations

import email
from email import policy

from tests.plugins.reports import XSS


def _outbound(store, port: int, **extra) -> None:
    cfg = store.path("tix.yaml")
    lines = [f"  {k}: {v}" for k, v in {"host": "127.0.0.1", "port": port, "security": "plain",
                                         "from": "Laporan <reports@example.co.id>", **extra}.items()]
    cfg.write_text(cfg.read_text() + "\noutbound:\n" + "\n".join(lines) + "\n")


def test_mail_to_sends_html_with_a_text_alternative(report_store, report_smtp, tix):
    _outbound(report_store, report_smtp.port)
    proc = tix("-v", "report", "weekly", "--week", "2026-W47", "--mail-to", "lead@example.co.id",
               "--mail-to", "owner@example.co.id")
    assert proc.returncode == 0, proc.stderr
    assert "sent weekly to lead@example.co.id, owner@example.co.id" in proc.stdout
    assert len(report_smtp.handler.messages) == 1
    mail_from, rcpts, raw = report_smtp.handler.messages[0]
    assert mail_from == "reports@example.co.id"
    assert rcpts == ["lead@example.co.id", "owner@example.co.id"]
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert msg["Subject"] == "Laporan mingguan 2026-W47"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "Minggu 2026-W47: 16 Nov 2026 – 22 Nov 2026 (Asia/Jakarta)" in text
    assert "Tiket baru" in text and XSS in text  # plain text needs no escaping
    assert html.startswith("<!DOCTYPE html>") and "<svg" in html and XSS not in html


def test_mail_failure_is_one_line_and_nonzero(report_store, tix):
    _outbound(report_store, 1)  # nothing listens on port 1
    proc = tix("report", "weekly", "--mail-to", "lead@example.co.id")
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error: cannot send by SMTP: SMTP 127.0.0.1:1 unreachable: Connection refused")
    assert len(proc.stderr.splitlines()) == 1


def test_mail_without_outbound_is_a_usage_error(report_store, tix):
    proc = tix("report", "weekly", "--mail-to", "lead@example.co.id")
    assert proc.returncode == 2 and "needs an `outbound:` section" in proc.stderr
