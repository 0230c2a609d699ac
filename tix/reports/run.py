"""Finding report files and running them against the store's DuckDB views."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from tix.config import Problem, suggest
from tix.errors import ConfigError, NotFound, UsageError
from tix.reports.definition import ReportDef, Section, duckdb_problem, parse_file, spare_connection
from tix.reports.labels import Labels
from tix.reports.params import Resolved, resolve
from tix.store import history
from tix.store.log import utcnow
from tix.store.views import names_used, sandbox, statements


def builtin_dir() -> Path:
    from tix.store import examples_dir

    return examples_dir() / "reports"


def report_files(store) -> dict[str, tuple[Path, bool]]:
    """name -> (path, is_builtin). The store's own `reports/` overrides and extends the built-ins.

    `tix init` copies the built-in reports into the store's `reports/` as examples. A copy
    nobody edited (its bytes are those of a built-in report as it was in some release, see
    `builtin-copies.txt`) does not override: the current built-in runs, so an upgrade's
    corrections reach every store. An edited copy is the site's own report.
    """
    found: dict[str, tuple[Path, bool]] = {}
    for directory, builtin in ((builtin_dir(), True), (store.path("reports"), False)):
        if directory.is_dir():
            for path in sorted(directory.glob("*.sql")):
                if not builtin and path.stem in found and _unedited_copy(path):
                    continue
                found[path.stem] = (path, builtin)
    return found


def _unedited_copy(path: Path) -> bool:
    import hashlib

    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return False
    return digest in builtin_copies()


def builtin_copies() -> frozenset[str]:
    """sha256 of every released version of the built-in report files."""
    text = (Path(__file__).with_name("builtin-copies.txt")).read_text(encoding="utf-8")
    return frozenset(line.split()[0] for line in text.splitlines() if line.strip() and not line.startswith("#"))


def load_report(store, name: str) -> ReportDef:
    files = report_files(store)
    if name not in files:
        raise NotFound(f"no report {name!r}{suggest(name, files)}; reports: {', '.join(sorted(files)) or '(none)'}")
    path, builtin = files[name]
    return parse_file(path, builtin)


def list_reports(store, locale: str | None = None) -> list[dict]:
    """Every report with its title, description, parameters and where it comes from.

    A report file that does not parse is listed with its error instead of hiding the rest.
    """
    locale = locale or store.config.setting("locale")
    rows = []
    for name, (path, builtin) in sorted(report_files(store).items()):
        try:
            rep = parse_file(path, builtin)
        except ConfigError as exc:
            rows.append({"name": name, "title": "", "description": f"error: {exc.problems[0]}",
                         "parameters": "", "source": str(path)})
            continue
        params = " ".join(f"{p.name}={p.default}" for p in rep.params.values())
        rows.append({"name": name, "title": rep.title(locale), "description": rep.description(locale),
                     "parameters": params, "source": "built-in" if builtin else str(path)})
    return rows


@dataclass
class SectionResult:
    name: str
    title: str
    kind: str
    columns: list[str]
    rows: list[tuple]
    chart: object = None
    note: str | None = None  # shown instead of the rows (e.g. no SLA policy configured)
    limit: int | None = None
    labels: dict = field(default_factory=dict)

    def dicts(self) -> list[dict]:
        return [dict(zip(self.columns, r, strict=True)) for r in self.rows]


@dataclass
class ReportResult:
    name: str
    title: str
    description: str
    locale: str
    timezone: str
    params: Resolved
    sections: list[SectionResult]
    generated_at: datetime
    source: Path
    labels: Labels = None
    chart_cache: Path | None = None  # where the HTML renderer keeps drawn charts (tix.reports.charts)

    def section(self, name: str) -> SectionResult:
        for s in self.sections:
            if s.name == name:
                return s
        raise KeyError(name)


def run_report(store, name: str, params: dict[str, str] | None = None, week: str | None = None,
               locale: str | None = None, now: datetime | None = None, con=None) -> ReportResult:
    """Run report `name` (a built-in or the store's own) and return its sections' rows.

    Args:
        params: `--param` values as given (strings), checked against the file's declarations.
        week: an ISO week such as '2026-W47' (site time zone) setting `since`/`until`.
        locale: 'id' or 'en' (default: the `locale` setting).
        now: the current time (tests pin it); default the clock.
        con: a DuckDB connection whose views are used as they are (the history views are
            added when missing); by default the store's views, the history up to the same
            log position, and the SLA clocks computed as of `now` (tix.reports.clocks).
    Raises:
        NotFound (no such report), UsageError (bad parameter), ConfigError (a problem in the
        report file, as `file:line: message`).
    """
    report = load_report(store, name)
    cfg = store.config
    tz = cfg.setting("timezone")
    locale = locale or cfg.setting("locale")
    _check_zone(tz)
    now = now or utcnow()
    params = _new_store_period(store, report, params or {}, week, tz, now)
    resolved = resolve(report, params, week, tz, now)
    own = con is None
    if own:
        # only the views the report's SQL names (and those they read); all of them when the
        # SLA clocks are computed (tix.reports.clocks reads several)
        only = names_used(*(s.sql for s in report.sections), *(r for s in report.sections for r in s.requires))
        if "sla" in only:
            only = None
        con = spare_connection()
        reader = store.read(con=con)  # (the tail's snapshot rows read on it: no second connection)
        con = reader.connect(con, only=only)
        history.register(con, store, upto=reader.end, only=only, reader=reader)
    elif "history" not in _views(con):
        history.register(con, store)
    prepare(con, tz)
    if own and _sla_configured(cfg) and any("sla" in s.requires for s in report.sections):
        # the clocks as of `now`, every cycle, from the same history as the other sections
        from tix.reports import clocks

        start = resolved.values.get("prev_since") or resolved.values.get("since") or resolved.values["now"]
        clocks.register(con, store, now.timestamp(), start)
    # the views and tables there are, for the sections that require some (asked only then:
    # a connection's first question to DuckDB's catalog costs about 10 ms)
    views = _views(con) if any(s.requires for s in report.sections) else set()
    sandbox(con, store)  # a report file reads the store and writes nothing (no COPY … TO)
    if not _sla_configured(cfg):
        views.discard("sla")  # the view exists but says nothing: say that no policy is configured
    sections = [_run_section(con, report, s, resolved, views, locale) for s in report.sections]
    sections = [s for s in sections if s.kind != "setup"]
    labels = Labels(locale, tz, report.labels, names=cfg.display_names())
    return ReportResult(report.name, report.title(locale), report.description(locale), locale, tz,
                        resolved, sections, now, report.path, labels, store.path("snapshot", "charts"))


def _new_store_period(store, report, params: dict, week: str | None, tz: str, now: datetime) -> dict:
    """A period report whose default ends at this week's Monday (the last complete week, or
    weeks) on a store whose first event is in the current week: the same length of time
    moved one week on, so it ends with the current week so far instead of showing only the
    time before the store began. Returns the params to use (unchanged when that does not apply)."""
    since, until = report.params.get("since"), report.params.get("until")
    if week or since is None or until is None or {"since", "until", "week"} & set(params):
        return params
    if str(until.default) != "monday" or not str(since.default).startswith("monday-"):
        return params
    from datetime import timedelta

    from tix.store.log import parse_ts

    local = now.astimezone(ZoneInfo(tz))
    monday = (local - timedelta(days=local.weekday())).date()
    first = next(store.log.read(), None)
    if first is not None and parse_ts(first[0]["ts"]).astimezone(ZoneInfo(tz)).date() < monday:
        return params
    start = resolve(report, {}, None, tz, now).since.date()
    return {**params, "since": (start + timedelta(days=7)).isoformat(),
            "until": (monday + timedelta(days=7)).isoformat()}


def _check_zone(tz: str) -> None:
    try:
        ZoneInfo(tz)
    except (KeyError, ValueError):
        raise UsageError(f"setting timezone: unknown time zone {tz!r}") from None


def prepare(con, tz: str) -> None:
    """Site-time macros: local_ts, utc_ts, iso_week, hours_between, days_between, and
    excluded(tags) (see definition.py)."""
    offset = fixed_offset(tz)
    con.execute("SET VARIABLE tix_tz = $tz", {"tz": tz})
    if offset is not None:
        # A zone without DST (Asia/Jakarta): adding the offset is exact and 50x faster than ICU.
        con.execute("SET VARIABLE tix_utc_offset = $o", {"o": offset})
        con.execute("CREATE OR REPLACE TEMP MACRO local_ts(ts) AS "
                    "CAST(ts AS TIMESTAMP) + to_seconds(getvariable('tix_utc_offset'))")
        con.execute("CREATE OR REPLACE TEMP MACRO utc_ts(ts) AS "
                    "CAST(ts AS TIMESTAMP) - to_seconds(getvariable('tix_utc_offset'))")
    else:
        con.execute("CREATE OR REPLACE TEMP MACRO local_ts(ts) AS "
                    "timezone(getvariable('tix_tz'), CAST(ts AS TIMESTAMPTZ))")
        con.execute("CREATE OR REPLACE TEMP MACRO utc_ts(ts) AS "
                    "CAST(timezone(getvariable('tix_tz'), CAST(ts AS TIMESTAMP)) AS TIMESTAMP)")
    con.execute("CREATE OR REPLACE TEMP MACRO iso_week(ts) AS strftime(local_ts(ts), '%G-W%V')")
    # a ticket that is not a customer's request (spam, automatic mail): `reports: exclude_tags`
    con.execute("CREATE OR REPLACE TEMP MACRO excluded(tags) AS "
                "list_has_any(coalesce(tags, []::VARCHAR[]), getvariable('tix_exclude_tags'))")
    con.execute("CREATE OR REPLACE TEMP MACRO hours_between(a, b) AS date_diff('second', a, b) / 3600.0")
    con.execute("CREATE OR REPLACE TEMP MACRO days_between(a, b) AS date_diff('second', a, b) / 86400.0")


def fixed_offset(tz: str) -> int | None:
    """The zone's UTC offset in seconds when it has had one offset since 1990, else None."""
    zone = ZoneInfo(tz)
    offsets = set()
    for year in range(1990, 2051):
        for month in (1, 4, 7, 10):
            offsets.add(datetime(year, month, 1, tzinfo=zone).utcoffset())
            if len(offsets) > 1:
                return None
    return int(next(iter(offsets)).total_seconds()) if offsets else 0


def _sla_configured(cfg) -> bool:
    sla = cfg.section("sla") or {}
    return bool(isinstance(sla, dict) and sla.get("policies"))


def _views(con) -> set[str]:
    rows = con.execute("SELECT view_name FROM duckdb_views() UNION SELECT table_name FROM duckdb_tables()").fetchall()
    return {r[0] for r in rows}


def _run_section(con, report: ReportDef, section: Section, resolved: Resolved, views: set[str],
                 locale: str) -> SectionResult:
    import duckdb

    title = section.titles.get(locale) or section.titles.get("en") or section.name.replace("_", " ").capitalize()
    result = SectionResult(section.name, title, section.kind, [], [], section.chart, None, section.limit,
                           section.labels)
    missing = [v for v in section.requires if v not in views]
    if missing:
        result.note = "no_sla" if missing == ["sla"] else "missing_view:" + missing[0]
        return result
    bound = {p: resolved.values[p] for p in section.params}
    try:
        statements(con, section.sql, temp_create=True)
    except UsageError as exc:
        raise ConfigError([Problem(str(report.path), section.line, str(exc))]) from None
    try:
        cur = con.execute(section.sql, bound)
        result.columns = [d[0] for d in cur.description]
        result.rows = cur.fetchall()
    except duckdb.Error as exc:
        raise ConfigError([duckdb_problem(exc, str(report.path), section.line)]) from None
    return result
