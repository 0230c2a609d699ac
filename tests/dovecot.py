"""A throwaway Dovecot IMAP server for tests and benchmarks (Debian package dovecot-imapd).

    with Dovecot() as dc:                 # started on a free 127.0.0.1 port
        maildir = dc.add_user("user1")    # user1…user300 exist, password "secret"
        dc.deliver("user1", raw_bytes)    # straight into the maildir's new/
        ... IMAP on 127.0.0.1:dc.port ...

Everything lives in one directory created for the instance (config, passwd file, mail,
sockets, state, log). /etc/dovecot and the system service are never read or touched.
Written after a known-good setup of a throwaway Dovecot (see its notes in the project brief for
the pitfalls): mail processes run as `nobody` (Dovecot refuses uid 0 for mail), the
instance directory is 0755 and the passwd file 0640 group `dovecot` (the auth process
reads it), login processes chroot into base_dir/login, IMAP on loopback only.

With `tls=True` the server also speaks TLS, with a certificate from a throwaway CA
(`tests/certs.py`, `dc.certs.ca` is the CA's PEM): STARTTLS on `dc.port` and implicit
TLS (IMAPS) on `dc.tls_port`. Plain login stays allowed on loopback for the other tests.
"""
from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

DOVECOT = os.environ.get("DOVECOT_BIN", "/usr/sbin/dovecot")
DOVECONF = shutil.which("doveconf") or "/usr/bin/doveconf"
MAIL_USER = os.environ.get("DOVECOT_MAIL_USER", "nobody")
PASSWORD = "secret"


class DovecotMissing(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Dovecot:
    def __init__(self, port: int | None = None, directory: str | None = None, users: int = 300,
                 tls: bool = False):
        if not os.access(DOVECOT, os.X_OK):
            raise DovecotMissing(f"{DOVECOT} is missing: apt-get install -y dovecot-imapd "
                                 "(listed in tests/apt-packages.txt)")
        if os.geteuid() != 0:
            raise DovecotMissing("the Dovecot test server must start as root (its master drops privileges)")
        self.port = port or free_port()
        # Not under pytest's 0700 tmp dirs: the auth process (user dovecot) must traverse it.
        self.dir = Path(directory or tempfile.mkdtemp(prefix=f"tix-dovecot-{self.port}-", dir="/tmp"))
        self.uid = pwd.getpwnam(MAIL_USER).pw_uid
        self.gid = pwd.getpwnam(MAIL_USER).pw_gid
        # Dovecot re-reads the passwd file when its mtime (in seconds) changes, so users added
        # within the same second as the last read would be refused: create them up front.
        self.users: dict[str, str] = {f"user{i}": PASSWORD for i in range(1, users + 1)}
        self.pid: int | None = None
        self.tls = tls
        self.tls_port = free_port() if tls else 0
        self.certs = None

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> "Dovecot":
        d = self.dir
        for sub in ("run", "state", "mail", "home"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        os.chown(d / "mail", self.uid, self.gid)
        os.chown(d / "home", self.uid, self.gid)
        os.chmod(d, 0o755)
        if self.tls:
            from tests.certs import TestCA

            self.certs = TestCA(d / "tls")
        self._write_passwd()
        (d / "dovecot.conf").write_text(self._config(), encoding="utf-8")
        check = subprocess.run([DOVECONF, "-c", str(d / "dovecot.conf"), "-n"], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"doveconf rejected the test config: {check.stderr.strip()}")
        subprocess.run([DOVECOT, "-c", str(d / "dovecot.conf")], check=True, env=_real_clock_env())
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            pid = self._master_pid()
            if pid and _port_open(self.port) and (not self.tls or _port_open(self.tls_port)):
                self.pid = pid
                return self
            time.sleep(0.05)
        raise RuntimeError(f"dovecot did not come up on 127.0.0.1:{self.port}; log:\n{self.log()}")

    def stop(self) -> None:
        pid = self.pid or self._master_pid()
        if pid:
            try:
                # A throwaway server: kill its whole process group (the master is a group leader)
                # rather than wait 2-8 s for a graceful shutdown whose result is deleted anyway.
                if os.getpgid(pid) == pid:
                    os.killpg(pid, signal.SIGKILL)
                else:
                    os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and _running(pid):
                time.sleep(0.05)
            else:
                os.kill(pid, signal.SIGKILL)
        self.pid = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "Dovecot":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log(self) -> str:
        try:
            return (self.dir / "dovecot.log").read_text(errors="replace")[-4000:]
        except OSError:
            return "(no log)"

    # -- users and mail -------------------------------------------------------------------------
    def add_user(self, name: str, password: str = PASSWORD) -> Path:
        """An IMAP user (user1…user300 exist from the start); return its maildir."""
        if self.users.get(name) != password:
            self.users[name] = password
            time.sleep(1.1)  # a new mtime second, so that Dovecot re-reads the file
            self._write_passwd()
        return self.maildir(name)

    def maildir(self, user: str, folder: str = "INBOX") -> Path:
        root = self.dir / "mail" / user
        path = root if folder == "INBOX" else root / f".{folder}"
        for sub in (root, path, path / "new", path / "cur", path / "tmp"):
            if not sub.exists():
                sub.mkdir(parents=True, exist_ok=True)
                os.chown(sub, self.uid, self.gid)
        return path

    def deliver(self, user: str, raw: bytes, folder: str = "INBOX", name: str | None = None) -> Path:
        """Put one message into the user's maildir, as a local delivery agent would."""
        md = self.maildir(user, folder)
        name = name or f"{time.time_ns()}.{os.getpid()}.{len(raw)}.tix"
        tmp = md / "tmp" / name
        tmp.write_bytes(raw)
        os.chown(tmp, self.uid, self.gid)
        final = md / "new" / name
        os.replace(tmp, final)
        return final

    # -- internals ------------------------------------------------------------------------------
    def _write_passwd(self) -> None:
        path = self.dir / "passwd"
        lines = "".join(f"{u}:{{PLAIN}}{p}::::::\n" for u, p in self.users.items())
        tmp = self.dir / "passwd.tmp"
        tmp.write_text(lines, encoding="utf-8")
        os.chown(tmp, 0, grp.getgrnam("dovecot").gr_gid)
        os.chmod(tmp, 0o640)
        os.replace(tmp, path)

    def _master_pid(self) -> int | None:
        try:
            return int((self.dir / "run" / "master.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def _config(self) -> str:
        d = self.dir
        return f"""# written by tests/dovecot.py; standalone, no !include of /etc/dovecot
protocols = imap
listen = 127.0.0.1
base_dir = {d}/run
state_dir = {d}/state
instance_name = dovecot-tix-{self.port}
log_path = {d}/dovecot.log
info_log_path = {d}/dovecot.log
{self._ssl_config()}
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = {self.uid}
last_valid_uid = {self.uid}
first_valid_gid = {self.gid}
mail_uid = {self.uid}
mail_gid = {self.gid}
default_internal_user = dovecot
default_internal_group = dovecot
default_login_user = dovenull
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/passwd
}}
userdb {{
  driver = static
  args = uid={self.uid} gid={self.gid} home={d}/home/%u
}}
mail_location = maildir:{d}/mail/%u
namespace inbox {{
  inbox = yes
  separator = /
}}
mail_fsync = never
mail_max_userip_connections = 50
imap_max_line_length = 1M
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.tls_port}
  }}
}}
"""

    def _ssl_config(self) -> str:
        if not self.tls:
            return "ssl = no"
        c = self.certs
        return f"ssl = yes\nssl_cert = <{c.cert}\nssl_key = <{c.key}\nssl_min_protocol = TLSv1.2"


def _real_clock_env() -> dict:
    """This environment without libfaketime: the server keeps the real clock, like a remote one.

    Under `faketime` (the suite is run with a moved clock) Dovecot would inherit the preload,
    but its master clears its environment after start; some seconds later libfaketime re-reads
    FAKETIME, finds none, and the master's clock jumps back to the real time. Dovecot then logs
    "Time moved backwards" and launches no new imap process for 180 s.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAKETIME")}
    preload = [p for p in env.pop("LD_PRELOAD", "").replace(":", " ").split() if "faketime" not in p]
    if preload:
        env["LD_PRELOAD"] = " ".join(preload)
    return env


def _running(pid: int) -> bool:
    """True while the process runs; a zombie (dead, not yet reaped by init: the master is
    daemonized, so not our child) counts as gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel whether the pid exists
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False
