"""The email step's performance machinery: parse workers and a prefetch thread.

Parsing, not IMAP, bounds email intake (DESIGN.md: about 1,900 msg/s per core for the
stdlib parser), so a chunk is parsed on every core while the previous one is stored, and
the next one is fetched meanwhile: fetch (`Prefetch`'s thread) -> parse (`Parser`'s
workers, plus a share in this process) -> intake and store (the caller's thread).
"""
from __future__ import annotations

import os

class Parser:
    """Parses a chunk of raw messages, on every core when the chunk is large.

    Parsing, not IMAP, bounds intake (DESIGN.md: about 1,900 msg/s per core for the
    stdlib parser), so a chunk of at least `MIN_POOL` messages goes to `workers` parse
    workers (`tix.channels.mail.parseworker`, one per CPU, at most 4; none on one CPU;
    `TIX_PARSE_WORKERS` overrides). This process keeps no share by default
    (`TIX_PARSE_MAIN_SHARE`, relative to one worker's 1.0): it fetches and stores, which on
    2 cores is a core's worth of work already (issue 16: with a third of the parsing it was
    the bottleneck, the worker idle half the time). Workers are plain child processes on
    pipes: they inherit no file descriptor (not the store lock), re-run no `__main__`,
    and exit when their stdin closes, i.e. when tix exits or is killed.
    """

    MIN_POOL = 64
    MAIN_SHARE = float(os.environ.get("TIX_PARSE_MAIN_SHARE") or 0)  # relative to one worker's 1.0

    def __init__(self, own):
        self.own = own
        self.procs: list = []
        self.pending = 0  # jobs submitted and not yet collected
        env = os.environ.get("TIX_PARSE_WORKERS")
        cpus = os.cpu_count() or 1
        self.workers = int(env) if env and env.isdigit() else (min(cpus, 4) if cpus > 1 else 0)

    def parse_many(self, raws: list[bytes]) -> list:
        return self.collect(self.submit(raws))

    def submit(self, raws: list[bytes]):
        """Hand the workers their share of a chunk now; `collect` later returns it parsed.

        Called by the prefetch thread, so the workers parse chunk N+1 while this process
        stores chunk N. Jobs must be collected in the order they were submitted.
        """
        if self.workers < 1 or len(raws) < self.MIN_POOL:
            return (raws, [], len(raws))  # parsed one by one in `process`
        self.pending += 1
        import pickle

        from tix.channels.mail import parseworker

        procs = self._start()
        # This process also stores the messages, so it parses a smaller share.
        mine = int(len(raws) * self.MAIN_SHARE / (self.MAIN_SHARE + len(procs)))
        share = -(-(len(raws) - mine) // len(procs))
        slices = [raws[i:i + share] for i in range(mine, len(raws), share)]
        for proc, part in zip(procs, slices, strict=False):  # fewer slices than workers: a small chunk
            parseworker.write_frame(proc.stdin, pickle.dumps((part, self.own), protocol=pickle.HIGHEST_PROTOCOL))
        return (raws[:mine], procs[:len(slices)], None)

    def collect(self, job) -> list:
        import pickle

        from tix.channels.mail import parseworker

        mine, procs, local = job
        if local is not None:
            return [None] * local
        out = [parseworker.parse_one(r, self.own) for r in mine]
        for proc in procs:
            frame = parseworker.read_frame(proc.stdout)
            if frame is None:
                raise RuntimeError(f"parse worker {proc.pid} died (exit {proc.poll()})")
            out += pickle.loads(frame)
        self.pending -= 1
        return out

    def _start(self) -> list:
        import subprocess
        import sys

        while len(self.procs) < self.workers:
            self.procs.append(subprocess.Popen([sys.executable, "-m", "tix.channels.mail.parseworker"],
                                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True))
        return self.procs

    def close(self, failed: bool = False) -> None:
        """Stop the workers (killed when `failed`); new ones start on the next `submit`."""
        procs, self.procs = self.procs, []
        self.pending = 0
        for proc in procs:
            try:
                proc.stdin.close()  # end of input: the worker exits
            except OSError:
                pass
            if failed:
                proc.kill()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except Exception:  # noqa: BLE001
                proc.kill()
            if proc.stdout:
                proc.stdout.close()


class Prefetch:
    """A source's `chunks()` run in a thread, up to `depth` chunks ahead of the store.

    Each chunk is handed to `submit` (the parse workers) as soon as it is fetched, so
    fetching (IMAP waits on the server and the socket), parsing (the workers) and storing
    (this thread) overlap. Iterating yields `(chunk, job)` in source order; an error of
    the source is raised here, in the caller's thread. The source's `ack` is called from
    the caller's thread while the next chunks are fetched (sources allow that).
    """

    def __init__(self, chunks, submit, depth: int = 2):
        import queue
        import threading

        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(chunks, submit), name="tix-prefetch", daemon=True)
        self._thread.start()

    def _run(self, chunks, submit) -> None:
        try:
            for chunk in chunks:
                job = submit([it.raw for it in chunk])
                if not self._put(("chunk", chunk, job)):
                    return
            self._put(("end", None, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            self._put(("error", exc, None))

    def _put(self, item) -> bool:
        import queue

        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self):
        while True:
            kind, value, job = self._queue.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value, job

    def stop(self) -> None:
        """Ask the thread to stop at its next chunk (a blocked read ends with the source)."""
        self._stop.set()

    def join(self) -> None:
        self._thread.join(timeout=30)
