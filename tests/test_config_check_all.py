"""Issue 15, item 8: `tix config check` runs every check there is and lists every problem as
`file:line: message` (exit 2).

The reproduction: `tix config check` passed while `tix rules check` found 7 errors (`unknown
team 'billing'` after the teams were renamed), and while an environment variable a
notification needs was unset (it surfaced only at the first breach).
"""
from __future__ import annotations

import os

from tix.store import Store


def _line(path, needle: str) -> int:
    """The line of `path` holding `needle` (a whole line when `needle` ends with a colon)."""
    return next(i for i, ln in enumerate(path.read_text().splitlines(), 1)
                if (ln == needle if needle.endswith(":") else needle in ln))


BROKEN = """
outbound:
  host: smtp.example.co.id
  user: support@example.co.id
  password_env: TIX_TEST_UNSET_SMTP
  from: "Toko <support@example.co.id>"
  ca_file: /nonexistent/ca.pem
calendars:
  always:
    hours: 24/7
    holidays: false
  office:
    hours: {mon-fri: ["08:00-17:00"]}
    holidays: false
sla:
  policies:
    - name: urgent
      when: {priority: urgent}
      calendar: always
      targets: {first_response: 1h}
      steps:
        - {name: breach, on: breached, notify: {webhook: "env:TIX_TEST_UNSET_SLACK", slack: true}}
"""


def test_config_check_runs_every_check(store, tix, monkeypatch):
    monkeypatch.delenv("TIX_TEST_UNSET_SMTP", raising=False)
    monkeypatch.delenv("TIX_TEST_UNSET_SLACK", raising=False)
    cfg = store.path("tix.yaml")
    text = cfg.read_text().replace("  billing:\n", "  finance:\n").replace("[billing]", "[finance]")
    cfg.write_text(text.replace("[support, billing]", "[support, finance]") + BROKEN)
    store.path("templates", "macro_broken.txt.j2").write_text("Halo {% if %}\n")
    warning = store.path("templates", "sla_warning.j2")
    warning.write_text(warning.read_text().replace("{{ policy }}", "{{ polcy }}"))
    assert tix("rules", "check").returncode == 2  # what config check used to miss
    proc = tix("config", "check")
    assert proc.returncode == 2
    sets = [i for i, ln in enumerate(store.path("rules", "20-kategori.yaml").read_text().splitlines(), 1)
            if "team: billing" in ln]
    assign = _line(store.path("rules", "40-penugasan.yaml"), "assign: {team: billing")
    assert proc.stderr.splitlines() == [
        f"{cfg}:{_line(cfg, 'calendars:')}: several calendars and no settings: business_calendar; the "
        "business_hours of rules and auto-replies would use 'office' (the first not open around the clock): "
        "name it, e.g. business_calendar: office",
        f"rules/20-kategori.yaml:{sets[0]}: unknown team 'billing'; teams: finance, shipping, support",
        f"rules/20-kategori.yaml:{sets[1]}: unknown team 'billing'; teams: finance, shipping, support",
        f"rules/40-penugasan.yaml:{assign}: unknown team 'billing'; teams: finance, shipping, support",
        "templates/macro_broken.txt.j2:1: Expected an expression, got 'end of statement block'",
        f"templates/sla_warning.j2:{_line(warning, '{{ polcy }}')}: 'polcy' is undefined",
        f"{cfg}:{_line(cfg, 'password_env: TIX_TEST_UNSET_SMTP')}: outbound: password_env: environment variable "
        "TIX_TEST_UNSET_SMTP is not set",
        f"{cfg}:{_line(cfg, 'ca_file: /nonexistent')}: outbound: ca_file: /nonexistent/ca.pem does not exist",
        f"{cfg}:{_line(cfg, 'TIX_TEST_UNSET_SLACK')}: sla: env:TIX_TEST_UNSET_SLACK: environment variable "
        "TIX_TEST_UNSET_SLACK is not set",
    ]
    # with the variables set, those problems are gone (the check reads the environment it runs in)
    again = tix("config", "check", env={"TIX_TEST_UNSET_SMTP": "x", "TIX_TEST_UNSET_SLACK": "https://h.example/x"})
    assert "TIX_TEST_UNSET" not in again.stderr


def test_a_fresh_store_passes(tix):
    proc = tix("config", "check", "-v", check=0)
    # -v also warns that the example tix.yaml declares no agent logins (everyone is admin; issue 14)
    assert (proc.stdout, proc.stderr.split(":")[0]) == ("configuration ok\n", "warning")
    assert proc.stderr.count("\n") == 1 and "declares no agent login" in proc.stderr


def test_a_rule_template_that_fails_only_when_rendered(rk, tix):
    """It compiles, so `tix rules check` passes; its misspelt variable would fail the first auto-reply."""
    rk.template("ack.txt.j2", "Halo {{ custmer_name }},\nterima kasih.\n")
    rk.template("wa_only.txt.j2", "Pesan {{ message.wa_type }} diterima.\n")  # renders on WhatsApp only: fine
    path = rk.rules("""
        - name: ack
          if: {channel: email}
          then:
            - tag: [ack]
            - auto_reply: ack.txt.j2
        - name: wa
          if: {channel: whatsapp}
          then:
            - auto_reply: wa_only.txt.j2
            - notify: {email: ani, subject: "VIP {{ ticket.reff }}"}
        """)
    assert tix("rules", "check").returncode == 0
    proc = tix("config", "check")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"{os.path.relpath(path, rk.store.root)}:5: rule 'ack': templates/ack.txt.j2:1: 'custmer_name' is undefined",
        f"{os.path.relpath(path, rk.store.root)}:10: rule 'wa': template text:1: 'dict object' has no attribute "
        "'reff'",
    ]


def test_secret_files_and_sources(store, tix, tmp_path):
    secret = tmp_path / "smtp-password"
    secret.write_text("s3cret\n")
    secret.chmod(0o644)
    cfg = store.path("tix.yaml")
    cfg.write_text(cfg.read_text() + f"""
outbound:
  host: smtp.example.co.id
  user: support@example.co.id
  password_file: {secret}
  from: "Toko <support@example.co.id>"
channels:
  - name: old-mail
    type: mbox
    path: {tmp_path}/export.mbox
""")
    proc = tix("config", "check")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"{cfg}:{_line(cfg, 'export.mbox')}: channels[0] (old-mail): path: {tmp_path}/export.mbox does not exist",
        f"{cfg}:{_line(cfg, f'password_file: {secret}')}: outbound: password_file: {secret} must not be readable "
        "by others (chmod 600)",
    ]
    assert "s3cret" not in proc.stderr
    secret.chmod(0o600)
    (tmp_path / "export.mbox").write_text("")
    assert tix("config", "check").stderr == ""


def test_a_rule_webhook_variable(rk, tix, monkeypatch):
    monkeypatch.delenv("TIX_TEST_UNSET_HOOK", raising=False)
    path = rk.rules("""
        - name: alert
          then:
            - notify: {webhook: "env:TIX_TEST_UNSET_HOOK", subject: "#{{ ticket.number }}"}
        """)
    proc = tix("config", "check")
    rel = os.path.relpath(path, rk.store.root)
    assert proc.stderr.splitlines() == [
        f"{rel}:3: rule 'alert': webhook env:TIX_TEST_UNSET_HOOK: environment variable TIX_TEST_UNSET_HOOK is not set"]
    assert tix("config", "check", env={"TIX_TEST_UNSET_HOOK": "https://hooks.example/x"}).returncode == 0


def test_tix_yaml_problems_come_alone(store, tix):
    """The other checks read the store's files against tix.yaml: with it broken they would only add noise."""
    Store.init(store.root.parent / "s", config_text="teemz: {}\n")
    proc = tix("--store", str(store.root.parent / "s"), "config", "check")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"{store.root.parent / 's' / 'tix.yaml'}:1: unknown section 'teemz' "
                                        "(did you mean 'teams'?)"]
