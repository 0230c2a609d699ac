"""No byte a customer sent can act on an agent's terminal (issue 12, finding 5).

Subjects, bodies and names with ESC/OSC sequences (screen clear, window title, OSC 52
clipboard write, OSC 8 hidden link), bidi overrides and carriage returns reach `tix show`,
`tix list` and every other listing; the real `tix` process prints them as visible symbols.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tix.render import SafeStream, terminal_safe
from tix.store import Store
import tix.tickets as tickets

HOSTILE = ("Paket \x1b[2J\x1b]0;pwned\x07 \x1b]52;c;Y3VybCBldmlsfHNo\x07 "
           "\x1b]8;;https://evil.example\x1b\\klik\x1b]8;;\x1b\\ \u202egnp.exe\rX\x9b31m")


def test_terminal_safe_shows_controls_as_symbols():
    out = terminal_safe(HOSTILE + "\ttab\nline")
    assert not any(c in out for c in "\x1b\x07\r\x9b\u202e")
    assert "\u241b[2J" in out and out.endswith("\ttab\nline")


def test_safe_stream_passes_everything_else_through(tmp_path):
    with open(tmp_path / "out.txt", "w", encoding="utf-8") as fh:
        s = SafeStream(fh)
        s.write("Sari \x1b[31m\n")
        assert s.encoding == "utf-8" and s.passthrough is fh
    assert (tmp_path / "out.txt").read_text(encoding="utf-8") == "Sari \u241b[31m\n"


@pytest.mark.parametrize("args", [["show", "1"], ["show", "1", "--history"], ["list"], ["list", "--format", "csv"],
                                  ["list", "--format", "json"], ["contact", "list"]])
def test_the_tix_process_never_writes_a_control_sequence(store: Store, args):
    with store.writing(actor="user:test", via="test") as batch:
        cid = tickets.create_contact(batch, "Budi \x1b]0;owned\x07", ["budi@example.com"], [])
        tickets.create_ticket(batch, HOSTILE, contact=cid, body="isi \x1b[2J pesan")
    env = dict(os.environ, TIX_STORE=str(store.root))
    proc = subprocess.run([sys.executable, "-m", "tix", *args], capture_output=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    for stream in (proc.stdout, proc.stderr):
        assert b"\x1b" not in stream and b"\x07" not in stream and b"\r" not in stream
        assert b"\xc2\x9b" not in stream and "\u202e".encode() not in stream
    if args[0] in ("show", "list") and "--history" not in args and "json" not in args:
        assert "Paket".encode() in proc.stdout


@pytest.mark.parametrize(("cell", "out"), [
    ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"), ("@SUM(A1)", "'@SUM(A1)"), ("+cmd|x", "'+cmd|x"),
    ("-2+3+cmd|x", "'-2+3+cmd|x"), ("\tx", "'\tx"), ("+62 812-3456-789", "+62 812-3456-789"), ("-1.5", "-1.5"),
    ("Sari", "Sari"), (42, 42), (None, None),
])
def test_csv_cells_never_start_a_formula(cell, out):
    from tix.render import csv_cell

    assert csv_cell(cell) == out


def test_listing_csv_neutralises_a_formula_subject(store: Store):
    with store.writing(actor="user:test", via="test") as batch:
        tickets.create_ticket(batch, "=HYPERLINK(\"http://evil.example\",\"klik\")")
    env = dict(os.environ, TIX_STORE=str(store.root))
    proc = subprocess.run([sys.executable, "-m", "tix", "list", "--format", "csv"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "'=HYPERLINK(" in proc.stdout and ",=HYPERLINK" not in proc.stdout
