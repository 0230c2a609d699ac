"""One sandboxed Jinja2 environment (tix.templates) for every template: a template that reaches for
Python internals fails with one line naming its file and line, and runs nothing."""
from __future__ import annotations

import io

import pytest

from tests.plugins.reports import NOW, XSS
from tests.plugins.sla import Timeline, jkt
from tix import outbox, rules
from tix.reports import render, run_report
from tix.sla.escalate import escalate
from tix.macros import render_macro
from tix.templates import TemplateFailed, environment

ESCAPES = {
    "mro": ("{{ ''.__class__.__mro__ }}", "access to attribute '__class__' of 'str' object is unsafe."),
    "globals": ("{{ cycler.__init__.__globals__ }}", "access to attribute '__init__' of 'type' object is unsafe."),
}


@pytest.fixture(params=sorted(ESCAPES))
def escape(request):
    return ESCAPES[request.param]


def test_auto_reply_template(rk, escape):
    rk.template("evil.txt.j2", "Halo,\n" + escape[0] + "\n")
    rk.rules("""
        - name: ack
          then:
            - auto_reply: evil.txt.j2
        """)
    n = rk.message(subject="Pesanan saya")
    result = rules.route(rk.store)
    assert result.errors == [f"rules/50-test.yaml:1: rule 'ack' failed on ticket #{n}: "
                             f"TemplateFailed: templates/evil.txt.j2:2: {escape[1]}"]
    assert rk.events("message.sent") == [] and rk.events("rule.auto_reply") == []


def test_macro(store, escape):
    store.path("templates", "macros").mkdir(exist_ok=True)
    store.path("templates", "macros", "evil.txt").write_text("Halo {{ ticket.subject }}\n\n" + escape[0] + "\n")
    from tix.tickets import create_ticket

    with store.writing(actor="user:ani") as batch:
        n = create_ticket(batch, "Paket belum sampai")
    reader = store.read()
    with pytest.raises(TemplateFailed) as info:
        render_macro(store, reader, reader.ticket(n), "evil", "user:ani")
    assert str(info.value) == f"templates/macros/evil.txt:3: {escape[1]}"


def test_notification(sla_store, escape):
    # A notification whose template is refused fails alone (issue 11's failure isolation):
    # it is listed, given up, with the sandbox's one-line reason; nothing of it is sent.
    sla_store.path("templates", "sla_warning.j2").write_text("Subject: SLA\n\n" + escape[0] + "\n")
    Timeline(sla_store).create(jkt(2026, 11, 23, 9, 0), priority="urgent")
    report = escalate(sla_store, now=jkt(2026, 11, 23, 9, 50), flush_outbox=False)
    (line,) = report.errors
    assert line.endswith(f"templates/sla_warning.j2:3: {escape[1]}")
    (item,) = outbox.items(sla_store, dead=True)
    assert item["status"] == "dead" and item["error"].endswith(f"templates/sla_warning.j2:3: {escape[1]}")


def test_report(report_store, escape):
    report_store.path("templates", "report_weekly.j2").write_text("<p>{{ report.title }}</p>\n" + escape[0])
    result = run_report(report_store, "weekly", week="2026-W47", now=NOW)
    with pytest.raises(TemplateFailed) as info:
        render(result, "html", io.StringIO(), template_dirs=[report_store.path("templates")])
    assert str(info.value) == f"templates/report_weekly.j2:2: {escape[1]}"


def test_html_escapes_customer_data_and_text_does_not(report_store, tmp_path):
    result = run_report(report_store, "weekly", week="2026-W47", now=NOW)
    out = io.StringIO()
    render(result, "html", out, template_dirs=[report_store.path("templates")])
    assert XSS not in out.getvalue() and "&lt;script&gt;alert(1)&lt;/script&gt;" in out.getvalue()
    (tmp_path / "t.txt.j2").write_text("{{ x }}\n")
    (tmp_path / "t.html").write_text("{{ x }}\n")
    env = environment(tmp_path)
    assert env.get_template("t.txt.j2").render(x=XSS) == XSS + "\n"  # a text mail is not HTML
    assert XSS not in env.get_template("t.html").render(x=XSS)  # an HTML notification is escaped


def test_one_environment_per_directory_list(tmp_path):
    assert environment(tmp_path) is environment(str(tmp_path))
    assert environment(tmp_path) is not environment(tmp_path, autoescape=True)
    assert environment(tmp_path).filters["duration"](5400) == "1h30m"
    assert environment().get_template("sla_warning.j2")  # the package's examples come last


def test_compiled_templates_are_kept_and_an_edited_one_compiles_again(tmp_path, monkeypatch):
    """Issue 16: compiled templates are kept in the user's cache directory (the weekly HTML
    report compiled its template on every run); an edited template is never served stale,
    and a cache that cannot be written is no cache."""
    from tix.templates import _environment, render as render_template

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    site = tmp_path / "templates"
    site.mkdir()
    (site / "a.txt.j2").write_text("one {{ x }}")
    _environment.cache_clear()
    assert render_template(environment(site), "a.txt.j2", {"x": 1}) == "one 1"
    kept = list((tmp_path / "cache" / "tix" / "jinja-text").iterdir())
    assert len(kept) == 1 and kept[0].stat().st_mode & 0o077 == 0
    (site / "a.txt.j2").write_text("two {{ x }}")
    _environment.cache_clear()  # a new run
    assert render_template(environment(site), "a.txt.j2", {"x": 2}) == "two 2"
    (tmp_path / "ro").write_text("a file, not a directory")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "ro"))
    _environment.cache_clear()
    assert render_template(environment(site), "a.txt.j2", {"x": 3}) == "two 3"
    _environment.cache_clear()
