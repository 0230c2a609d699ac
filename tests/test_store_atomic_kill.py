"""kill -9 harness, bounded (issue 18): a few SIGKILLs per writing command at random moments.

After each kill, readers see the state before the command, the state after it, or (for a
command that commits in steps) whole steps; the next run completes, and the store then
equals an unkilled run's, ticket for ticket and event for event. The longer run is
`python bench/bench_crash.py` (its figures are in the closing note of issue 18).
"""
from __future__ import annotations

import pytest

from bench.bench_crash import COMMANDS, run_command


@pytest.mark.slow
@pytest.mark.parametrize("command", list(COMMANDS))
def test_sigkill_then_rerun_ends_where_an_unkilled_run_ends(tmp_path, command):
    out = run_command(tmp_path, command, tickets=3000, kills=3, seed=18, window=(0.4, 1.0))
    assert out.failures == []
    assert out.kills + out.finished == 3 and out.rerun_ok == 3
    assert out.kills >= 1, "no kill landed while the command ran: the window is wrong"
