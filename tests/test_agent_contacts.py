"""Issue 13 item 5: `tix contact set ID field=value…` (name, tier, language, tix.yaml contact_fields),
audited as events; filters (`contact.tier:vip`), rules (`contact.tier`, rules/30-pelanggan.yaml) and
SLA policies (`when: {tier: vip}`) use them."""
from __future__ import annotations

import orjson
import pytest

from tests.agentday import via, events, make_desk, run
from tests.plugins.email import add_config, make_mail


@pytest.fixture
def desk(store, tmp_path, tix):
    return make_desk(store, tmp_path, tix)


def contact(store, cid=1) -> dict:
    row = dict(store.read().contact(cid))
    row["fields"] = orjson.loads(row["fields"] or "{}")
    return row


def test_set_is_audited_like_a_ticket_change(desk, tix):
    run(tix, "contact", "set", "c1", "tier=vip", "language=en", "name=Sari Wulandari", "--why", "mitra sejak 2025",
        "--as", "ani")
    c = contact(desk)
    assert c["name"] == "Sari Wulandari" and c["fields"] == {"tier": "vip", "language": "en"}
    (ev,) = [e for e in events(desk, "contact.updated")]
    assert (ev["actor"], via(ev), ev["why"], ev["contact"]) == ("user:ani", "tix contact set", "mitra sejak 2025", 1)
    assert ev["data"] == {"set": {"fields.tier": "vip", "fields.language": "en", "name": "Sari Wulandari"},
                          "old": {"fields.tier": None, "fields.language": None, "name": "Sari"}}
    run(tix, "contact", "set", "1", "tier=vip")  # unchanged: no event
    run(tix, "contact", "set", "1", "tier=")  # cleared
    assert contact(desk)["fields"] == {"language": "en"} and len(events(desk, "contact.updated")) == 2
    desk.rebuild()  # the fold from the whole log agrees
    assert contact(desk)["fields"] == {"language": "en"}


def test_declared_contact_fields_and_bad_input(desk, tix):
    add_config(desk, "contact_fields:\n  member_since:\n    type: date\n  segment:\n    values: [retail, grosir]\n")
    run(tix, "contact", "set", "1", "member_since=2024-01-31", "segment=grosir")
    assert contact(desk)["fields"] == {"member_since": "2024-01-31", "segment": "grosir"}
    before = events(desk)
    for args, err in [
        (("tir=vip",), "unknown contact field 'tir' (did you mean 'tier'?); contact fields: name, tier, language, "
                       "member_since, segment (declare others under contact_fields: in tix.yaml)"),
        (("language=fr",), "invalid language 'fr'; language is one of: id, en"),
        (("segment=retai",), "invalid segment 'retai' (did you mean 'retail'?); segment is one of: retail, grosir"),
        (("member_since=kemarin",), "custom field 'member_since' must be date, got 'kemarin'"),
        (("tier",), "bad 'tier': use FIELD=VALUE; contact fields: name, tier, language, member_since, segment"),
        (("name=",), "a contact's name must not be empty"),
        (("tier=vip", "tier2=x"), None),
    ]:
        proc = run(tix, "contact", "set", "1", *args, check=2)
        assert err is None or proc.stderr == f"Error: {err}\n"
    assert run(tix, "contact", "set", "99", "tier=vip", check=1).stderr == "Error: contact 99 not found\n"
    assert events(desk) == before


def test_values_limit_ticket_custom_fields_too(desk, tix):
    add_config(desk, "custom_fields:\n  kanal:\n    values: [tokopedia, shopee]\n")
    run(tix, "set", "1", "kanal=shopee")
    proc = run(tix, "set", "1", "kanal=shope", check=2)
    assert proc.stderr == "Error: invalid kanal 'shope' (did you mean 'shopee'?); kanal is one of: tokopedia, shopee\n"


def test_bad_contact_fields_section_is_a_config_error(desk, tix):
    add_config(desk, "contact_fields:\n  umur:\n    type: integer\n    label: Umur\n")
    err = run(tix, "contact", "set", "1", "tier=vip", check=2).stderr
    assert "unknown contact_fields key 'label'" in err and "contact field 'umur': unknown type 'integer'" in err


def test_filters_select_by_contact_fields(desk, tix):
    run(tix, "new", "Tanya ongkir", "--channel", "email", "--email", "budi@pelanggan.example", "--name", "Budi")
    run(tix, "contact", "set", "1", "tier=vip")
    def numbers(*terms):
        return [r["number"] for r in orjson.loads(run(tix, "list", *terms, "-f", "json", "--sort", "number").stdout)]
    assert numbers("contact.tier:vip") == [1]
    assert numbers("-contact.tier:vip") == [2]
    assert numbers("contact.tier:none") == [2]
    assert numbers("contact.tier:vip,gold", "contact.name:Sari") == [1]
    assert numbers("contact.language:en") == []
    run(tix, "update", "contact.tier:vip", "--set", "priority=high", "--yes")  # bulk updates select the same way
    assert [desk.read().ticket(n)["priority"] for n in (1, 2)] == ["high", "normal"]
    proc = run(tix, "list", "contact.tier:", check=2)
    assert proc.stderr.startswith("Error: filter term contact.tier: needs a value")


def test_rules_and_sla_policies_use_the_tier(desk, tix):
    """rules/30-pelanggan.yaml tells admins to run `tix contact set ID tier=vip`: now it works."""
    add_config(desk, "calendars:\n  always:\n    timezone: Asia/Jakarta\n    hours: 24/7\n    holidays: false\n"
                     "sla:\n  policies:\n    - name: vip\n      when: {tier: vip}\n      calendar: always\n"
                     "      targets: {first_response: 30m}\n    - name: biasa\n      calendar: always\n"
                     "      targets: {first_response: 8h}\n")
    run(tix, "contact", "set", "1", "tier=vip")
    (desk.root / "templates" / "rules_notify_vip.txt.j2").write_text("Tier {{ contact.fields.tier }}\n")
    for n, frm in ((2, "Sari <sari@pelanggan.example>"), (3, "Budi <budi@pelanggan.example>")):
        desk.n += 1
        (desk.md / "new" / f"{desk.n:05d}.test").write_bytes(make_mail(subject=f"Pesanan ke-{n}", frm=frm))
    run(tix, "fetch", "--no-send")
    run(tix, "route", check=None)  # (the VIP rule's notification has no mail server to go to here)
    t2, t3 = desk.read().ticket(2), desk.read().ticket(3)
    assert "vip" in t2["tags"] and t2["priority"] == "high"
    assert "vip" not in t3["tags"] and t3["priority"] == "normal"
    # rule templates get contact fields as a mapping too
    assert [e["data"]["body"] for e in events(desk, "outbox.queued") if e["data"].get("ticket") == 2] == ["Tier vip\n"]
    sla = [orjson.loads(run(tix, "sla", str(n), "-f", "json").stdout) for n in (2, 3)]
    assert [s["policy"] for s in sla] == ["vip", "biasa"]


def test_contact_history_shows_who_changed_what(desk, tix):
    run(tix, "contact", "set", "1", "tier=vip", "--why", "mitra", "--as", "ani")
    out = run(tix, "contact", "show", "1", "--history").stdout
    assert "  tier: vip\n" in out
    (line,) = [x for x in out.splitlines() if "contact.updated" in x]
    assert line.split()[:3] == ["2026-11-20", "10:00", "user:ani"] and " tix contact set" in line
    assert line.split("contact.updated")[1].split() == ["fields.tier:", "None", "->", "vip", "why:", "mitra"]
    data = orjson.loads(run(tix, "contact", "show", "1", "--history", "-f", "json").stdout)
    assert [e["type"] for e in data["history"]] == ["contact.created", "contact.updated"]
