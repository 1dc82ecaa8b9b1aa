"""Throwaway PKI and credentials for the web-config tests, made with the real tools: ``openssl`` for a
CA, server and client certificates, ``htpasswd -nbBC 10`` for the bcrypt hash (the way operators make
them for node_exporter), and a few clients (``curl``, Python's ``ssl``) that report what they saw."""

from __future__ import annotations

import socket
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from conftest import require_tool

USER, PASSWORD = "prometheus", "Scrape-pw-9f3kQ"


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


@dataclass
class Pki:
    """A CA in ``directory`` that signs server and client pairs on demand."""

    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / "ca.crt"

    def openssl(self, *args: str) -> None:
        done = subprocess.run(
            [require_tool("openssl"), *args],
            cwd=self.directory,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr

    def create(self) -> Pki:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.openssl(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN=quantum-gate test CA {self.directory.name}",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        )
        return self

    def issue(self, name: str, common_name: str, san: str) -> Pair:
        """A pair signed by this CA; ``san`` like ``IP:127.0.0.1,DNS:localhost``."""
        self.openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={common_name}",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
        )
        (self.directory / f"{name}.ext").write_text(f"subjectAltName={san}\n", encoding="ascii")
        self.openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            f"{name}.ext",
            "-out",
            f"{name}.crt",
        )
        return Pair(self.directory / f"{name}.crt", self.directory / f"{name}.key")

    def server(self, name: str = "server", common_name: str = "localhost") -> Pair:
        return self.issue(name, common_name, "IP:127.0.0.1,DNS:localhost")

    def client(self, name: str = "client", common_name: str = "prometheus") -> Pair:
        return self.issue(name, common_name, f"DNS:{common_name}")


def htpasswd_hash(user: str = USER, password: str = PASSWORD) -> str:
    """``htpasswd -nbBC 10 user password`` prints ``user:$2y$10$...``: the hash part."""
    done = subprocess.run(
        [require_tool("htpasswd"), "-nbBC", "10", user, password],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    name, _, hashed = done.stdout.strip().partition(":")
    assert name == user and hashed.startswith("$2y$10$"), done.stdout
    return hashed


def write_yaml(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


@dataclass(frozen=True)
class Curl:
    code: int  # curl's exit code: 0 when an HTTP answer came back
    status: int  # the HTTP status, 0 when none
    headers: str
    body: str


def curl(url: str, *args: str, timeout: float = 20) -> Curl:
    """One request with the real curl; ``-w`` reports the status, ``-D -`` the headers."""
    done = subprocess.run(
        [
            require_tool("curl"),
            "-sS",
            "--max-time",
            "10",
            "-D",
            "/dev/stderr",
            "-w",
            "\n%{http_code}",
            *args,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    body, _, status = done.stdout.rpartition("\n")
    return Curl(done.returncode, int(status or 0), done.stderr, body)


def peer_common_name(port: int, ca: Path) -> str:
    """The CN of the certificate the listener presents to a new connection now."""
    context = ssl.create_default_context(cafile=str(ca))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        cert: Any = tls.getpeercert()
    return str(dict(pair[0] for pair in cert["subject"])["commonName"])
