"""Who may speak for an agent by email: reply tokens and Authentication-Results.

An agent who works from their own mail client (`mail_client: true` under `agents:`) gets
each ticket by mail (`tix.outbox.agentmail`) with a Reply-To address that carries a
per-ticket reply token in its `+tag`::

    support+t1042.ani.5311.k3v7q2mzx4b6c8dp@example.co.id
            |     |   |    '- signature: HMAC-SHA256(secret, "1042.ani.5311"), base32, 16 characters
            |     |   '- seq of the last event of the ticket the agent was sent
            |     '- the agent's login
            '- the ticket

A reply is the agent's only when all of these hold (`tix.ingest.agentmail` checks them,
and quarantines the mail with the reason of the first that fails):

1. From is the address of an agent with `mail_client: true`;
2. a recipient (To, Cc, Delivered-To, X-Original-To) carries a token for the reply
   address whose signature verifies under the store's secret, for that same agent;
3. when the message has an `Authentication-Results` header (RFC 8601) from the server
   named by `agent_mail.authserv_id` (the topmost such header: the one our own MX added),
   it shows `dkim=pass` with a signing domain (`header.d`) aligned with the From domain,
   or `spf=pass` with a `smtp.mailfrom` domain aligned with it (relaxed alignment: the
   same domain or a subdomain, either way). Headers from other servers are not trusted.

The secret is `agent_mail.secret_env` / `secret_file` (0600), else `state/agent-mail.key`
in the store (0600, made on first use under the store lock). Changing it voids every
token already sent: replies to older mail are quarantined.

Config (`agent_mail:` in tix.yaml)::

    agent_mail:
      reply_to: support@example.co.id     # the address whose +tag reaches a channels: mailbox
                                          # (default: the outbound from: address)
      secret_env: TIX_AGENT_MAIL_SECRET   # or secret_file: (chmod 600); default state/agent-mail.key
      authserv_id: mx.example.co.id       # trust Authentication-Results from this server only
      template: agent_mail.txt.j2         # templates/: the mail an agent gets
      summary: 6                          # messages of the conversation shown in it
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from email.utils import parseaddr

from tix.errors import Problem, UsageError

LOGIN_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")
TAG_RE = re.compile(r"t(\d{1,12})\.([a-z0-9_-]{1,32})\.(\d{1,15})\.([a-z2-7]{16})")
KEYS = {"reply_to": str, "secret_env": str, "secret_file": str, "authserv_id": str, "template": str,
        "summary": int}
DEFAULTS = {"template": "agent_mail.txt.j2", "summary": 6}
SECRET_FILE = ("state", "agent-mail.key")


class Refused(UsageError):
    """A mail that claims to come from an agent and is not let through; the message says why."""


# -- configuration --------------------------------------------------------------------------
def validate_section(node, fname: str) -> list[Problem]:
    """The `agent_mail:` section of tix.yaml: one Problem per mistake, with its line."""
    from tix.config import check_keys

    if not isinstance(node, dict):
        return [Problem(fname, getattr(node, "line", None), "agent_mail must be a mapping (reply_to, authserv_id, …)")]
    out = check_keys(node, KEYS, fname, "agent_mail", types=True, listing="keys")

    def at(key):
        return node.line_of(key) if hasattr(node, "line_of") else None

    if node.get("reply_to") and "@" not in parseaddr(str(node["reply_to"]))[1]:
        out.append(Problem(fname, at("reply_to"), "agent_mail: reply_to must be an address"))
    if isinstance(node.get("summary"), int) and not isinstance(node["summary"], bool) and node["summary"] < 0:
        out.append(Problem(fname, at("summary"), "agent_mail: summary must be 0 or more"))
    return out


def settings(config) -> dict:
    """`agent_mail:` with its defaults, and `reply_to` resolved (else the outbound from: address)."""
    spec = {**DEFAULTS, **dict(config.section("agent_mail", {}) or {})}
    base = spec.get("reply_to") or (config.section("outbound", {}) or {}).get("from") or ""
    spec["reply_to"] = parseaddr(str(base))[1].lower()
    return spec


def mail_agents(config) -> dict[str, object]:
    """The agents who work from their mail client, by lowercased email address."""
    return {a.email.strip().lower(): a for a in config.agents.values() if a.mail_client and "@" in a.email}


def secret(store, create: bool = False) -> bytes:
    """The key of the reply tokens (see the module docstring). With `create` (the caller holds
    the store lock), the store's key file is made when missing; else a missing one is a Refused."""
    from tix.config import read_secret
    from tix.store.files import atomic_write

    spec = store.config.section("agent_mail", {}) or {}
    value = read_secret(spec, "secret") if isinstance(spec, dict) else None
    if value:
        return value.encode()
    path = store.path(*SECRET_FILE)
    try:
        value = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        if not create:
            raise Refused(f"no reply-token secret yet ({path} is missing)") from None
        value = secrets.token_hex(32)
        atomic_write(path, value + "\n", mode=0o600)
        return value.encode()
    if os.stat(path).st_mode & 0o077:
        raise Refused(f"reply-token secret {path} must not be readable by others (chmod 600)")
    return value.encode()


# -- tokens ---------------------------------------------------------------------------------
def signature(key: bytes, ticket: int, agent: str, seq: int) -> str:
    mac = hmac.new(key, f"{int(ticket)}.{agent.lower()}.{int(seq)}".encode(), hashlib.sha256).digest()
    return base64.b32encode(mac[:10]).decode("ascii").lower()


def token(key: bytes, ticket: int, agent: str, seq: int) -> str:
    return f"t{int(ticket)}.{agent.lower()}.{int(seq)}.{signature(key, ticket, agent, seq)}"


def reply_address(base: str, tag: str) -> str:
    """`support@x` + tag -> `support+TAG@x`."""
    local, _, domain = base.rpartition("@")
    return f"{local}+{tag}@{domain}"


def find_tag(addresses, base: str) -> str | None:
    """The `+tag` of the first address that is `base` with a tag (case-insensitive), or None."""
    local, _, domain = base.lower().rpartition("@")
    if not local:
        return None
    for addr in addresses:
        a = str(addr or "").strip().lower()
        a_local, _, a_domain = a.rpartition("@")
        head, plus, tag = a_local.partition("+")
        if plus and head == local and a_domain == domain and tag:
            return tag
    return None


def check_token(key: bytes, tag: str) -> tuple[int, str, int]:
    """(ticket, agent login lowercased, seq) of a token whose signature verifies; else Refused."""
    m = TAG_RE.fullmatch(tag.lower())
    if m is None:
        raise Refused(f"the reply token {tag!r} is not one tix made")
    ticket, agent, seq, sig = int(m.group(1)), m.group(2), int(m.group(3)), m.group(4)
    if not hmac.compare_digest(sig, signature(key, ticket, agent, seq)):
        raise Refused("the reply token's signature does not verify (forged, or made with another secret)")
    return ticket, agent, seq


# -- Authentication-Results (RFC 8601) ----------------------------------------------------
_COMMENT = re.compile(r"\([^()]*\)")
_RESULT = re.compile(r"^\s*([a-z0-9_-]+)\s*=\s*([a-z]+)(.*)$", re.I | re.S)
_PROP = re.compile(r"([a-z0-9_-]+\.[a-z0-9_.-]+)\s*=\s*(\"[^\"]*\"|[^\s;]+)", re.I)


def parse_auth_results(value: str) -> tuple[str, list[tuple[str, str, dict]]]:
    """(authserv-id, [(method, result, {ptype.property: value})]) of one header value."""
    text = " ".join(_COMMENT.sub(" ", str(value)).split())
    parts = [p.strip() for p in text.split(";")]
    serv = parts[0].split()[0].lower() if parts and parts[0] else ""
    results = []
    for part in parts[1:]:
        m = _RESULT.match(part)
        if m is None:
            continue
        props = {k.lower(): v.strip('"').lower() for k, v in _PROP.findall(m.group(3))}
        results.append((m.group(1).lower(), m.group(2).lower(), props))
    return serv, results


def aligned(domain: str, other: str) -> bool:
    """Relaxed alignment: the same domain, or one a subdomain of the other."""
    a, b = domain.lower().strip(".").strip(), other.lower().strip(".").strip()
    return bool(a and b) and (a == b or a.endswith("." + b) or b.endswith("." + a))


def check_auth_results(values, authserv_id: str | None, from_addr: str) -> None:
    """Raise Refused when our server's Authentication-Results header shows no aligned pass.

    `values`: every Authentication-Results header of the message, top first. Only the first
    from `authserv_id` counts (a sender can write any header below ours); none: nothing to check.
    """
    if not authserv_id:
        return
    want = authserv_id.lower()
    for value in values:
        serv, results = parse_auth_results(value)
        if serv != want:
            continue
        domain = from_addr.rpartition("@")[2]
        for method, result, props in results:
            if result != "pass":
                continue
            if method == "dkim" and aligned(props.get("header.d") or props.get("header.i", "").rpartition("@")[2],
                                             domain):
                return
            if method == "spf" and aligned(props.get("smtp.mailfrom", "").rpartition("@")[2], domain):
                return
        shown = ", ".join(f"{m}={r}" for m, r, _p in results) or "no results"
        raise Refused(f"Authentication-Results from {want} shows no DKIM or SPF pass aligned with {domain} ({shown})")


# -- the agent's text ---------------------------------------------------------------------
_SIG = re.compile(r"^(-- ?|--|__+)$")


def strip_signature(text: str) -> str:
    """The text above the signature delimiter (`-- `, RFC 3676), trimmed."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if _SIG.match(line.rstrip("\r")):
            return "\n".join(lines[:i]).strip()
    return text.strip()
