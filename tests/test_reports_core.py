"""Reports computed on the hand-built store of tests/plugins/reports.py: known right answers."""
from __future__ import annotations

import io
from datetime import datetime

import orjson
import pytest

from tests.plugins.reports import NOW
from tix.errors import ConfigError, NotFound, UsageError
from tix.reports import list_reports, render, run_report
from tix.reports.params import parse_week


def metrics(result, section):
    return {r["metric"]: (r["value"], r["previous"]) for r in result.section(section).dicts()}


def rows(result, section):
    return result.section(section).dicts()


def test_weekly_headline_numbers_and_week_over_week(report_store):
    r = run_report(report_store, "weekly", week="2026-W47", now=NOW, locale="en")
    m = metrics(r, "headline")
    assert m["new_tickets"] == (7, 1)  # #5 is Monday 00:30 in Jakarta (Sunday in UTC): W47
    assert m["resolved_tickets"] == (3, 1)
    assert m["backlog"] == (4, 0)
    # first replies in W47 after 1, 2, 4, 8, 16 h (auto-replies do not count)
    assert m["first_response_median_hours"][0] == pytest.approx(4.0)
    assert m["first_response_p90_hours"][0] == pytest.approx(12.8)  # 8 + 0.6 * (16 - 8)
    assert m["first_response_median_hours"][1] == pytest.approx(0.25)
    assert m["resolution_median_hours"] == (pytest.approx(20.0), pytest.approx(0.4))


def test_response_times_by_channel_median_and_p90(report_store):
    r = run_report(report_store, "response-times", week="2026-W47", now=NOW)
    by = {row["channel"]: row for row in rows(r, "by_channel")}
    assert by["email"]["responded"] == 3  # 1, 4, 8 h
    assert by["email"]["first_response_median_hours"] == pytest.approx(4.0)
    assert by["email"]["first_response_p90_hours"] == pytest.approx(7.2)  # 4 + 0.8 * 4
    assert by["whatsapp"]["first_response_median_hours"] == pytest.approx(9.0)  # 2 and 16 h
    assert by["whatsapp"]["first_response_p90_hours"] == pytest.approx(14.6)
    assert by["email"]["resolution_median_hours"] == pytest.approx(20.0)  # 10 and 30 h
    weeks = rows(r, "by_week")
    assert [w["week"] for w in weeks] == ["2026-W47"]
    dist = {d["bucket"]: d["tickets"] for d in rows(r, "distribution")}
    assert dist == {"< 1": 0, "1–4": 2, "4–8": 1, "8–24": 2, "24–72": 0, "72+": 0}


def test_backlog_aging_buckets_and_oldest(report_store):
    r = run_report(report_store, "backlog", now=NOW)
    teams = {row["team"]: row for row in rows(r, "by_team")}
    assert teams["support"]["open_tickets"] == 2  # 8 (2.0 days) and 9 (exactly 1 day: 1–3)
    assert (teams["support"]["lt_1d"], teams["support"]["d1_3"]) == (0, 2)
    assert (teams["shipping"]["lt_1d"], teams["shipping"]["gt_7d"]) == (1, 1)
    assert teams["billing"]["d3_7"] == 1
    totals = {k: sum(t[k] for t in teams.values()) for k in ("lt_1d", "d1_3", "d3_7", "gt_7d")}
    assert totals == {"lt_1d": 1, "d1_3": 2, "d3_7": 1, "gt_7d": 1}
    assert [o["ticket"] for o in rows(r, "oldest")] == [5, 4, 8, 9, 7]
    m = metrics(r, "summary")
    assert m["open_tickets"] == (5, 2) and m["unassigned"][0] == 1 and m["waiting_7d"][0] == 1
    trend = rows(r, "trend")
    assert trend[-2] == {"week": "2026-W47", "backlog": 4} and trend[-1] == {"week": "2026-W48", "backlog": 5}


def test_week_boundaries_in_site_time_zone(report_store):
    monday, next_monday = parse_week("2026-W47")
    assert (monday.isoformat(), next_monday.isoformat()) == ("2026-11-16", "2026-11-23")
    r = run_report(report_store, "volume", params={"since": "2026-11-09", "until": "2026-11-23"}, now=NOW)
    assert r.params.values["since"] == datetime(2026, 11, 8, 17, 0)  # local midnight in UTC
    assert {w["week"]: w["new_tickets"] for w in rows(r, "by_week")} == {"2026-W46": 1, "2026-W47": 7}
    cells = {(c["weekday"], c["hour"]): c["tickets"] for c in rows(r, "heatmap")}
    assert cells[(1, 0)] == 1 and cells[(1, 9)] == 1 and cells[(7, 23)] == 1  # #5, #1, #6 in Jakarta time


def test_week_boundaries_follow_the_configured_zone(report_store):
    cfg = report_store.path("tix.yaml")
    cfg.write_text(cfg.read_text().replace("timezone: Asia/Jakarta", "timezone: UTC"))
    report_store.reload_config()
    r = run_report(report_store, "volume", params={"since": "2026-11-09", "until": "2026-11-23"}, now=NOW)
    assert {w["week"]: w["new_tickets"] for w in rows(r, "by_week")} == {"2026-W46": 2, "2026-W47": 6}


def test_agents_per_assignee(report_store):
    r = run_report(report_store, "agents", week="2026-W47", now=NOW)
    by = {row["agent"]: row for row in rows(r, "agents")}
    assert by["ani"]["handled"] == 2 and by["ani"]["resolved"] == 2
    assert by["ani"]["first_response_median_hours"] == pytest.approx(1.5)
    assert by["budi"]["resolution_median_hours"] == pytest.approx(30.0)
    assert by["dewa"]["handled"] == 0 and by["dewa"]["assigned_open"] == 1


def test_sla_sections_say_no_policy_is_configured(report_store):
    r = run_report(report_store, "sla", now=NOW, locale="en")
    assert all(s.note == "no_sla" for s in r.sections)
    out = io.StringIO()
    render(r, "table", out)
    assert "No SLA policy is configured." in out.getvalue()


SLA_YAML = """
sla:
  policies:
    - name: standard
      targets: {first_response: 4h, resolution: 2d}
"""


def _sla_connection(store):
    """The store's views with `sla` holding known rows (the sla view's documented columns)."""
    con = store.connect()
    con.execute("""
        CREATE OR REPLACE TEMP VIEW sla AS SELECT v.*, 0 AS cycle, NULL::TIMESTAMP AS stopped_at, t.team, t.assignee
        FROM (VALUES
          (1, 'standard', 'first_response', TIMESTAMP '2026-11-16 02:00', TIMESTAMP '2026-11-16 06:00',
           TIMESTAMP '2026-11-16 03:00', 'met', false, 3600.0),
          (2, 'standard', 'first_response', TIMESTAMP '2026-11-17 03:00', TIMESTAMP '2026-11-17 07:00',
           TIMESTAMP '2026-11-17 05:00', 'met', false, 7200.0),
          (3, 'standard', 'first_response', TIMESTAMP '2026-11-18 04:00', TIMESTAMP '2026-11-18 08:00',
           TIMESTAMP '2026-11-18 08:00', 'met', false, 3000.0),
          (4, 'standard', 'first_response', TIMESTAMP '2026-11-19 05:00', TIMESTAMP '2026-11-19 09:00',
           TIMESTAMP '2026-11-19 13:00', 'breached', true, 14400.0),
          (1, 'standard', 'resolution', TIMESTAMP '2026-11-16 02:00', TIMESTAMP '2026-11-18 02:00',
           TIMESTAMP '2026-11-16 12:00', 'met', false, 18000.0),
          (8, 'standard', 'first_response', TIMESTAMP '2026-11-21 03:00', TIMESTAMP '2026-11-21 07:00',
           NULL, 'breached', true, NULL),
          (7, 'standard', 'first_response', TIMESTAMP '2026-11-23 01:00', TIMESTAMP '2026-11-23 05:00',
           NULL, 'ok', false, NULL)
        ) AS v(ticket, policy, target, started_at, due_at, met_at, state, breached, business_seconds_to_meet)
        LEFT JOIN tickets t ON t.number = v.ticket
    """)
    return con


def _with_sla_policy(store):
    cfg = store.path("tix.yaml")
    cfg.write_text(cfg.read_text() + SLA_YAML)
    store.reload_config()


def test_business_hours_from_the_sla_view(report_store):
    _with_sla_policy(report_store)
    r = run_report(report_store, "response-times", week="2026-W47", now=NOW, con=_sla_connection(report_store))
    by = {row["team"]: row for row in rows(r, "business_hours")}
    assert by["support"]["responded"] == 2
    assert by["support"]["first_response_median_business_hours"] == pytest.approx(1.5)  # 1 h and 2 h
    assert by["support"]["resolution_median_business_hours"] == pytest.approx(5.0)
    assert by["billing"]["first_response_p90_business_hours"] == pytest.approx(3000 / 3600 + 0.9 * (4 - 3000 / 3600))


def test_sla_compliance_breaches_and_near_misses(report_store):
    _with_sla_policy(report_store)
    r = run_report(report_store, "sla", week="2026-W47", now=NOW, con=_sla_connection(report_store))
    fr = {row["target"]: row for row in rows(r, "by_policy")}["first_response"]
    # met: 1, 2, 3; breached: 4 (late) and 8 (never answered); 7 still running is not counted
    assert (fr["measured"], fr["met"], fr["breached"]) == (5, 3, 2)
    assert fr["compliance"] == pytest.approx(0.6)
    assert fr["near_miss"] == 1  # #3, met at its due time; #2 used half its window
    assert [b["ticket"] for b in rows(r, "breaches")] == [8, 4]
    assert [n["ticket"] for n in rows(r, "near_misses")] == [3]
    teams = {row["team"]: row["compliance"] for row in rows(r, "by_team")}
    assert teams["billing"] == pytest.approx(0.5)


def test_parameters_are_bound_not_pasted(report_store):
    r = run_report(report_store, "backlog", params={"team": "x' OR 1=1 --"}, now=NOW)
    assert rows(r, "by_team") == []
    r = run_report(report_store, "backlog", params={"team": "billing"}, now=NOW)
    assert [t["team"] for t in rows(r, "by_team")] == ["billing"]


def test_bad_parameters_are_usage_errors(report_store):
    with pytest.raises(UsageError, match="no parameter 'tema'.*did you mean 'team'"):
        run_report(report_store, "backlog", params={"tema": "x"})
    with pytest.raises(UsageError, match="--param since=yesterday"):
        run_report(report_store, "volume", params={"since": "yesterday"})
    with pytest.raises(UsageError, match="no week 54"):
        run_report(report_store, "weekly", week="2026-W54")
    with pytest.raises(NotFound, match="did you mean 'backlog'"):
        run_report(report_store, "backlogg")


def test_store_reports_override_and_extend_the_builtins(report_store):
    (report_store.path("reports") / "backlog.sql").write_text(
        "-- title: Our backlog\n-- section: n\n"
        "SELECT count(*) AS open_tickets FROM tickets WHERE status <> 'resolved';\n")
    (report_store.path("reports") / "vip.sql").write_text(
        "-- title: VIP\n-- param: min int = 2  at least\n"
        "SELECT number AS ticket FROM tickets WHERE number >= $min ORDER BY 1 LIMIT 2;\n")
    names = {r["name"]: r for r in list_reports(report_store, "en")}
    assert names["backlog"]["title"] == "Our backlog" and names["vip"]["parameters"] == "min=2"
    assert names["weekly"]["source"] == "built-in" or names["weekly"]["source"].endswith("weekly.sql")
    r = run_report(report_store, "backlog", now=NOW)
    assert rows(r, "n") == [{"open_tickets": 5}]
    r = run_report(report_store, "vip", params={"min": "8"}, now=NOW)
    assert rows(r, "main") == [{"ticket": 8}, {"ticket": 9}]


def test_report_problems_have_file_and_line(report_store):
    path = report_store.path("reports") / "broken.sql"
    path.write_text("-- title: Broken\n-- param: team text = ''  x\n\n-- section: a\nSELECT 1 AS one;\n\n"
                    "-- section: b\nSELECT team,\n  count(*) AS n\nFORM tickets\nGROUP BY 1;\n")
    with pytest.raises(ConfigError) as exc:
        run_report(report_store, "broken")
    assert str(exc.value).startswith(f"{path}:10: Parser Error: syntax error at or near \"tickets\"") or \
        str(exc.value).startswith(f"{path}:10: Parser Error")
    path.write_text("-- title: Unknown column\nSELECT\n  nonsense\nFROM tickets WHERE team = $tema;\n")
    with pytest.raises(ConfigError, match=rf"^{path}:4: unknown parameter \$tema"):
        run_report(report_store, "broken")
    path.write_text("-- title: Binder\nSELECT\n  nonsense\nFROM tickets;\n")
    with pytest.raises(ConfigError, match=rf"^{path}:3: Binder Error"):
        run_report(report_store, "broken")
    path.write_text("-- titel: x\n-- param: n integer = 1\nSELECT 1;\n")
    with pytest.raises(ConfigError) as exc:
        run_report(report_store, "broken")
    assert [str(p) for p in exc.value.problems] == [
        f"{path}:1: unknown header key 'titel' (did you mean 'title'?)",
        f"{path}:2: param n: unknown type 'integer' (did you mean 'int'?); "
        "types: text, int, float, bool, date, timestamp",
    ]


def test_renderers_json_csv_md(report_store):
    r = run_report(report_store, "volume", week="2026-W47", now=NOW, locale="id")
    out = io.StringIO()
    render(r, "json", out)
    doc = orjson.loads(out.getvalue())
    assert doc["week"] == "2026-W47" and doc["params"]["since"] == "2026-11-15T17:00:00Z"
    by_channel = next(s for s in doc["sections"] if s["name"] == "by_channel")
    assert by_channel["rows"][0] == {"channel": "email", "tickets": 4, "share_pct": pytest.approx(4 / 7)}
    out = io.StringIO()
    render(r, "csv", out, section="by_channel")
    assert out.getvalue().splitlines()[:2] == ["channel,tickets,share_pct", "email,4,0.5714285714285714"]
    out = io.StringIO()
    render(r, "md", out)
    text = out.getvalue()
    assert text.startswith("# Volume\nMinggu 2026-W47: 16 Nov 2026 – 22 Nov 2026 (Asia/Jakarta)")
    assert "| email    |       4 |   57,1% |" in text  # Indonesian decimal comma
    assert "| Sen    |       2 |   28,6% |" in text  # Monday, Indonesian


def test_messages_view(report_store):
    con = report_store.connect()
    got = con.execute("SELECT direction, count(*), count(*) FILTER (WHERE auto), count(DISTINCT agent) "
                      "FROM messages GROUP BY 1 ORDER BY 1").fetchall()
    assert got == [("in", 9, 0, 0), ("out", 15, 9, 3)]  # 9 auto-replies, 6 by ani, budi, citra
    row = con.execute("SELECT channel, \"from\", \"to\", agent, ts FROM messages "
                      "WHERE ticket = 1 AND direction = 'out' AND NOT auto").fetchone()
    assert row == ("email", None, "customer1@example.com", "ani", datetime(2026, 11, 16, 3, 0))


def test_durations_under_an_hour_show_minutes_worth_and_never_minus_zero():
    """Hour medians of `0,0` hid minute-level times; ages printed as `-0,0`."""
    from tix.reports.labels import Labels

    L = Labels("id")
    assert L.value(0.05, "first_response_median_hours") == "0,05"  # 3 minutes
    assert L.value(0.25, "median_hours") == "0,25"
    assert L.value(0.001, "median_hours") == "< 0,01"
    assert L.value(-0.0004, "age_days") == "0,0"  # a clock's skew of seconds
    assert L.value(-0.04, "x") == "0,0" and L.value(2.25, "median_hours") == "2,2"
    assert Labels("en").value(0.05, "median_hours") == "0.05"


def test_a_report_runs_on_one_duckdb_thread(report_store):
    """Its sections are many small queries: a second thread costs CPU and gains no time."""
    from tix.reports.definition import spare_connection

    con = spare_connection()
    assert con.execute("SELECT current_setting('threads')").fetchone()[0] == 1
    r = run_report(report_store, "backlog", now=NOW, con=None)
    assert rows(r, "summary")
