"""A mail-parsing worker process: `python -m tix.channels.mail.parseworker`.

`tix.ingest.parsing.Parser` starts one per extra CPU for large chunks. Protocol on stdin/stdout:
frames of an 8-byte big-endian length and a pickle; the request is `(raws, own_addresses)`,
the answer the list of `parse.Parsed` (or the `Unparseable` each raised, or None for
an empty item). The worker exits at end of input: when tix exits or is killed, its
stdin closes. It inherits no other file descriptor (the store lock included), and it
is started as a module, so no caller's `__main__` is re-run (unlike multiprocessing's
spawn).
"""
from __future__ import annotations

import pickle
import sys


def parse_one(raw: bytes, own):
    from tix.channels.mail import parse as mailparse

    if not raw:
        return None
    try:
        p = mailparse.parse(raw, own)
    except mailparse.Unparseable as exc:
        return exc
    p.headers = None  # the Message object is not needed after parsing
    if p.html is not None:
        p.html = ""  # intake only records that there was one (the raw message keeps it)
    p.text_full = ""  # nor the whole text: only the new text goes into the event (parse.stored_text)
    p.key = mailparse.content_key(raw, p.message_id)  # here, off the storing process
    return p


def read_frame(stream) -> bytes | None:
    head = stream.read(8)
    if len(head) < 8:
        return None
    n = int.from_bytes(head, "big")
    data = stream.read(n)
    return data if len(data) == n else None


def write_frame(stream, data: bytes) -> None:
    stream.write(len(data).to_bytes(8, "big"))
    stream.write(data)
    stream.flush()


def main() -> None:
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    while True:
        frame = read_frame(inp)
        if frame is None:
            return
        raws, own = pickle.loads(frame)
        write_frame(out, pickle.dumps([parse_one(r, own) for r in raws], protocol=pickle.HIGHEST_PROTOCOL))


if __name__ == "__main__":
    main()
