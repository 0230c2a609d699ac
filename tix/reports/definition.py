"""Report definition files: a DuckDB SQL file with a small header, parsed and checked.

A report file looks like this::

    -- title: Backlog
    -- title.id: Tiket terbuka
    -- description: Open tickets by team, priority and status, with aging buckets.
    -- param: team text = ''         Only this team (empty: all teams)
    -- param: since date = monday-28d Start of the period, a date in the site time zone
    -- label: open_tickets = Open tickets | Tiket terbuka

    -- section: by_team
    -- title: Open tickets by team
    -- chart: hbar x=team y=open_tickets
    SELECT team, count(*) AS open_tickets FROM tickets
    WHERE status IN ('new', 'open', 'pending') AND ($team = '' OR team = $team)
    GROUP BY ALL ORDER BY 2 DESC;

Header lines are `-- key: value` comments before the first `-- section:` (keys are
lowercase; other comments are free text). Keys: `title`, `description` (each with an
optional `.id`/`.en` translation), `param` (`NAME TYPE = DEFAULT  help`; types text, int,
float, bool, date, timestamp; a default with spaces, or an empty one, is quoted: `''`), `label`
(`column = English | Indonesian`). A file without any `-- section:` line is one section named
`main`.

Section lines: `section` (name), `title`, `kind` (`table`; `metrics` for headline
numbers with columns metric, value, previous and optionally good = 'up'/'down', shown with
their change; `chart` for a section shown only as its chart in HTML; `setup` for a
statement that only prepares, e.g. `CREATE TEMP TABLE open_now AS …`, so that the later
sections read a small table instead of scanning `tickets` again), `chart`
(`bar|hbar|line|heatmap x=COL y=COL[,COL] [value=COL]`), `requires` (views the section
needs, e.g. `sla`: when one is missing the section shows a note instead of failing),
`limit` (rows shown in tables; the JSON/CSV output keeps all).

Parameters are bound as `$name`, never pasted. Besides the declared ones every report may
use `$now` (UTC), `$prev_since`/`$prev_until` (the period of the same length before
`since`/`until`) and `$tz`. Macros available in the SQL: `local_ts(ts)` (naive UTC -> site
time), `utc_ts(local)` (the reverse), `iso_week(ts)` ('2026-W47' in the site zone), `hours_between(a, b)`,
`days_between(a, b)`, `excluded(tags)` (a ticket that `reports: exclude_tags` keeps out of figures).

Every problem is reported as `file:line: message` (ConfigError, exit 2).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from tix.config import check_keys, suggest
from tix.errors import ConfigError, Problem

PARAM_TYPES = ("text", "int", "float", "bool", "date", "timestamp")
DERIVED_PARAMS = ("now", "prev_since", "prev_until", "tz")
HEADER_KEYS = ("title", "description", "param", "label")
SECTION_KEYS = ("section", "title", "kind", "chart", "requires", "limit", "label")
KINDS = ("table", "metrics", "chart", "setup")
CHARTS = ("bar", "hbar", "line", "heatmap")

_DIRECTIVE = re.compile(r"^--\s*([a-z][a-z_]*)(?:\.([a-z]{2}))?\s*:\s?(.*?)\s*$")
_PARAM = re.compile(r"^([A-Za-z_]\w*)\s+([a-z]+)\s*=\s*('(?:[^']|'')*'|\S+)\s*(.*)$")
# Strings, quoted identifiers and comments are skipped when looking for $params.
_SQL_NOISE = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/", re.S)
_SQL_PARAM = re.compile(r"\$([A-Za-z_]\w*)")


@dataclass
class Param:
    name: str
    type: str
    default: str
    help: str = ""
    line: int = 0


@dataclass
class Chart:
    kind: str
    x: str
    y: list[str]
    value: str | None = None


@dataclass
class Section:
    name: str
    sql: str
    line: int  # file line of the first line of `sql`
    titles: dict[str, str] = field(default_factory=dict)
    kind: str = "table"
    chart: Chart | None = None
    requires: list[str] = field(default_factory=list)
    limit: int | None = None
    params: list[str] = field(default_factory=list)  # $names the SQL uses
    labels: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass
class ReportDef:
    name: str
    path: Path
    titles: dict[str, str]
    descriptions: dict[str, str]
    params: dict[str, Param]
    sections: list[Section]
    labels: dict[str, dict[str, str]]  # column -> {"en": …, "id": …}
    builtin: bool = False

    def title(self, locale: str) -> str:
        return _pick(self.titles, locale) or self.name

    def description(self, locale: str) -> str:
        return _pick(self.descriptions, locale)


def _pick(texts: dict[str, str], locale: str) -> str:
    return texts.get(locale) or texts.get("en") or next(iter(texts.values()), "")


def parse_file(path: Path, builtin: bool = False) -> ReportDef:
    """Read and check a report file; raise ConfigError with every `file:line: message`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(str(path), None, f"cannot read report: {exc}")]) from None
    return parse(text, path, builtin)


def parse(text: str, path: Path, builtin: bool = False) -> ReportDef:
    fname = str(path)
    problems: list[Problem] = []
    lines = text.splitlines()
    chunks = _split_sections(lines)
    report = ReportDef(path.stem, path, {}, {}, {}, [], {}, builtin)
    header_end = chunks[0][0] if chunks else len(lines)
    _parse_header(lines[:header_end], report, fname, problems)
    if not chunks:
        body_start = _first_sql_line(lines, 0)
        chunks = [(None, body_start)] if body_start is not None else []
    for i, (start, _) in enumerate(chunks):
        end = chunks[i + 1][0] if i + 1 < len(chunks) else len(lines)
        section = _parse_section(lines, start, end, report, fname, problems)
        if section is not None:
            report.sections.append(section)
    if not report.sections and not problems:
        problems.append(Problem(fname, 1, "report has no SQL statement"))
    _check_names(report, fname, problems)
    if problems:
        raise ConfigError(problems)
    return report


def _split_sections(lines: list[str]) -> list[tuple[int, int]]:
    """(index of each `-- section:` line, same) in file order."""
    out = []
    for i, line in enumerate(lines):
        m = _DIRECTIVE.match(line.strip())
        if m and m.group(1) == "section":
            out.append((i, i))
    return out


def _first_sql_line(lines: list[str], start: int) -> int | None:
    for i in range(start, len(lines)):
        s = lines[i].strip()
        if s and not s.startswith("--"):
            return i
    return None


def _parse_header(lines: list[str], report: ReportDef, fname: str, problems: list[Problem]) -> None:
    for i, raw in enumerate(lines):
        line = raw.strip()
        if not line.startswith("--"):
            continue
        m = _DIRECTIVE.match(line)
        if not m:
            continue
        key, lang, value = m.groups()
        where = i + 1
        if key not in HEADER_KEYS:
            problems += check_keys([key], HEADER_KEYS, fname, line=where, noun="header key")
        elif key == "title":
            report.titles[lang or "en"] = value
        elif key == "description":
            report.descriptions[lang or "en"] = value
        elif key == "param":
            _parse_param(value, where, report, fname, problems)
        elif key == "label":
            _parse_label(value, where, report.labels, fname, problems)


def _parse_param(value: str, line: int, report: ReportDef, fname: str, problems: list[Problem]) -> None:
    m = _PARAM.match(value)
    if not m:
        problems.append(Problem(fname, line, "param must read: NAME TYPE = DEFAULT  help text "
                                             "(an empty default is written '')"))
        return
    name, ptype, default, help_text = m.groups()
    if default.startswith("'"):
        default = default[1:-1].replace("''", "'")
    if ptype not in PARAM_TYPES:
        problems.append(Problem(fname, line, f"param {name}: unknown type {ptype!r}{suggest(ptype, PARAM_TYPES)}; "
                                             f"types: {', '.join(PARAM_TYPES)}"))
        return
    if name in DERIVED_PARAMS:
        problems.append(Problem(fname, line, f"param {name}: ${name} is provided by tix and cannot be declared"))
        return
    if name in report.params:
        problems.append(Problem(fname, line, f"param {name} declared twice"))
        return
    report.params[name] = Param(name, ptype, default, help_text.strip(), line)
    if default:
        from tix.reports.params import ParamError, convert_default

        try:
            convert_default(report.params[name])
        except ParamError as exc:
            problems.append(Problem(fname, line, f"param {name}: {exc}"))


def _parse_label(value: str, line: int, labels: dict, fname: str, problems: list[Problem]) -> None:
    col, sep, texts = value.partition("=")
    if not sep or not col.strip():
        problems.append(Problem(fname, line, "label must read: column = English | Indonesian"))
        return
    en, _, id_ = texts.partition("|")
    labels[col.strip()] = {"en": en.strip(), "id": (id_ or en).strip()}


def _parse_section(lines, start, end, report, fname, problems) -> Section | None:
    if start is None:  # the whole file is one section
        start_sql = _first_sql_line(lines, 0)
        section = Section("main", "", start_sql + 1)
        body_from = start_sql
    else:
        section = Section("", "", start + 1)
        body_from = _directives(lines, start, end, section, fname, problems)
    sql_lines = lines[body_from:end] if body_from is not None else []
    sql = "\n".join(sql_lines).strip()
    if not sql or all(not ln.strip() or ln.strip().startswith("--") for ln in sql_lines):
        problems.append(Problem(fname, start + 1 if start is not None else 1,
                                f"section {section.name!r} has no SQL statement"))
        return None
    section.sql = "\n".join(sql_lines)
    section.line = body_from + 1
    _check_sql(section, fname, problems)
    return section


def _directives(lines, start, end, section: Section, fname, problems) -> int | None:
    """Read the `-- key: value` lines of a section; return the index where its SQL starts."""
    i = start
    while i < end:
        line = lines[i].strip()
        if line and not line.startswith("--"):
            return i
        m = _DIRECTIVE.match(line) if line else None
        if m:
            _directive(m.groups(), i + 1, section, fname, problems)
        i += 1
    return None


def _directive(groups, line: int, section: Section, fname: str, problems: list[Problem]) -> None:
    key, lang, value = groups
    if key not in SECTION_KEYS:
        problems += check_keys([key], SECTION_KEYS, fname, line=line, noun="section key")
    elif key == "section":
        if not re.fullmatch(r"[A-Za-z_][\w-]*", value):
            problems.append(Problem(fname, line, f"section name must be a word, got {value!r}"))
        section.name = value
    elif key == "title":
        section.titles[lang or "en"] = value
    elif key == "kind":
        if value not in KINDS:
            problems.append(Problem(fname, line, f"unknown kind {value!r}; kinds: {', '.join(KINDS)}"))
        section.kind = value
    elif key == "chart":
        section.chart = _parse_chart(value, line, fname, problems)
    elif key == "requires":
        section.requires = [v.strip() for v in value.replace(",", " ").split()]
    elif key == "limit":
        if not value.isdigit():
            problems.append(Problem(fname, line, f"limit must be a number, got {value!r}"))
        else:
            section.limit = int(value)
    elif key == "label":
        _parse_label(value, line, section.labels, fname, problems)


def _parse_chart(value: str, line: int, fname: str, problems: list[Problem]) -> Chart | None:
    kind, *opts = value.split()
    if kind not in CHARTS:
        problems.append(Problem(fname, line,
                                f"unknown chart {kind!r}{suggest(kind, CHARTS)}; charts: {', '.join(CHARTS)}"))
        return None
    spec = {}
    for opt in opts:
        k, sep, v = opt.partition("=")
        if not sep or k not in ("x", "y", "value"):
            problems.append(Problem(fname, line, f"chart option must be x=, y= or value=, got {opt!r}"))
            return None
        spec[k] = v
    if "x" not in spec or "y" not in spec or (kind == "heatmap" and "value" not in spec):
        need = "x=, y= and value=" if kind == "heatmap" else "x= and y="
        problems.append(Problem(fname, line, f"chart {kind} needs {need}"))
        return None
    return Chart(kind, spec["x"], spec["y"].split(","), spec.get("value"))


def _check_sql(section: Section, fname: str, problems: list[Problem]) -> None:
    """Parse the statement with DuckDB's parser: syntax errors with the file's line."""
    import duckdb

    try:
        statements = _parser().extract_statements(section.sql)
    except duckdb.Error as exc:
        problems.append(duckdb_problem(exc, fname, section.line))
        return
    if len(statements) != 1:
        problems.append(Problem(fname, section.line,
                                f"section {section.name!r} must hold exactly one SQL statement, "
                                f"found {len(statements)}"))
    stripped = _SQL_NOISE.sub(" ", section.sql)
    section.params = sorted(set(_SQL_PARAM.findall(stripped)))


_SPARE = None  # the connection statements are parsed with; it holds nothing (parsing creates no object)


def _parser():
    global _SPARE
    if _SPARE is None:
        _SPARE = _connect()
    return _SPARE


def _connect():
    """A report's connection runs on one thread: its sections are many small queries (tens of
    ms at a million tickets), where a second thread adds a tenth to the CPU time (the backlog:
    0.40 -> 0.36 s) and nothing to the wall time."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads = 1")
    return con


def spare_connection():
    """A DuckDB connection with nothing on it, for a report to run on: the one report files were
    parsed with (handed over once: the next parse opens another), or a new one. Opening a
    database costs more than most reports' queries."""
    global _SPARE
    con, _SPARE = _SPARE, None
    return con or _connect()


def _check_names(report: ReportDef, fname: str, problems: list[Problem]) -> None:
    seen: set[str] = set()
    known = set(report.params) | set(DERIVED_PARAMS)
    for s in report.sections:
        if s.name in seen:
            problems.append(Problem(fname, s.line, f"section {s.name!r} appears twice"))
        seen.add(s.name)
        for p in s.params:
            if p not in known:
                problems.append(Problem(fname, _line_of(s, "$" + p),
                                        f"unknown parameter ${p}{suggest(p, known)}; declare it with "
                                        f"`-- param: {p} text = DEFAULT`"))


def _line_of(section: Section, needle: str) -> int:
    for i, line in enumerate(section.sql.splitlines()):
        if needle in line:
            return section.line + i
    return section.line


_LINE_IN_ERROR = re.compile(r"\bLINE (\d+):")


def duckdb_problem(exc: Exception, fname: str, first_line: int) -> Problem:
    """A DuckDB error as `file:line: message`, the line mapped from the statement to the file."""
    text = str(exc)
    m = _LINE_IN_ERROR.search(text)
    line = first_line + int(m.group(1)) - 1 if m else first_line
    message = text.split("\n", 1)[0].strip()
    return Problem(fname, line, message)
