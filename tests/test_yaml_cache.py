"""Issue 16: what a YAML text parses to is kept in the user's cache, so a command that reads
tix.yaml imports no YAML library and parses nothing when the file has not changed; the data,
with its line numbers, is the same as a fresh parse."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from tix import yamlio
from tix.errors import ConfigError

TEXT = """\
settings:
  timezone: Asia/Jakarta
  locale: id
  act_within: 2d
teams:
  billing: {name: "Billing & refunds", members: [ana, budi]}
  "2026": plain
dates:
  2026-12-31: half day
  when: 2026-12-01T08:30:00+07:00
  naive: 2026-12-01 08:30:00
numbers: [1, -2, 3.5, .inf, 0x1f, null, true, false, ~]
blob: !!binary aGVsbG8=
nested:
  - - a
    - {b: [c, {d: e}]}
  - 12: twelve
    null: nothing
    true: yes
"""


def _lines(v):
    """The data with every line number, for comparing a cached parse with a fresh one."""
    if isinstance(v, yamlio.LineDict):
        return ("m", v.line, [(k, v.lines[k], _lines(x)) for k, x in v.items()])
    if isinstance(v, yamlio.LineList):
        return ("s", v.line, list(v.lines), [_lines(x) for x in v])
    return (type(v).__name__, v)


def _entries() -> list[Path]:
    d = Path(os.environ["XDG_CACHE_HOME"]) / "tix" / "yaml"
    return sorted(d.iterdir()) if d.exists() else []


def test_a_cached_parse_is_the_fresh_parse_with_its_lines():
    fresh = yamlio._parse(TEXT, "t.yaml")
    first = yamlio.loads(TEXT, "t.yaml")
    [entry] = _entries()
    assert entry.stat().st_mode & 0o777 == 0o600
    assert entry.parent.stat().st_mode & 0o777 == 0o700
    second = yamlio.loads(TEXT, "t.yaml")
    assert _lines(first) == _lines(second) == _lines(fresh)
    assert second["dates"][date(2026, 12, 31)] == "half day"
    assert second["dates"]["when"] == datetime(2026, 12, 1, 8, 30, tzinfo=timezone(timedelta(hours=7)))
    assert second["blob"] == b"hello"
    assert second["teams"].line_of("billing") == 6 and second["nested"][1].line_of(12) == 17
    second["teams"]["billing"]["members"].append("eve")  # each load is its own copy
    assert yamlio.loads(TEXT, "t.yaml")["teams"]["billing"]["members"] == ["ana", "budi"]


def test_a_second_load_imports_no_yaml_library(tmp_path):
    path = tmp_path / "tix.yaml"
    path.write_text(TEXT)
    code = ("import sys; from tix import yamlio; d = yamlio.load(sys.argv[1]); "
            "print(d['settings']['timezone'], 'yaml' in sys.modules)")
    runs = [subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True,
                           env=os.environ).stdout.split() for _ in range(2)]
    assert runs == [["Asia/Jakarta", "True"], ["Asia/Jakarta", "False"]]
    path.write_text(TEXT.replace("Asia/Jakarta", "Asia/Makassar"))  # an edit is parsed again
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True,
                         env=os.environ).stdout.split()
    assert out == ["Asia/Makassar", "True"]


@pytest.mark.parametrize("damage", [b"", b"\x00" * 64, b"garbage", b"\xe9(\x02\x00\x00\x00", "truncate"])
def test_a_damaged_entry_is_parsed_again_and_replaced(damage):
    yamlio.loads(TEXT, "t.yaml")
    [entry] = _entries()
    good = entry.read_bytes()
    entry.write_bytes(good[: len(good) // 2] if damage == "truncate" else damage)
    assert _lines(yamlio.loads(TEXT, "t.yaml")) == _lines(yamlio._parse(TEXT, "t.yaml"))
    assert entry.read_bytes() == good


def test_what_the_cache_cannot_hold_is_parsed_every_time():
    text = "a: !!set {x, y}\nb: !!omap [{k: 1}]\n"
    data = yamlio.loads(text)
    assert data["a"] == {"x", "y"} and data["b"] == [("k", 1)]
    assert _entries() == []


def test_a_syntax_error_is_not_cached_and_names_the_line():
    for _ in range(2):
        with pytest.raises(ConfigError) as err:
            yamlio.loads("a: 1\nb: [2\n", "bad.yaml")
        assert str(err.value).startswith("bad.yaml:")
    assert _entries() == []


def test_no_cache_directory_is_no_cache(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # a file where the directory would be
    assert yamlio.loads(TEXT)["settings"]["locale"] == "id"
