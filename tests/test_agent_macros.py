"""Issue 13 item 4: macros as a feature: `tix macro list|show|preview`; templates get ticket,
contact and fields as real mappings, agent as an object from tix.yaml, locale-aware dates, and
template errors name the file and the real line."""
from __future__ import annotations

import pytest

from tests.agentday import events, make_desk, run

MACRO = """Halo {{ contact.name }},

pesanan {{ ticket.fields.order_id }} ({{ fields.marketplace }}) tercatat {{ ticket.created_at | date }}.
{{ agent }} / {{ agent.email }}
{{ agent.signature }}
"""


@pytest.fixture
def desk(store, tmp_path, tix):
    d = make_desk(store, tmp_path, tix)
    (d.root / "templates" / "macros").mkdir(exist_ok=True)
    (d.root / "templates" / "macros" / "pesanan.txt").write_text(MACRO)
    run(tix, "set", "1", "order_id=INV-1001", "marketplace=tokopedia")
    return d


def test_fields_agent_and_dates_in_a_macro(desk, tix):
    out = run(tix, "macro", "preview", "pesanan", "1", "--as", "ani").stdout
    assert out == ("Halo Sari,\n\npesanan INV-1001 (tokopedia) tercatat 20 November 2026.\n"
                   "Ani Lestari / ani@example.co.id\nSalam,\nAni Lestari, Layanan pelanggan\n")
    run(tix, "contact", "set", "1", "language=en")  # the customer's language sets the macro's locale
    out = run(tix, "macro", "preview", "pesanan", "1", "--as", "budi").stdout
    assert "tercatat November 20, 2026.\nBudi Santoso / budi@example.co.id\n\n" in out


def test_reply_with_a_macro_sends_what_preview_shows(desk, tix):
    shown = run(tix, "macro", "preview", "pesanan", "1", "--as", "ani").stdout
    run(tix, "reply", "1", "--macro", "pesanan", "--no-send", "--as", "ani")
    (ev,) = events(desk, "message.sent")
    assert ev["data"]["text"] == shown and ev["data"]["template"] == "pesanan"


def test_list_and_show(desk, tix):
    out = run(tix, "macro", "list", "-f", "csv").stdout.splitlines()
    assert out[0] == "name,where,path"
    assert "pesanan,site,templates/macros/pesanan.txt" in out
    assert "terima-kasih,site,templates/macros/terima-kasih.txt.j2" in out  # tix init copied the examples
    (desk.root / "templates" / "macros" / "minta-foto.txt.j2").unlink()  # then the package's own copy
    assert "minta-foto,package,templates/macros/minta-foto.txt.j2" in run(tix, "macro", "list", "-f", "csv").stdout
    assert run(tix, "macro", "show", "pesanan").stdout == "# templates/macros/pesanan.txt\n" + MACRO
    for name in ("terima-kasih", "minta-foto"):  # the examples render for a real ticket, in both locales
        assert "Sari" in run(tix, "macro", "preview", name, "1", "--as", "ani").stdout


@pytest.mark.parametrize("text,error", [
    ("Halo,\n\n{{ ticket.fields.nomor }}\n", "templates/macros/rusak.txt:3: 'dict object' has no attribute 'nomor'"),
    ("Halo,\n{% if %}\n", "templates/macros/rusak.txt:2: Expected an expression, got 'end of statement block'"),
    ("a\nb\nc\n{{ agent.umur }}\n", "templates/macros/rusak.txt:4: 'tix.macros.AgentInfo object' has no "
                                    "attribute 'umur'"),
])
def test_template_errors_name_the_file_and_the_real_line(desk, tix, text, error):
    (desk.root / "templates" / "macros" / "rusak.txt").write_text(text)
    before = len(events(desk))
    assert run(tix, "macro", "preview", "rusak", "1", check=2).stderr == error + "\n"
    assert run(tix, "reply", "1", "--macro", "rusak", "--no-send", check=2).stderr == error + "\n"
    assert len(events(desk)) == before


def test_unknown_macro_or_ticket(desk, tix):
    proc = run(tix, "macro", "show", "pesana", check=2)
    assert proc.stderr.startswith("Error: no macro 'pesana' (did you mean 'pesanan'?); macros: minta-foto, pesanan, ")
    assert run(tix, "macro", "preview", "pesanan", "7", check=1).stderr == "Error: ticket #7 not found\n"
