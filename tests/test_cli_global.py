"""Issue 15, items 5 and 14: global options anywhere, `--version`, `init`'s next steps, help
examples one per line, sentences instead of bare numbers, phones printed one way, and an
audit trail whose columns line up."""
from __future__ import annotations

import csv
import io
import json
import re
import shlex

import pytest

from tix import __version__


def test_global_options_after_the_command(tix, store, tmp_path):
    """`tix update … --as ops-bot` (a README example) and `tix fetch -v` were refused."""
    tix("new", "Paket belum sampai", "--team", "billing", "--as", "ani", check=0)
    assert store.events_for(ticket=1)[0]["actor"] == "user:ani"
    done = tix("update", "team:billing", "--set", "priority=high", "--yes", "--as", "ops-bot", check=0)
    assert done.stdout == "changed 1 of 1 matching ticket (1 event)\n"
    assert store.events_for(ticket=1)[-1]["actor"] == "user:ops-bot"
    fetched = tix("fetch", "-v", check=0)
    assert "fetched: 0 stored" in fetched.stdout
    assert tix("config", "check", "-v", check=0).stdout == "configuration ok\n"
    other = tmp_path / "other"
    tix("init", str(other), check=0)
    tix("new", "elsewhere", "--store", str(other), check=0)
    rows = json.loads(tix("list", "-f", "json", "-s", str(other), check=0).stdout)
    assert [r["subject"] for r in rows] == ["elsewhere"]
    # before the command still works, and a value after the command wins
    rows = json.loads(tix("--store", str(store.root), "list", "-f", "json", "--store", str(other), check=0).stdout)
    assert [r["subject"] for r in rows] == ["elsewhere"]


def test_a_global_option_is_not_taken_from_an_option_value(tix, store):
    """`-m -v` is a message "-v", not verbosity: the options are parsed by Click, not moved around."""
    tix("new", "x", check=0)
    tix("note", "1", "-m", "-v", check=0)
    assert store.events_for(ticket=1)[-1]["data"]["body"] == "-v"
    tix("note", "1", "-m", "-tag:vip", check=0)  # nor is it a negated filter term
    assert store.events_for(ticket=1)[-1]["data"]["body"] == "-tag:vip"
    tix("new", "y", check=0)
    rows = json.loads(tix("list", "--sort", "-number", "-age:1d+", "-f", "json", check=0).stdout)
    assert [r["number"] for r in rows] == [2, 1]  # `-number` sorts; `-age:1d+` negates a term
    proc = tix("list", "-age")  # what a shell leaves of `-age>3d`: not `--assignee ge`
    assert proc.returncode == 2 and "'age' alone is not a filter term" in proc.stderr


def test_version(tix):
    assert tix("--version", check=0).stdout == f"tix {__version__}\n"


def test_init_prints_next_steps_at_a_terminal_or_with_v(tix, tmp_path):
    out = tix("init", str(tmp_path / "hd"), "-v", check=0).stdout
    assert out.startswith(f"Created a tix store in {tmp_path / 'hd'}. Next steps:\n")
    assert f"export TIX_STORE={tmp_path / 'hd'}\n" in out and "tix config check" in out
    assert tix("init", str(tmp_path / "quiet"), check=0).stdout == ""  # a script stays silent


def _help_commands():
    import typer.main

    from tix.cli import app

    stack = [((), typer.main.get_command(app))]
    while stack:
        path, cmd = stack.pop()
        subs = getattr(cmd, "commands", None)
        if subs:
            stack += [(path + (name,), sub) for name, sub in subs.items()]
        else:
            yield path


def example_lines(help_text: str) -> list[str]:
    """The example commands of a `--help` text: the indented lines under `Example(s):`."""
    lines, out, inside = help_text.splitlines(), [], False
    for line in lines:
        if re.match(r"^\s*Examples?:\s*$", line):
            inside = True
        elif inside and line.strip() and not line.startswith("    "):
            inside = False
        elif inside and line.strip():
            out.append(line.strip())
    return out


@pytest.mark.parametrize("path", sorted(_help_commands()), ids=" ".join)
def test_help_examples_are_one_per_line(tix, path):
    """They ran together into one wrapped paragraph (`Examples:   tix update … "no\\n  answer…"   tix list …`)."""
    text = tix(*path, "--help", check=0).stdout
    examples = example_lines(text)
    assert examples, text
    for line in examples:
        assert re.match(r"^(tix |[A-Z_]+=\S* |\*/\d+ )", line), line
        shlex.split(line, comments=True)  # quotes balanced: not cut by wrapping


def test_phones_print_one_way(tix):
    tix("new", "Paket", "--phone", "0812-3456-789", "--name", "Sari", check=0)
    table = tix("contact", "list", check=0).stdout
    assert "+628123456789" in table
    rows = list(csv.DictReader(io.StringIO(tix("contact", "list", "-f", "csv", check=0).stdout)))
    assert rows[0]["phones"] == "+628123456789"
    assert "phones: +628123456789" in tix("contact", "show", "1", check=0).stdout
    assert "<+628123456789>" in tix("show", "1", check=0).stdout
    # JSON is data: the stored digits, as `tix sql` and the event log have them
    assert json.loads(tix("contact", "list", "-f", "json", check=0).stdout)[0]["phones"] == ["628123456789"]


def test_history_columns_line_up_and_nothing_is_cut_mid_word(tix, store):
    tix("new", "Paket", check=0)
    tix("note", "1", "-m", "The courier says the parcel left Surabaya on Monday and should arrive by Thursday "
                           "afternoon at the latest", "--as", "a-rather-long-login-name", check=0)
    with store.writing(actor="sla:urgent", via="tix escalate") as b:
        b.emit("sla.step", ticket=1, data={"policy": "urgent", "target": "first_response", "state": "breached",
                                           "step": "breach", "key": "1:first_response:0:breach", "cycle": 0,
                                           "actions": "raise priority, tag sla-breached, notify lead@example.co.id"})
    out = tix("show", "1", "--history", check=0).stdout
    lines = out.split("History:\n", 1)[1].splitlines()
    starts = {line.index(via) for line, via in zip(lines, ("tix new", "tix note", "tix escalate"), strict=True)}
    assert len(starts) == 1, lines  # the command column starts at one place
    types = {line.index(t) for line, t in zip(lines, ("ticket.created", "ticket.note", "sla.step"), strict=True)}
    assert len(types) == 1, lines
    note, step = lines[1], lines[2]
    assert note.endswith("left Surabaya on Monday and…") and step.endswith("…")
    full = ("policy: urgent, target: first_response, state: breached, step: breach, "
            "key: 1:first_response:0:breach, cycle: 0, actions: raise priority, tag sla-breached, notify …")
    shown = step.split("sla.step", 1)[1].strip().rstrip("…")
    assert full.startswith(shown) and full[len(shown)] in " ,:", step  # cut between words, never inside one


def test_each_command_line_builds_only_its_own_module_and_the_same_command():
    """`tix report backlog` imports and builds the report module only (issue 16: building every
    command cost more than a report's query); the command it gets is the one `tix --help` lists."""
    import typer.main

    from tix.cli import MODULES, OWNERS, app, app_for, new_app

    full = typer.main.get_command(app).commands
    owners = {name: m for m in MODULES for name in typer.main.get_command(new_app((m,))).commands}
    assert owners == OWNERS  # every command has its module, and only that one
    tickets = {c for c, m in OWNERS.items() if m == "tickets"}
    for argv, want in ((["report", "backlog"], {"report"}),
                       (["-s", "/x", "-vv", "list", "status:open"], tickets),
                       (["--as=ani", "note", "1", "-m", "x"], tickets),
                       (["--as", "ani", "whoami"], {"audit", "whoami"}),
                       (["--help"], set(full)), (["nosuch"], set(full)), ([], set(full))):
        built = typer.main.get_command(app_for(argv)).commands
        assert set(built) == want, argv
        for name in built:
            assert [p.name for p in built[name].params] == [p.name for p in full[name].params]
