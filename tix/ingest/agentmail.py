"""The intake of agents' replies by mail (agents with `mail_client: true`).

An agent who works from their mail client gets each ticket by mail (`tix.outbox.agentmail`)
and answers it there. The answer comes into the same mailbox as the customers' mail and
through the same `tix fetch`; the email step hands it here before any customer threading
when it `claims` the message: From is such an agent's address, or a recipient carries a
reply token (`+tag` of `agent_mail.reply_to`).

Authentication (`tix.channels.mail.agentauth`): From is the agent's address, the token
verifies and names that agent, and our own server's Authentication-Results (when there is
one) shows an aligned DKIM or SPF pass. A mail that fails any check reaches nobody: it is
quarantined (`tix quarantine list`) with the reason. An automatic mail (out of office) that
passes is recorded and ignored.

What the agent wrote (the new text: quoted history and signature stripped) then acts, with
the agent as actor (`user:LOGIN`); the first line may be a command:

    (no command)     the text is the agent's reply to the customer, on the ticket's own
                     channel (email or WhatsApp), queued like `tix reply` (tix.outbox.queue)
    #note            the text is an internal note
    #pending         status pending (waiting on the customer); text below: a reply first
    #resolve         status resolved; text below: a reply first
                     (the moves of `tix reply --pending/--resolve`: tix.tickets.status)
    #assign NAME     the ticket goes to agent NAME; text below: an internal note (a handover)

Collision rule: the token names the last event of the ticket the agent's mail showed. When
the ticket has since gained a customer message or another agent's reply, or is no longer
assigned to the agent, a reply, status change or reassignment is not made: the text is
kept as a note and the agent gets a one-line mail saying why (as for an unknown command, an
empty reply, or a WhatsApp window that has closed).

Every agent mail taken in is an `agentmail.received` event (its idempotency keys, the raw
message under messages/, the agent, the command and the outcome): fetching it again is a no-op.
"""
from __future__ import annotations

import re
from email.parser import BytesParser
from email.policy import compat32

from tix import tickets
from tix.channels.base import Undecodable
from tix.channels.mail import agentauth
from tix.channels.mail import parse as mailparse
from tix.errors import UsageError
from tix.tickets.status import after_reply, check_outcome

COMMANDS = ("note", "pending", "resolve", "assign")
_COMMAND = re.compile(r"#([A-Za-z]+)(?:[ \t]+(\S+))?[ \t]*")
_RECIPIENT_HEADERS = ("Delivered-To", "X-Original-To")


class AgentMailRefused(Undecodable):
    """A mail that claims to come from an agent and may not act for them (quarantined)."""


class Bounced(Exception):
    """The agent's mail is genuine but cannot be done: kept as a note, the agent is told why."""


def parse_command(text: str) -> tuple[str | None, str | None, str]:
    """(command, argument, the rest) of the agent's text; a first line `#word` that is not a
    command raises Bounced. A first line that is not `#word [ARG]` is no command."""
    first, _, rest = text.strip().partition("\n")
    m = _COMMAND.fullmatch(first.strip())
    if m is None:
        return None, None, text.strip()
    word = m.group(1).lower()
    if word not in COMMANDS:
        raise Bounced(f"unknown command #{word}; commands: " + ", ".join(f"#{c}" for c in COMMANDS))
    if (word == "assign") != (m.group(2) is not None):
        raise Bounced("#assign takes one agent name (#assign NAME)" if word == "assign" else
                      f"#{word} takes no argument")
    return word, m.group(2), rest.strip()


class AgentMail:
    """The agent-mail part of one intake run (made by the email step when agents use it)."""

    def __init__(self, run):
        self.run = run
        self.agents = agentauth.mail_agents(run.config)
        self.spec = agentauth.settings(run.config)
        self._key: bytes | None = None

    @classmethod
    def load(cls, run) -> "AgentMail | None":
        return cls(run) if agentauth.mail_agents(run.config) else None

    def claims(self, p) -> bool:
        """Whether this parsed message is (or claims to be) an agent's mail."""
        return (p.from_addr or "").lower() in self.agents or self._tag(p, None) is not None

    def _tag(self, p, headers) -> str | None:
        addrs = [*p.to, *p.cc]
        if headers is not None:
            addrs += [a for name in _RECIPIENT_HEADERS for _n, a in mailparse.addresses(headers.get_all(name) or [])]
        return agentauth.find_tag(addrs, self.spec["reply_to"])

    def key(self) -> bytes:
        if self._key is None:
            try:
                self._key = agentauth.secret(self.run.store)
            except UsageError as exc:
                raise agentauth.Refused(str(exc)) from None
        return self._key

    # -- one message ----------------------------------------------------------------------------
    def take(self, item, p, ckey: str, spec: dict) -> None:
        """Authenticate, then act; raises AgentMailRefused (the intake quarantines it)."""
        headers = p.headers if p.headers is not None else _headers(item.raw)
        try:
            agent, number, seq = self.verify(p, headers)
        except agentauth.Refused as exc:
            raise AgentMailRefused(f"agent mail refused: {exc}") from None
        run = self.run
        row = run.row(number)
        if row is None:
            raise AgentMailRefused(f"agent mail refused: ticket #{number} of its reply token does not exist")
        since = len(run.batch.pending)
        text = agentauth.strip_signature(p.text or "")
        command = None
        if p.auto_reason:
            outcome = f"ignored: an automatic mail ({p.auto_reason})"
        else:
            try:
                command, arg, text = parse_command(text)
                outcome = self.act(agent.name, row, seq, command, arg, text, ckey)
            except Bounced as exc:
                outcome = self.bounce(agent, row, text, str(exc), ckey)
        rel, span = run.files.write_raw(item.raw, run.now)
        run.batch.emit("agentmail.received", ticket=number, data={
            "message": ckey, "source_key": item.key, "source": item.source, "channel": "email",
            "message_id": p.message_id, "from": p.from_addr, "subject": p.subject, "agent": agent.name,
            "seq": seq, "command": command, "outcome": outcome, "text": text, "raw": rel, "raw_span": span})
        for ev in run.batch.pending[since:]:
            if not ev["type"].startswith("outbox."):
                ev["actor"] = f"user:{agent.name}"
            if run.ts:
                ev["ts"] = run.ts

    def verify(self, p, headers) -> tuple:
        """(agent, ticket, seq) of a mail that may act for its agent; else raises Refused."""
        sender = (p.from_addr or "").lower()
        agent = self.agents.get(sender)
        tag = self._tag(p, headers)
        if agent is None:
            raise agentauth.Refused(f"it carries a reply token but comes from {sender or 'no sender'}, "
                                    "not from an agent with mail_client")
        if tag is None:
            raise agentauth.Refused(f"mail from agent {agent.name} <{sender}> without a reply token "
                                    "(only a reply to the mail tix sent can act)")
        number, login, seq = agentauth.check_token(self.key(), tag)
        if login != agent.name.lower():
            raise agentauth.Refused(f"the reply token is agent {login}'s, the mail is from {agent.name} <{sender}>")
        if headers is None:  # fail closed: an Authentication-Results we cannot read is no pass
            raise agentauth.Refused("its header cannot be read")
        values = [str(v) for v in (headers.get_all("Authentication-Results") or [])]
        agentauth.check_auth_results(values, self.spec.get("authserv_id"), sender)
        return agent, number, seq

    # -- acting -------------------------------------------------------------------------------
    def act(self, login: str, row: dict, seq: int, command, arg, text: str, ckey: str) -> str:
        """Do what the mail says (see the module docstring); raises Bounced when it cannot."""
        batch = self.run.batch
        if command == "note":
            if not text:
                raise Bounced("#note needs text below it")
            batch.emit("ticket.note", ticket=row["number"], data={"body": text, "kind": "agent_mail"})
            return "note"
        if command == "assign":
            if row.get("assignee") != login:
                raise Bounced(f"#{row['number']} is now assigned to {row.get('assignee') or 'nobody'}")
            try:
                self.run.config.check_agent(arg)
            except UsageError as exc:
                raise Bounced(str(exc)) from None
            self._set(row, lambda: tickets.assign(batch, row, arg, why="by agent mail"))
            if text:
                batch.emit("ticket.note", ticket=row["number"], data={"body": text, "kind": "agent_mail"})
            return f"assigned to {arg}"
        if row.get("assignee") != login:  # reassigned since the mail: not hers to answer any more
            raise Bounced(f"#{row['number']} is now assigned to {row.get('assignee') or 'nobody'}")
        if command is None and not text:
            raise Bounced("the reply is empty (nothing above the quoted mail and the signature)")
        outcome = {"pending": "pending", "resolve": "resolved"}.get(command)
        try:
            check_outcome(row, outcome)  # the moves `tix reply --pending/--resolve` may make
        except UsageError as exc:
            raise Bounced(str(exc)) from None
        if text:
            self.collision(row["number"], seq, login)
            self.reply(login, row, text, ckey)
            self._set(row, lambda: after_reply(batch, row, outcome))  # as after `tix reply`: new -> open, …
            return "replied" + (f", status {row['status']}" if outcome else "")
        self._set(row, lambda: tickets.set_fields(batch, row, {"status": outcome}, why="by agent mail"))
        return f"status {row['status']}"

    def _set(self, row: dict, change) -> None:
        """Run a change of the run's cached row, undoably (the intake may roll the item back)."""
        old = {f: row.get(f) for f in ("status", "assignee", "team")}
        change()
        for f, value in old.items():
            self.run.journal.record(row, f, value)

    def collision(self, number: int, seq: int, login: str) -> None:
        """Bounced when the ticket gained a customer message or another agent's reply after `seq`."""
        store, batch = self.run.store, self.run.batch
        for ev in [*store.log.read_after(seq), *batch.pending]:
            data = ev.get("data") or {}
            if ev.get("ticket") != number or int(ev.get("seq") or 0) <= seq or data.get("auto"):
                continue
            if ev["type"] == "message.received":
                raise Bounced(f"#{number} has a newer customer message ({ev['ts'][:16]}Z) than the mail you answered")
            if ev["type"] == "message.sent" and ev.get("actor") != f"user:{login}":
                who = str(ev.get("actor") or "").split(":", 1)[-1]
                raise Bounced(f"{who} replied on #{number} ({ev['ts'][:16]}Z) after the mail you answered")

    def reply(self, login: str, row: dict, text: str, ckey: str) -> None:
        """The agent's reply to the customer, as `tix reply` queues it (tix.outbox.queue)."""
        from tix.outbox import queue

        full = {**(self.run.batch.reader.ticket(row["number"]) or {}), **row}
        try:
            queue(self.run.batch, full, full.get("channel") or "email", text, actor=f"user:{login}",
                  extra={"agent_mail": ckey})
        except UsageError as exc:
            raise Bounced(str(exc)) from None

    def bounce(self, agent, row: dict, text: str, reason: str, ckey: str) -> str:
        """Keep the text as a note and tell the agent, in one line, why nothing was done."""
        from email.utils import formataddr

        from tix.outbox import notify

        number = row["number"]
        line = f"Not done: {reason}."
        if text:
            line += " Your text is kept as a note on the ticket."
        self.run.batch.emit("ticket.note", ticket=number, data={
            "kind": "agent_mail_refused", "body": f"{line}\n\n{text}".strip()})
        prefix = str(self.run.config.setting("subject_tag"))
        notify(self.run.batch, "email", formataddr((agent.display, agent.email)),
               f"Re: [{prefix}{number}] {row.get('subject') or ''}".strip(), line + "\n",
               key=f"agentmail-refused:{ckey}", ticket=number)
        return f"refused: {reason}"


def _headers(raw: bytes):
    try:
        return BytesParser(policy=compat32).parsebytes(raw, headersonly=True)
    except Exception:  # noqa: BLE001 - a header we cannot parse: no headers to trust
        return None
