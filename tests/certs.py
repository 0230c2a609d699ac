"""A throwaway certificate authority for the TLS tests (the `openssl` command line).

    certs = TestCA(tmp_dir)          # ca.pem, server.pem, server.key for 127.0.0.1/localhost
    certs.ca          # the CA's PEM: what `ca_file:` in tix.yaml points at
    certs.context()   # an ssl server context with the server certificate

The server certificate names 127.0.0.1 and localhost and carries the extensions a
strict verifier wants (SAN, key identifiers, serverAuth), so tix's normal verifying
client accepts it once it trusts the CA, and refuses it without `ca_file`.
"""
from __future__ import annotations

import os
import shutil
import ssl
import subprocess
from pathlib import Path

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


class TestCA:
    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(self, directory: Path | str):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca = self.dir / "ca.pem"
        self.cert = self.dir / "server.pem"
        self.key = self.dir / "server.key"
        if not self.cert.exists():
            self._make()

    def _run(self, *args: str) -> None:
        proc = subprocess.run([OPENSSL, *args], cwd=self.dir, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"openssl {args[0]} failed: {proc.stderr.strip()}")

    def _make(self) -> None:
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        self._run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "3",
                  "-subj", "/CN=tix test CA", "-addext", "basicConstraints=critical,CA:TRUE",
                  "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        self._run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
        (self.dir / "server.ext").write_text(
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
            "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n", encoding="utf-8")
        self._run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                  "-out", "server.pem", "-days", "3", "-extfile", "server.ext")
        for name in ("ca.key", "server.key"):
            os.chmod(self.dir / name, 0o600)

    def context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert, self.key)
        return ctx
