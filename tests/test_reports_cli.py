"""`tix report` through the real CLI: formats, files, list, errors and exit codes."""
from __future__ import annotations

import csv
import io
import json
import os

from tests.plugins.reports import XSS


def test_report_list_shows_builtins_and_the_stores_own(report_store, tix):
    (report_store.path("reports") / "mine.sql").write_text("-- title: Mine\n-- description: ours\nSELECT 1 AS one;\n")
    proc = tix("report", "list", "--format", "json", check=0)
    names = {r["name"]: r for r in json.loads(proc.stdout)}
    assert {"backlog", "response-times", "sla", "agents", "volume", "weekly", "mine"} <= set(names)
    assert names["mine"]["title"] == "Mine" and names["mine"]["source"].endswith("mine.sql")
    assert names["weekly"]["parameters"] == "since=monday-7d until=monday team="
    proc = tix("report", "list", check=0)
    assert "Laporan mingguan" in proc.stdout  # the default locale is id


def test_weekly_table_md_csv_json(report_store, tix):
    proc = tix("report", "weekly", "--week", "2026-W47", "--locale", "en", check=0)
    assert proc.stdout.startswith("Weekly report\nWeek 2026-W47: 16 Nov 2026 – 22 Nov 2026 (Asia/Jakarta)\n")
    assert proc.stderr == ""
    proc = tix("report", "weekly", "--week", "2026-W47", "--format", "json", check=0)
    doc = json.loads(proc.stdout)
    head = {r["metric"]: r for r in doc["sections"][0]["rows"]}
    assert head["new_tickets"]["value"] == 7 and head["new_tickets"]["previous"] == 1
    proc = tix("report", "volume", "--week", "2026-W47", "--format", "csv", "--section", "by_channel", check=0)
    assert list(csv.reader(io.StringIO(proc.stdout)))[1] == ["email", "4", "0.5714285714285714"]
    proc = tix("report", "backlog", "--format", "md", "--param", "team=billing", check=0)
    # teams by their configured names (issue 15): billing is "Tagihan dan pembayaran", support "Layanan pelanggan"
    assert "| Tagihan dan pembayaran |" in proc.stdout and "| Layanan pelanggan" not in proc.stdout


def test_out_writes_a_file_silently(report_store, tix, tmp_path):
    out = tmp_path / "weekly.html"
    proc = tix("report", "weekly", "--week", "2026-W47", "--format", "html", "--out", str(out), check=0)
    assert proc.stdout == "" and proc.stderr == ""
    html = out.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "Laporan mingguan" in html
    assert XSS not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert oct(os.stat(out).st_mode & 0o077) != "0o0"  # an ordinary file, not 0600


def test_syntax_error_gives_file_line_and_exit_2(report_store, tix):
    path = report_store.path("reports") / "broken.sql"
    path.write_text("-- title: Broken\n\n-- section: a\nSELECT team,\n  count(*)\nFORM tickets GROUP BY 1;\n")
    proc = tix("report", "broken")
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"{path}:6: Parser Error: syntax error at or near")
    assert proc.stdout == ""


def test_usage_errors_exit_2(report_store, tix):
    proc = tix("report", "weekly", "--week", "2026-W99")
    assert proc.returncode == 2 and proc.stderr == "Error: --week: no week 99 in 2026\n"
    proc = tix("report", "backlog", "--param", "team")
    assert proc.returncode == 2 and "use NAME=VALUE" in proc.stderr
    proc = tix("report", "backlog", "--format", "pdf")
    assert proc.returncode == 2 and "table, html, md, csv, json" in proc.stderr
    proc = tix("report", "nosuch")
    assert proc.returncode == 1 and "no report 'nosuch'" in proc.stderr


def test_sql_has_the_messages_view(report_store, tix):
    proc = tix("sql", "SELECT count(*) AS n FROM messages WHERE direction = 'in'", "--format", "json", check=0)
    assert json.loads(proc.stdout) == [{"n": 9}]


def test_a_store_that_began_this_week_reports_this_week_by_default(store, tix, monkeypatch):
    """Reports on a new store defaulted to the last complete week: all zeros in week one."""
    monkeypatch.setenv("TIX_NOW", "2026-12-03T05:00:00Z")  # a Thursday, 12:00 in Asia/Jakarta
    for subject in ("Paket belum sampai", "Refund"):
        assert tix("new", subject, "--email", "sari@pelanggan.example").returncode == 0
    doc = json.loads(tix("report", "weekly", "-f", "json", check=0).stdout)
    head = {r["metric"]: r["value"] for r in doc["sections"][0]["rows"]}
    assert (doc["week"], head["new_tickets"]) == ("2026-W49", 2)
    trend = next(s for s in doc["sections"] if s["name"] == "trend")["rows"]
    assert trend[-1]["new_tickets"] == 2
    rt = json.loads(tix("report", "response-times", "-f", "json", check=0).stdout)["params"]
    assert (rt["since"], rt["until"]) == ("2026-11-08T17:00:00Z", "2026-12-06T17:00:00Z")  # four weeks to this one
    # a week on, the store has a past: the default is the last complete week again (a Monday's cron)
    monkeypatch.setenv("TIX_NOW", "2026-12-07T02:00:00Z")
    doc = json.loads(tix("report", "weekly", "-f", "json", check=0).stdout)
    assert doc["week"] == "2026-W49"
    monkeypatch.setenv("TIX_NOW", "2026-12-15T02:00:00Z")
    assert json.loads(tix("report", "weekly", "-f", "json", check=0).stdout)["week"] == "2026-W50"
