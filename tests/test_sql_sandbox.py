"""SQL from a report file or `tix sql` reads the store and nothing else, and writes nothing (issue 12).

Report files ran without `tix sql`'s sandbox, so `COPY … TO` in a report could write any
file the cron user may write; `tix sql` could read DuckDB's temp directory under the
current directory. One `tix.store.views.sandbox` now locks every such connection.
"""
from __future__ import annotations

import pytest

from tix.errors import ConfigError, UsageError
from tix.reports.run import run_report
from tix.store.views import run_sql

HEAD = "-- title: Evil\n\n-- section: s\n"


@pytest.mark.parametrize("sql", [
    "COPY (SELECT 1 AS x) TO '{target}' (FORMAT csv);",
    "SELECT * FROM read_csv('/etc/passwd');",
    "SET enable_external_access = true;",
    "ATTACH '{target}' AS other;",
    "CREATE TABLE evil AS SELECT 1;",
])
def test_a_report_file_cannot_write_or_read_outside_the_store(store, tmp_path, sql):
    target = tmp_path / "outside.csv"
    (store.root / "reports" / "evil.sql").write_text(HEAD + sql.format(target=target) + "\n")
    with pytest.raises((ConfigError, UsageError)) as err:
        run_report(store, "evil")
    assert "evil.sql:" in str(err.value) or "not" in str(err.value)
    assert not target.exists()


def test_a_report_setup_section_may_create_temp_tables(store):
    (store.root / "reports" / "ok.sql").write_text(
        "-- title: Ok\n\n-- section: setup\n-- kind: setup\nCREATE OR REPLACE TEMP TABLE t AS SELECT 41 AS n;\n\n"
        "-- section: answer\nSELECT n + 1 AS answer FROM t;\n")
    result = run_report(store, "ok")
    assert [s.rows for s in result.sections] == [[(42,)]]


@pytest.mark.parametrize("sql", ["SELECT * FROM read_csv('/etc/passwd')",
                                 "SELECT * FROM glob('.tmp/*')",
                                 "SELECT current_setting('enable_external_access') AS v"])
def test_tix_sql_reads_only_the_store(store, sql):
    if "current_setting" in sql:
        assert run_sql(store, sql) == [{"v": False}]
        return
    with pytest.raises(UsageError):
        rows = run_sql(store, sql)
        assert rows == []  # glob outside the store is refused, or finds nothing
        raise UsageError("nothing found")
