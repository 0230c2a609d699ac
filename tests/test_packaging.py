"""The installed package (not the source tree) carries what `tix init` and `tix demo` need."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_ships_examples_and_demo_data_and_runs_the_demo(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--disable-pip-version-check",
                    "-w", str(tmp_path / "dist"), str(REPO)], check=True, capture_output=True, timeout=600)
    wheel = next((tmp_path / "dist").glob("tix-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for required in ("tix/examples/rules/", "tix/examples/templates/", "tix/examples/reports/weekly.sql",
                     "tix/data/tix.example.yaml", "tix/data/demo/maildir/"):
        assert any(n.startswith(required) for n in names), required
    assert not [n for n in names if n.endswith(".whl") or "make_demo_maildir" in n or n.startswith("tests/")]
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check",
                    "--target", str(target), str(wheel)], check=True, capture_output=True, timeout=600)
    env = dict(os.environ, PYTHONPATH=str(target))
    env.pop("TIX_STORE", None)
    where = subprocess.run([sys.executable, "-c", "import tix; print(tix.__file__)"], env=env, cwd=tmp_path,
                           capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(target))
    proc = subprocess.run([sys.executable, "-m", "tix", "demo", "--dir", "demo"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "demo" / "rules").glob("*.yaml"))
    assert (tmp_path / "demo" / "reports" / "weekly.sql").is_file()
