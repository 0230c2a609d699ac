"""One duration grammar (tix.durations) for filters and SLA targets, and one parser of local times."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from tests.plugins.sla import jkt
from tix import yamlio
from tix.durations import format_duration, parse_duration
from tix.errors import UsageError
from tix.tickets.query import compile_filter
from tix.sla.policy import parse_sla
from tix.store.log import parse_local


@pytest.mark.parametrize("text, seconds", [
    ("1h30m", 5400), ("2d4h", 187200), ("90m", 5400), ("1.5h", 5400), ("1w", 604800), ("45s", 45),
    ("1H 30m", 5400), ("30m1h", 5400), ("0m", 0),
])
def test_compound_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "8", "soon", "-1h", "1x", "h", "1h-30m", "1h 30", "1,5h", True])
def test_not_durations_name_what_is_accepted(text):
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    assert str(info.value) == f"not a duration: {text!r} (use e.g. 30m, 4h, 3d, 2w)"


@pytest.mark.parametrize("seconds", [0, 45, 60, 90, 3600, 3720, 5400, 187200])
def test_format_reads_back(seconds):
    assert parse_duration(format_duration(seconds)) == seconds


def test_list_filters_by_compound_age(tix):
    for when, subject in [("2026-11-24T08:00:00Z", "old"), ("2026-11-24T09:00:00Z", "new")]:
        tix("new", subject, env={"TIX_NOW": when}, check=0)

    def subjects(*terms):
        out = tix("list", *terms, "-f", "json", env={"TIX_NOW": "2026-11-24T09:45:00Z"}, check=0).stdout
        return sorted(r["subject"] for r in json.loads(out))

    assert subjects("age:>1h30m") == ["old"]  # 1h45m old
    assert subjects("age>1h30m") == ["old"]
    assert subjects("age:<1h30m") == ["new"]  # 45m old
    assert subjects("age:>2d4h") == []
    assert subjects("created>1.5h") == ["new"]  # created in the last 90 minutes


def test_sla_target_and_filter_share_the_grammar_and_the_message():
    node = yamlio.loads("""
policies:
  - name: p
    targets: {first_response: 1h30m, resolution: 2d4h}
  - name: q
    targets: {first_response: soon, resolution: 0m}
""", "tix.yaml")
    cfg, problems = parse_sla(node, "tix.yaml")
    assert cfg.policies[0].targets == {"first_response": 5400, "resolution": 187200}
    with pytest.raises(UsageError) as info:
        compile_filter("age>soon", now=datetime(2026, 11, 24, tzinfo=timezone.utc))
    assert str(info.value) == "not a duration: 'soon' (use e.g. 30m, 4h, 3d, 2w)"
    assert [str(p) for p in problems] == [
        f"tix.yaml:6: sla policy 'q': target first_response is {info.value}",
        "tix.yaml:6: sla policy 'q': target resolution is not a duration of more than 0: '0m'",
    ]


@pytest.mark.parametrize("text, utc", [
    ("2026-11-24T21:00", "2026-11-24T14:00:00+00:00"),
    ("2026-11-24 21:00", "2026-11-24T14:00:00+00:00"),
    ("2026-11-24", "2026-11-23T17:00:00+00:00"),  # local midnight
    ("2026-11-24T21:00+08:00", "2026-11-24T13:00:00+00:00"),  # an explicit offset wins
    ("2026-11-24T14:00Z", "2026-11-24T14:00:00+00:00"),
])
def test_parse_local(text, utc):
    assert parse_local(text, "Asia/Jakarta").isoformat() == utc


def test_one_local_time_parser_behind_every_option(sla_store, timeline, tix):
    bad = "not a date and time: 'tomorrow' (use e.g. 2026-11-24T21:00, 2026-11-24 21:00, 2026-11-24, " \
          "or with an offset: 2026-11-24T21:00+07:00)"
    n = timeline.create(jkt(2026, 11, 24, 8, 0), priority="urgent")  # policy urgent: 24/7 calendar
    assert tix("sla", str(n), "--now", "tomorrow").stderr == f"Error: --now: {bad}\n"
    assert tix("rules", "test", "-", "--at", "tomorrow").stderr == f"Error: --at: {bad}\n"
    # --now without an offset is a time in the site's zone (Asia/Jakarta), like --at
    for now in ("2026-11-24 08:30", "2026-11-24T08:30", "2026-11-24T01:30Z"):
        out = json.loads(tix("sla", str(n), "--now", now, "-f", "json", check=0).stdout)
        assert out["clocks"][0]["business_seconds_used"] == 1800, now
