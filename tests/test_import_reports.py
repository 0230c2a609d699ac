"""Reports over imported history give the source's own figures (issue 17, item 4)."""
from __future__ import annotations

import json
import statistics
from datetime import datetime, timedelta, timezone

# Another helpdesk's export: each ticket with its conversation and the figures the old
# helpdesk computed itself (first response and resolution, in minutes).
SOURCE = [  # (id, created, minutes to first reply, minutes to resolution)
    (101, datetime(2025, 9, 1, 2, 0, tzinfo=timezone.utc), 30, 240),
    (102, datetime(2025, 9, 2, 3, 30, tzinfo=timezone.utc), 150, 600),
    (103, datetime(2025, 9, 3, 8, 0, tzinfo=timezone.utc), 45, 90),
    (104, datetime(2025, 9, 4, 1, 15, tzinfo=timezone.utc), 300, 1440),
]

MAPPING = """\
messages: conversation
columns:
  ticket: id
  subject: subject
  email: requester
  status: status
  resolved: solved_at
  time: at
  from: author
  body: body
values:
  from: {end-user: customer}
  status: {solved: resolved}
"""


def _export(path) -> None:
    tickets = []
    for tid, created, first, resolution in SOURCE:
        at = created.isoformat()
        tickets.append({
            "id": tid, "subject": f"Pesanan {tid}", "requester": f"c{tid}@mail.example", "status": "solved",
            "solved_at": (created + timedelta(minutes=resolution)).isoformat(),
            "first_response_minutes": first, "resolution_minutes": resolution,
            "conversation": [
                {"at": at, "author": "end-user", "body": "Halo kak, pesanan saya?"},
                {"at": (created + timedelta(minutes=first)).isoformat(), "author": "agent", "body": "Kami cek ya."},
                {"at": (created + timedelta(minutes=first + 20)).isoformat(), "author": "end-user", "body": "Ok"},
            ]})
    path.write_text(json.dumps(tickets), encoding="utf-8")


def test_response_times_report_matches_the_source(store, tix, tmp_path):
    export, mapping = tmp_path / "export.json", tmp_path / "mapping.yaml"
    _export(export)
    mapping.write_text(MAPPING, encoding="utf-8")
    tix("import", "helpdesk", str(export), "--mapping", str(mapping), check=0)
    proc = tix("report", "response-times", "--param", "since=2025-08-25", "--param", "until=2025-09-29",
               "--format", "json", check=0)
    metrics = {r["metric"]: r["value"] for r in json.loads(proc.stdout)["sections"][0]["rows"]}
    assert metrics["responded"] == len(SOURCE)
    assert metrics["first_response_median_hours"] == statistics.median(s[2] for s in SOURCE) / 60
    assert metrics["resolved"] == len(SOURCE)
    assert metrics["resolution_median_hours"] == statistics.median(s[3] for s in SOURCE) / 60
    rows = json.loads(tix("sql", "SELECT hours FROM first_responses ORDER BY ticket", "-f", "json", check=0).stdout)
    assert [round(r["hours"] * 60) for r in rows] == [s[2] for s in SOURCE]
