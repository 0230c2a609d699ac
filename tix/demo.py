"""`tix demo`: the main job on bundled sample data, no server needed.

Creates a store from the example configuration, points its email channel at the bundled
sample maildir (read-only: `after: keep`) and spools the bundled WhatsApp webhook
payloads, then runs what cron runs: fetch, route, escalate, and the weekly report
(written as HTML into the store) and prints the backlog.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from tix.store import Store
from tix.store.log import utcnow


@dataclass
class DemoResult:
    store: Store
    lines: list[str] = field(default_factory=list)
    report_path: Path | None = None


def run_demo(directory: Path, fmt: str = "table", out=None, now: datetime | None = None) -> DemoResult:
    """Build the demo store at `directory` (replacing an earlier demo there) and run the pipeline."""
    directory = Path(directory)
    if (directory / "tix.yaml").exists() and (directory / "events").is_dir():
        shutil.rmtree(directory)
    store = Store.init(directory)
    _add_demo_channels(store)
    now = now or utcnow()
    result = DemoResult(store)
    _stage_fetch(store, now, result)
    _stage_route(store, now, result)
    _stage_escalate(store, now, result)
    now = max(now, utcnow())  # the stages' events carry the clock's time, which has moved on since
    _stage_report(store, now, result)
    if out is not None:
        for line in result.lines:
            out.write(line + "\n")
        out.write("\n")
        _print_backlog(store, fmt, out, now)
    return result


def _add_demo_channels(store: Store) -> None:
    from tix.channels.mail.maildir import DEMO_SOURCE
    from tix.channels.whatsapp.spool import load_demo

    cfg = store.path("tix.yaml")
    text = cfg.read_text(encoding="utf-8").rstrip("\n")
    # the calendar of rules' business_hours (after-hours auto-replies), among the two declared below
    text = text.replace("settings:\n", "settings:\n  business_calendar: office    # added by `tix demo`\n", 1)
    text += ("\n\n# Added by `tix demo`: the bundled sample mailbox, read without changing it.\n"
             "channels:\n"
             f"  - name: {DEMO_SOURCE['name']}\n"
             f"    type: maildir\n"
             f"    path: {DEMO_SOURCE['path']}\n"
             f"    after: keep\n"
             f"    address: {DEMO_SOURCE['address']}\n"
             f"    team: support\n"
             + DEMO_SLA)
    cfg.write_text(text, encoding="utf-8")
    store.reload_config()
    load_demo(store)


DEMO_SLA = """
# Added by `tix demo`: office hours with Indonesian holidays, and two SLA policies.
calendars:
  always:
    timezone: Asia/Jakarta
    hours: 24/7
    holidays: false
  office:
    timezone: Asia/Jakarta
    hours:
      mon-fri: ["08:00-12:00", "13:00-17:00"]
      sat: ["09:00-13:00"]
    holidays: {country: ID}
sla:
  warn_at: 75%
  policies:
    - name: urgent
      when: {priority: [urgent, high]}
      calendar: always
      targets: {first_response: 1h, next_response: 2h, resolution: 8h}
      steps:
        - {name: breach, on: breached, raise_priority: true, tag: sla-breached}
    - name: normal
      calendar: office
      targets: {first_response: 8h, next_response: 8h, resolution: 40h}
      steps:
        - {name: breach, on: breached, raise_priority: true, tag: sla-breached}
"""


def _stage_fetch(store: Store, now, result: DemoResult) -> None:
    from tix.ingest import fetch_all

    report = fetch_all(store, now=now)
    result.lines.append(f"fetch:    {report.stored} messages stored, {report.duplicates} duplicates, "
                        f"{report.quarantined} quarantined (see `tix quarantine list`)")


def _stage_route(store: Store, now, result: DemoResult) -> None:
    from tix.rules.engine import route

    routed = route(store, now=now, record=False)
    result.lines.append(f"route:    {routed.routed} tickets routed ({routed.events} changes) by "
                        f"{len(list(store.path('rules').glob('*.yaml')))} rule files")


def _stage_escalate(store: Store, now, result: DemoResult) -> None:
    from tix.sla.escalate import escalate

    report = escalate(store, now=now)
    states = ", ".join(f"{n} {s}" for s, n in sorted(report.states.items())) or "no clocks"
    result.lines.append(f"escalate: {report.open_tickets} open tickets, {report.clocks} SLA clocks ({states}), "
                        f"{report.events_written} escalation events")


def _stage_report(store: Store, now, result: DemoResult) -> None:
    from tix.reports.render import render
    from tix.reports.run import run_report

    from tix.reports.params import iso_week_label

    # the demo's own week (its messages arrive now), not the last complete week
    week = iso_week_label(now.astimezone(ZoneInfo(store.config.setting("timezone"))).date())
    weekly = run_report(store, "weekly", {}, week=week, now=now)
    path = store.path("weekly.html")
    with open(path, "w", encoding="utf-8") as fh:
        render(weekly, "html", fh, template_dirs=[store.path("templates")])
    result.report_path = path
    result.lines.append(f"report:   weekly report written to {path}")


def _print_backlog(store: Store, fmt: str, out, now) -> None:
    from tix.reports.render import render
    from tix.reports.run import run_report

    render(run_report(store, "backlog", {}, now=now), fmt, out)
