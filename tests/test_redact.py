"""Redaction for sharing (issue 14, item 5): `--redact` on list, show and report, every format."""
from __future__ import annotations

import json

import pytest

from tix.redact import Redactor

SECRETS = ("Sari", "Wulandari", "sari.w@example.com", "0812-3456-7890", "81234567890", "INV-10023")

REPORT = """-- title: Customers
-- description: who wrote about what (a report that should not leave the team as it is)
SELECT c.name AS customer, c.emails AS emails, t.subject AS subject, t.team AS team, t.number AS number
FROM tickets t JOIN contacts c ON c.id = t.contact ORDER BY t.number;
"""


@pytest.fixture
def shared(store, tix):
    with open(store.root / "tix.yaml", "a") as f:
        f.write("\nredact:\n  patterns:\n    order: 'INV-\\d{4,}'\n  fields: [order_id]\n")
    (store.path("reports") / "customers.sql").write_text(REPORT)
    tix("new", "Sari minta refund INV-10023, hubungi 0812-3456-7890", "--name", "Sari Wulandari",
        "--email", "sari.w@example.com", "--phone", "081234567890", "--team", "billing",
        "-m", "Halo, saya Sari. Email saya sari.w@example.com, order INV-10023", check=0)
    tix("set", "1", "order_id=INV-10023", check=0)
    return store


def _clean(text: str) -> None:
    for secret in SECRETS:
        assert secret.lower() not in text.lower(), (secret, text)


@pytest.mark.parametrize("fmt", ["table", "json", "csv"])
def test_list_redacts_every_format(shared, tix, fmt):
    plain = tix("list", "-f", fmt, check=0).stdout
    assert "Sari" in plain and "INV-10023" in plain
    text = tix("list", "--redact", "-f", fmt, check=0).stdout
    _clean(text)
    assert "[name] minta refund [order], hubungi [phone]" in text
    assert "billing" in text and "#1" in text if fmt == "table" else '"number": 1' in text or "1,new" in text


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_show_redacts_the_conversation_and_the_history(shared, tix, fmt):
    text = tix("show", "1", "--history", "--redact", "-f", fmt, check=0).stdout
    _clean(text)
    assert "[email]" in text and "[name]" in text and "[order" in text
    if fmt == "text":
        assert "customer: [name] <[email], [phone]> (contact 1)" in text
        assert "Halo, saya [name]. Email saya [email], order [order]" in text
    else:
        doc = json.loads(text)
        assert doc["ticket"]["number"] == 1 and doc["ticket"]["team"] == "billing"
        assert json.loads(doc["ticket"]["fields"]) == {"order_id": "[order_id]"}


@pytest.mark.parametrize("fmt", ["table", "md", "csv", "json", "html"])
def test_report_redacts_every_format(shared, tix, fmt):
    plain = tix("report", "customers", "-f", fmt, check=0).stdout
    assert "sari.w@example.com" in plain
    text = tix("report", "customers", "--redact", "-f", fmt, check=0).stdout
    _clean(text)
    assert "[email]" in text and ("billing" in text or "Tagihan dan pembayaran" in text)


def test_a_bad_redact_pattern_is_a_config_error_with_its_line(store, tix):
    with open(store.root / "tix.yaml", "a") as f:
        f.write("\nredact:\n  patterns:\n    order: 'INV-(\\d+'\n  feilds: []\n")
    proc = tix("config", "check")
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert any(": redact: pattern 'order': not a regex: missing ), unterminated subpattern" in ln for ln in lines)
    assert any("redact: unknown key 'feilds' (did you mean 'fields'?)" in ln for ln in lines)
    tix("new", "x", check=0)
    listed = tix("list", "--redact")
    assert listed.returncode == 2 and listed.stdout == "" and "not a regex" in listed.stderr


def test_the_one_redaction_keeps_what_is_not_personal():
    r = Redactor({"order": r"INV-\d+"}).learn({"from_name": "Budi Hartono"})
    assert r.text("Budi Hartono (budi@x.co.id, +62 812 3456 7890) INV-77 on 2026-11-24 09:00, Rp 15.000") == \
        "[name] ([email], [phone]) [order] on 2026-11-24 09:00, Rp 15.000"
    assert r.text("budi: 0812.3456.7890 / (021) 555-1234-5, 24/11/2026 10:30, hartono") == \
        "[name]: [phone] / [phone], 24/11/2026 10:30, [name]"
    row = {"number": 7, "status": "open", "team": "billing", "actor": "user:budi", "ts": "2026-11-24T02:00:00Z",
           "tags": ["vip"], "data": {"from": "6281234567890", "from_user_id": "ID.abc", "text": "budi here"}}
    assert r.value(row) == {**row, "data": {"from": "[phone]", "from_user_id": "[phone]", "text": "[name] here"}}
