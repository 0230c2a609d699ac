"""The README's first command: `tix demo` runs fetch -> route -> escalate -> report on bundled data."""
from __future__ import annotations

import json


def test_demo_runs_the_whole_cycle(tmp_path, tix, monkeypatch):
    monkeypatch.chdir(tmp_path)
    no_store = {"TIX_STORE": None}
    proc = tix("demo", "--dir", str(tmp_path / "demo"), env=no_store)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("fetch:") and "quarantined" in lines[0]
    assert lines[1].startswith("route:") and lines[2].startswith("escalate:") and lines[3].startswith("report:")
    html = (tmp_path / "demo" / "weekly.html").read_text()
    assert html.lstrip().lower().startswith("<!doctype html") and "<svg" in html
    store = ["--store", str(tmp_path / "demo")]
    rows = json.loads(tix(*store, "sql",
                          "SELECT channel, count(*) AS n, count(assignee) AS assigned FROM tickets "
                          "WHERE status <> 'closed' GROUP BY channel ORDER BY channel", "-f", "json",
                          env=no_store, check=0).stdout)
    by_channel = {r["channel"]: r for r in rows}
    assert by_channel["email"]["n"] >= 20 and by_channel["whatsapp"]["n"] >= 5
    assert all(r["assigned"] == r["n"] for r in rows)  # the example rules assigned every open ticket
    clocks = tix(*store, "sql", "SELECT count(*) AS n FROM sla", "-f", "csv", env=no_store, check=0).stdout.split()
    assert int(clocks[-1]) > 0
    # the demo is repeatable: running it again replaces the demo store
    again = tix("demo", "--dir", str(tmp_path / "demo"), env=no_store)
    assert again.returncode == 0 and again.stdout.splitlines()[0] == lines[0]
