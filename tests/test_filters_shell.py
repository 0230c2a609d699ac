"""Issue 15, item 1 and 4: a filter language made for typing in a shell, read the same way by
`tix list` and `tix update`.

The reproductions: `tix update status:open idle>14d --set status=closed --dry-run` (then the
example of `tix update --help`) ran the filter `status:open idle` (a subject search) and the
shell wrote a file `14d`; `tix list age>3d` wrote a file `3d` and listed everything; the
README's `age:>3d` reached tix as `age:`. Now the common forms need no quotes, and what a
redirect leaves behind is an error showing the shell-safe form.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from tix.errors import UsageError
from tix.tickets import create_ticket
from tix.tickets.core import select
from tix.tickets.query import ALL_FIELDS, compile_filter

from .shell import files, sh

NOW = "2026-12-04T00:00:00Z"


@pytest.fixture
def dated(store, monkeypatch):
    """Four tickets created at known times (UTC; the site zone is Asia/Jakarta, +07:00)."""
    for ts, subject, prio, status in [
        ("2026-11-01T03:00:00Z", "one", "low", "open"),       # Sun 1 Nov 10:00 WIB
        ("2026-11-20T03:00:00Z", "two", "normal", "open"),    # 20 Nov
        ("2026-11-30T18:00:00Z", "three", "high", "open"),    # Tue 1 Dec 01:00 WIB: December in the site zone
        ("2026-12-03T06:00:00Z", "four", "urgent", "closed"),  # 3 Dec, closed
    ]:
        monkeypatch.setenv("TIX_NOW", ts)
        with store.writing(actor="user:t", via="test") as b:
            create_ticket(b, subject, priority=prio, status=status)
    monkeypatch.setenv("TIX_NOW", NOW)
    return store


def numbers(store, text: str) -> list[int]:
    return [r["number"] for r in select(store.read(), text, columns=("number",), sort="number")]


@pytest.mark.parametrize("text, expected", [
    ("age:3d+", [1, 2, 3]),                 # 3 days old or more
    ("age:-2d", [4]),                       # up to 2 days old
    ("age:1d..5d", [3]),                    # between, both ends included
    ("idle:3d+", [1, 2, 3]),
    ("created:2026-11-01..2026-11-30", [1, 2]),  # site-local days: #3 is 1 Dec 01:00 WIB
    ("created:2026-11", [1, 2]),            # a month
    ("created:2026-12-01", [3]),            # a day
    ("created:2026-11-20+", [2, 3, 4]),
    ("created:-2026-11-20", [1, 2]),        # up to and including that day
    ("created:2026-11-20T10:00+", [2, 3, 4]),  # 20 Nov 10:00 WIB is 03:00 UTC: #2 on the minute
    ("priority:high+", [3, 4]),
    ("priority:-normal", [1, 2]),
    ("priority:normal..high", [2, 3]),
    ("number:2..3", [2, 3]),
    ("number:3+", [3, 4]),
    ("number:-2", [1, 2]),
    ("-number:2..3", [1, 4]),
    ("is:any priority:urgent", [4]),
])
def test_ranges_need_no_quotes(dated, text, expected):
    assert numbers(dated, text) == expected


@pytest.mark.parametrize("old, new", [
    ("age>3d", "age:3d+"), ("age:>3d", "age:3d+"), ("'age>=3d'", "age:3d+"), ("age<2d", "age:-2d"),
    ("priority>=high", "priority:high+"), ("priority:<=normal", "priority:-normal"),
    ("created>=2026-11-20", "created:2026-11-20+"), ("number>2", "number:3+"),
])
def test_the_old_quoted_forms_still_work(dated, old, new):
    assert numbers(dated, old) == numbers(dated, new) and numbers(dated, new)


@pytest.mark.parametrize("field", ALL_FIELDS + ("order_id",))
def test_a_bare_field_name_is_an_error_showing_the_shell_safe_form(field):
    with pytest.raises(UsageError) as info:
        compile_filter(["status:open", field], custom_fields=("order_id",))
    msg = str(info.value)
    assert msg.startswith(f"'{field}' alone is not a filter term: a shell takes `{field}>…`")
    assert f"text:{field}" in msg
    safe = msg.split("; write ", 1)[1]
    assert ">" not in safe and "<" not in safe


@pytest.mark.parametrize("text, message", [
    ("age:", "age: has no value (did a shell take `age:>…` as a redirection and write a file?); "
             "write age:3d+ (3 days old or more) or age:-2h (up to 2 hours old)"),
    ("idle", "'idle' alone is not a filter term: a shell takes `idle>…` or `idle<…` as a redirection (`>` writes "
             "a file named after it); write idle:14d+ (no change for 14 days or more) or idle:-2h (changed in the "
             "last 2 hours). To search subjects for the word, write text:idle"),
    ("age:3d", "age:3d says neither more nor less: write age:3d+ (3d or more) or age:-3d (up to 3d)"),
    ("created:2026-11-01T09:00", "created:2026-11-01T09:00 is one instant: write created:2026-11-01T09:00+ "
                                 "(from then on) or created:-2026-11-01T09:00 (up to then)"),
    ("created:yesterday", "created needs a date (2026-11-01), a month (2026-11) or a time (2026-11-01T09:00), "
                          "got 'yesterday'; e.g. created:2026-11-01..2026-11-30"),
    ("priority:hihg+", "invalid priority 'hihg' (did you mean 'high'?); priority is one of: low, normal, high, urgent"),
])
def test_mistakes_name_the_shell_safe_form(text, message):
    with pytest.raises(UsageError) as info:
        compile_filter(text, now=datetime(2026, 12, 4, tzinfo=timezone.utc))
    assert str(info.value) == message


def test_a_bare_word_that_is_no_field_still_searches_subjects(dated):
    assert numbers(dated, "thr") == [3] and numbers(dated, "text:age") == []


def test_through_a_real_shell_a_redirected_filter_fails_and_writes_nothing(tmp_path, store):
    """The reproduction of the issue, typed into bash as the help text showed it."""
    work = tmp_path / "cwd"
    work.mkdir()
    with store.writing(actor="user:t", via="test") as b:
        create_ticket(b, "idle customer", status="open")
    end = store.log.end()
    proc = sh("tix update status:open idle>14d --set status=closed --dry-run", work)
    assert proc.returncode == 2 and "write idle:14d+" in proc.stderr, proc.stderr
    proc = sh("tix list age>3d", work)
    assert (proc.returncode, proc.stdout) == (2, "") and "write age:3d+" in proc.stderr
    proc = sh("tix list age:>3d", work)  # the README's old example
    assert proc.returncode == 2 and "age: has no value" in proc.stderr
    assert store.log.end() == end
    safe = sh("tix update status:open idle:14d+ --set status=closed --dry-run; tix list age:3d+ -tag:vip", work)
    assert safe.returncode == 0, safe.stderr
    assert files(work) == {"14d", "3d"}  # the shell wrote those for the broken forms; the safe forms wrote none


def _update_numbers(tix, *args) -> list[int]:
    out = tix("update", *args, "--set", "priority=urgent", "--dry-run", "-f", "json", check=0).stdout
    return [c["ticket"] for c in json.loads(out)["changes"]]


@pytest.mark.parametrize("args", [("team:billing",), ("team:billing", "--all"), ("team:billing", "status:closed"),
                                  ("team:billing", "is:any"), ("team:billing", "is:closed")])
def test_list_and_update_read_a_filter_the_same_way(tix, args):
    """Item 4: `tix list team:cs` showed open tickets, `tix update team:cs --set …` changed closed ones too."""
    tix("new", "open one", "--team", "billing", check=0)
    tix("new", "closed one", "--team", "billing", check=0)
    tix("new", "other team", "--team", "support", check=0)
    tix("close", "2", check=0)
    listed = [r["number"] for r in json.loads(tix("list", *args, "--sort", "number", "-f", "json", check=0).stdout)]
    assert _update_numbers(tix, *args) == listed
    assert listed == {"team:billing": [1], "--all": [1, 2], "status:closed": [2], "is:any": [1, 2],
                      "is:closed": [2]}[args[-1]]


def test_update_by_ids_takes_the_numbers_whatever_their_status(tix):
    tix("new", "a", check=0)
    tix("close", "1", check=0)
    done = tix("update", "--ids", "-", "--add-tag", "checked", input="1\n", check=0)
    assert done.stdout == "changed 1 of 1 matching ticket (1 event)\n"
