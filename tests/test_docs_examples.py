"""Issue 15, "done when": every example command in the README, in crontab.example and in every
`--help` text runs through a real shell (`bash -c`) against a store with the tickets and
contacts the examples name, and none fails unexpectedly or leaves a stray file behind (as
`tix list age>3d` left a file `3d`).

Each example runs on its own copy of one seeded store, in its own empty working directory;
the files it may create are the ones it names (`--out F`, `-o F`, `> F`, `tix init DIR`,
`--dir DIR`). The few examples that cannot succeed in a test are listed with the reason.
"""
from __future__ import annotations

import contextlib
import io
import re
import shutil
from pathlib import Path

import pytest

from .shell import files, sh

REPO = Path(__file__).resolve().parent.parent

# Examples that are not run here (each is tested elsewhere), and why.
SKIP = {
    "tix webhook serve": "a server: it runs until stopped (tests/test_whatsapp_webhook.py runs it)",
}
# Examples that run but end with a documented non-zero exit in a test store: prefix -> (code, reason).
EXPECTED_EXIT = {
    "tix import": (2, "an export (or an IMAP source) the test store does not have"),
    "tix quarantine show 5b8d2c0e41a7": (1, "an entry id of someone else's quarantine"),
    "tix split 1042 --messages": (2, "message seqs of someone else's ticket (tests/test_merge_split.py splits)"),
}
# Commands an example needs to have run before it: prefix -> setup lines.
SETUP = {
    "tix reopen 1042": ["tix close 1042"],
    "tix attachment 1042 1": ["tix reply 1042 -m Terlampir --attach pesan.eml"],
    "tix attachment 1042 pesan.eml": ["tix reply 1042 -m Terlampir --attach pesan.eml"],
}
# Paths in examples that mean "your server": mapped into the test's temp dir ({tmp}) or its store ({store}).
PATHS = {"/srv/helpdesk": "{tmp}/helpdesk", "/srv/tix": "{store}", "/tmp/tix-demo": "{tmp}/tix-demo"}

_CRON = re.compile(r"^(?:[\d*/,-]+\s+){5}(?=\S)")
_COMMAND = re.compile(r"^(?:[A-Z_]+=\S*\s+)*tix\s")


def _commands(lines) -> list[str]:
    out = []
    for line in lines:
        line = _CRON.sub("", line.strip())
        if _COMMAND.match(line):
            out.append(line)
    return out


def readme_examples() -> list[str]:
    """Commands in the README's ```sh and plain ``` blocks (not yaml), and in crontab.example."""
    lines, lang = [], None
    for line in (REPO / "README.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            lang = line[3:].strip() if lang is None else None
        elif lang in ("sh", "bash", ""):
            lines.append(line)
    return _commands(lines) + _commands((REPO / "crontab.example").read_text(encoding="utf-8").splitlines())


def help_examples() -> list[str]:
    """The commands under `Example(s):` of every `tix … --help`."""
    from tix.cli import command

    group, out, stack = command(), [], [()]
    while stack:
        path = stack.pop()
        cmd = group
        for name in path:
            cmd = cmd.commands[name]
        if getattr(cmd, "commands", None):
            stack += [(*path, name) for name in cmd.commands]
            continue
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            group.main(args=[*path, "--help"], prog_name="tix", standalone_mode=False)
        out += _commands(_example_block(buf.getvalue()))
    return out


def _example_block(text: str) -> list[str]:
    lines, inside = [], False
    for line in text.splitlines():
        if re.match(r"^\s*Examples?:\s*$", line):
            inside = True
        elif inside and line.strip() and not line.startswith("    "):
            inside = False
        elif inside and line.strip():
            lines.append(line)
    return lines


EXAMPLES = sorted(set(readme_examples()) | set(help_examples()))


def test_the_examples_are_found():
    assert len(EXAMPLES) > 40
    for needle in ("tix list status:open team:billing age:3d+ -tag:vip", "tix update status:pending idle:14d+",
                   "tix fetch; tix route", "tix report weekly --week 2026-W47"):
        assert any(e.startswith(needle) for e in EXAMPLES), needle


# -- the seeded store ------------------------------------------------------------------------------
EML = b"""From: Rina <rina@pelanggan.example>
To: support@toko.example
Subject: Minta refund pesanan INV-1001
Date: Tue, 24 Nov 2026 10:15:00 +0700
Message-ID: <refund-1@pelanggan.example>

Halo, saya minta pengembalian dana untuk pesanan INV-1001.
"""


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """A store with tickets #1..#1042 (#1042 an email ticket of contact 12), contacts 1..31,
    an SMTP server on loopback for replies and mailed reports, and the files examples read."""
    from tix.store import Store
    from tix.tickets import create_ticket
    from tix.tickets.contacts import create_contact

    from .plugins.email import SmtpServer

    smtp = SmtpServer().start()
    root = tmp_path_factory.mktemp("docs") / "store"
    store = Store.init(root)
    with open(root / "tix.yaml", "a", encoding="utf-8") as fh:
        fh.write("\n" + smtp.outbound_yaml())
    store.reload_config()
    with store.writing(actor="user:seed", via="test") as b:
        contacts = [create_contact(b, name=f"Pelanggan {i}", emails=[f"pelanggan{i}@example.net"])
                    for i in range(1, 32)]
        for n in range(1, 1043):
            create_ticket(b, f"Pesanan {n}", channel="email", contact=contacts[11] if n == 1042 else None,
                          team="billing" if n % 3 == 0 else "support", priority="low" if n % 4 == 0 else "normal")
    store.rebuild()
    inputs = tmp_path_factory.mktemp("inputs")
    (inputs / "samples").mkdir()
    (inputs / "samples" / "refund.eml").write_bytes(EML)
    (inputs / "pesan.eml").write_bytes(EML)
    shutil.copy(REPO / "tests/data/whatsapp/from-docs/webhooks/text_basic.json", inputs / "wa.json")
    try:
        yield root, inputs
    finally:
        smtp.stop()


def _allowed(line: str) -> list[str]:
    """The paths an example says it writes (relative to its working directory; a directory with
    everything in it)."""
    return [name for name in re.findall(r"(?:--out|-o|>|--dir|\binit)\s+(\S+)", line) if not name.startswith("/")]


def _stray(new: set[str], allowed: list[str]) -> list[str]:
    return sorted(p for p in new if not any(p == a or p.startswith(a + "/") for a in allowed))


def _not_run_here(line: str) -> bool:
    return any(line.startswith(prefix) or f"{prefix} " in line for prefix in SKIP)


def test_only_the_listed_examples_are_left_out():
    left_out = [line for line in EXAMPLES if _not_run_here(line)]
    assert left_out and all("webhook serve" in line for line in left_out)


@pytest.mark.parametrize("line", [line for line in EXAMPLES if not _not_run_here(line)])
def test_example_runs_in_a_real_shell(seeded, tmp_path, line):
    root, inputs = seeded
    store = tmp_path / "store"
    shutil.copytree(root, store)
    work = tmp_path / "cwd"
    shutil.copytree(inputs, work)
    before = files(work)
    for old, new in PATHS.items():
        line = line.replace(old, new.format(tmp=tmp_path, store=store))
    env = {"TIX_STORE": str(store), "TIX_NOW": None}
    for prefix, setup in SETUP.items():
        if line.startswith(prefix):
            for cmd in setup:
                assert sh(cmd, work, env).returncode == 0, cmd
    proc = sh(line, work, env, input="")
    expected = next((code for prefix, (code, _why) in EXPECTED_EXIT.items() if line.startswith(prefix)), 0)
    assert proc.returncode == expected, (line, proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    stray = _stray(files(work) - before, _allowed(line))
    assert not stray, (line, stray)
