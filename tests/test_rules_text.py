"""Keyword folding and regex safety (tix.rules.text), and the shipped example rules end to end."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from tix import rules
from tix.rules.text import Keywords, RegexBank, RegexRejected, Tokens, compile_regex, fold


def test_fold_is_case_accent_and_punctuation_insensitive():
    assert fold("Pengembalian  DANA!") == " pengembalian dana "
    assert fold("Café – crème") == " cafe creme "
    assert fold("") == " "


@pytest.mark.parametrize("text,expected", [
    ("minta REFUND ya", ["refund"]),
    ("refunded already", []),
    ("pengembalian-dana segera", ["pengembalian dana"]),
    ("dana pengembalian", []),
])
def test_keywords_whole_words_and_phrases(text, expected):
    assert Keywords(["refund", "pengembalian dana"]).found(Tokens(text)) == expected


def test_keywords_all_mode():
    kw = Keywords(["paket", "rusak parah"], "all")
    assert kw.test(Tokens("Paket datang RUSAK parah"))
    assert not kw.test(Tokens("paket rusak"))


@pytest.mark.parametrize("pattern,reason", [
    (r"(a)\1", "a backreference"),
    (r"(?P<x>a)(?P=x)", "a named backreference"),
    (r"foo(?=bar)", "a look-ahead or look-behind"),
    (r"(?<=a)b", "a look-ahead or look-behind"),
    (r"(?>a+)b", "an atomic group"),
    (r"a++b", "a possessive quantifier"),
])
def test_backtracking_constructs_are_rejected(pattern, reason):
    with pytest.raises(RegexRejected, match=f"uses {reason}, which needs backtracking"):
        compile_regex(pattern)


def test_catastrophic_pattern_runs_in_linear_time():
    """`(a+)+$` hangs a backtracking engine on 'aaaa…!'; RE2 answers at once."""
    r = compile_regex(r"(a+)+$")
    evil = "a" * 50_000 + "!"
    start = time.perf_counter()
    assert r.search(evil) is None
    bank = RegexBank()
    i = bank.add("body", r"(x+x+)+y")
    assert i not in bank.hits("body", "x" * 50_000)
    assert time.perf_counter() - start < 5  # a backtracking engine would take longer than the universe


def test_regex_bank_matches_every_pattern_of_a_field_in_one_pass():
    bank = RegexBank()
    a = bank.add("subject", r"INV-\d{4}")
    b = bank.add("subject", r"^re:")
    c = bank.add("subject", r"(?-i:URGENT)")
    assert bank.hits("subject", "Re: inv-2026 urgent") == {a, b}
    assert bank.hits("subject", "URGENT") == {c}


def test_shipped_examples_route_an_indonesian_mix(store):
    """The example rules that `tix init` copies, on the messages a small shop gets."""
    from tests.plugins.rules import RulesKit

    rk = RulesKit(store)
    night = datetime(2026, 11, 24, 15, 0, tzinfo=timezone.utc)  # 22:00 WIB
    refund = rk.message(subject="Minta pengembalian dana INV-10023", text="Mohon SEGERA diproses", name="Rina")
    ship = rk.message(subject="Paket belum sampai", text="resi JNE saya tidak bergerak", sender="joko@example.com")
    robot = rk.message(sender="noreply@bank.co.id", subject="Notifikasi pembayaran")
    spam = rk.message(subject="Slot gacor hari ini", sender="promo@spam.example")
    vip = rk.message(sender="owner@tokomitra.co.id", subject="Invoice bulan ini", text="cek pembayaran")
    wa = rk.message(channel="whatsapp", sender="6281234567890", subject="", text="halo kak", at=night)
    res = rules.route(store, now=night + timedelta(minutes=1))  # live: just after the WhatsApp message
    t = {n: rk.ticket(n) for n in (refund, ship, robot, spam, vip, wa)}
    assert (t[refund]["category"], t[refund]["team"], t[refund]["priority"]) == ("refund", "billing", "urgent")
    assert set(t[refund]["tags"]) == {"refund", "ada-nomor-pesanan", "mendesak"}
    assert t[refund]["assignee"] in ("budi", "dewa")
    assert (t[ship]["category"], t[ship]["team"], t[ship]["assignee"]) == ("pengiriman", "shipping", "citra")
    assert (list(t[robot]["tags"]), t[robot]["priority"], t[robot]["assignee"]) == (["otomatis"], "low", None)
    assert (list(t[spam]["tags"]), t[spam]["status"]) == (["spam"], "closed")
    assert (t[vip]["priority"], "vip" in t[vip]["tags"], t[vip]["category"]) == ("high", True, "pembayaran")
    assert t[wa]["team"] == "support" and t[wa]["assignee"] in ("ani", "citra", "dewa")
    acks = {e["ticket"] for e in rk.events("rule.auto_reply")}
    assert acks == {refund, ship, vip}  # email tickets from people; never the robot or the spammer
    notify = [e for e in rk.events("outbox.queued")]
    assert [e["data"]["target"] for e in notify] == ["ani@example.co.id"]
    assert "Tiket VIP" in notify[0]["data"]["body"]
    # WhatsApp after hours: this store has no whatsapp: section, so the reply cannot be composed
    assert res.errors == [f"rules/50-balasan-otomatis.yaml:12: rule 'di-luar-jam-kerja-whatsapp' failed on ticket "
                          f"#{wa}: UsageError: tix.yaml has no whatsapp: section; cannot send WhatsApp messages"]
