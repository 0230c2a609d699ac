"""The HTML report as a person sees it: escaped, self-contained, drawn by headless Chromium."""
from __future__ import annotations

import io
import re

import pytest
from PIL import Image

from tests.plugins.reports import NOW, XSS, screenshot
from tix.reports import render, run_report


def _html(store, name="weekly", **kw) -> str:
    result = run_report(store, name, week="2026-W47", now=NOW, **kw)
    out = io.StringIO()
    render(result, "html", out, template_dirs=[store.path("templates")])
    return out.getvalue()


def test_customer_text_is_escaped(report_store):
    html = _html(report_store)
    assert XSS not in html
    assert "<td>&lt;script&gt;alert(1)&lt;/script&gt;</td>" in html


def test_self_contained_with_inline_svg_charts(report_store):
    html = _html(report_store, locale="en")
    assert "<script" not in html.replace("&lt;script", "")
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # nothing fetched from a network
    assert not re.search(r"<link\b", html)
    svgs = re.findall(r"<svg\b", html)
    assert len(svgs) == 3  # trend, response-time distribution, heat map (SLA: no policy)
    assert "No SLA policy is configured." in html
    assert "@media print" in html


def test_a_store_template_overrides_the_builtin(report_store):
    (report_store.path("templates") / "report_weekly.j2").write_text(
        "<p>{{ report.title }}: {{ sections[0].metrics[0].value }} {{ '<b>' }}</p>")
    assert _html(report_store, locale="en") == "<p>Weekly report: 7 &lt;b&gt;</p>"


@pytest.mark.slow
def test_chromium_screenshot_is_not_blank(report_store, tmp_path):
    page = tmp_path / "weekly.html"
    page.write_text(_html(report_store), encoding="utf-8")
    png = screenshot(page, tmp_path / "weekly.png", tmp_path)
    img = Image.open(png).convert("RGB")
    assert img.size == (1200, 2000)
    colours = img.getcolors(maxcolors=1 << 20)
    assert len(colours) > 200  # text, cards, tables and charts: far more than a blank page
    pixels = img.width * img.height
    white = sum(n for n, c in colours if c == (255, 255, 255))
    assert white < 0.95 * pixels
    blue = sum(n for n, (r, g, b) in colours if b > 150 and r < 90 and g < 140)  # chart bars and lines
    assert blue > 2000
    # the header and first cards are drawn at the top of the page
    top = img.crop((0, 0, img.width, 400)).getcolors(maxcolors=1 << 20)
    assert len(top) > 50


def test_a_zero_percent_bar_is_drawn():
    """A 0% bar was invisible: a team with no clock met looked like a team with no data."""
    from types import SimpleNamespace

    from tix.reports.charts import draw
    from tix.reports.labels import Labels

    rows = [{"team": "billing", "compliance": 0.0}, {"team": "support", "compliance": 0.95}]
    section = SimpleNamespace(name="by_team", title="SLA", labels={}, dicts=lambda: rows,
                              chart=SimpleNamespace(kind="hbar", x="team", y=["compliance"]))
    svg = draw(section, SimpleNamespace(labels=Labels("id"), locale="id"))
    import re

    (red,) = re.findall(r'<path d="([^"]+)"[^>]*style="fill: #c8423b', svg)  # the 0% bar, in red
    xs = [float(x) for x in re.findall(r"[ML] ([\d.]+) ", red + " ")]
    assert max(xs) - min(xs) > 1.5  # visibly wide
    assert "0,0%" in svg
