"""TLS, client certificates and basic auth on every endpoint (issue 12), with real clients on loopback:
``curl`` (401 without or with a wrong credential, 200 with the right one, refusal of plain HTTP, client
certificates), Python's ``ssl`` for the certificate a new connection sees. The listener is the real
``HttpServer`` in this process, serving a fixed PASS snapshot; tests/test_web_prometheus.py runs the
daemon itself under a real Prometheus."""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from daemonkit import wait_until
from test_gate_http import snapshot_for
from test_statuspage import NOW
from tlskit import PASSWORD, USER, Curl, Pki, curl, htpasswd_hash, peer_common_name, write_yaml

from quantum_gate.config import HttpSettings
from quantum_gate.httpapp import HttpApp, HttpServer
from quantum_gate.statuspage import render_status_page
from quantum_gate.webconfig import WebConfig, load_web_config

ENDPOINTS = [("GET", "/metrics"), ("GET", "/gate"), ("POST", "/gate"), ("GET", "/healthz"), ("GET", "/")]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    pki = Pki(tmp_path_factory.mktemp("pki")).create()
    pki.server()
    pki.server("rotated", "rotated.localhost")
    pki.client()
    stranger = Pki(tmp_path_factory.mktemp("stranger-pki")).create()
    pair = stranger.client("intruder", "intruder")
    shutil.copy(pair.cert, pki.directory / "intruder.crt")
    shutil.copy(pair.key, pki.directory / "intruder.key")
    return pki


@pytest.fixture(scope="module")
def hashed() -> str:
    return htpasswd_hash()


@dataclass
class Listener:
    port: int
    server: HttpServer
    ca: Path

    def url(self, path: str, scheme: str = "https") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def curl(self, method: str, path: str, *args: str) -> Curl:
        extra = ["-X", "POST", "-H", "Content-Type: application/json", "-d", '{"phase": "Progressing"}']
        return curl(self.url(path), "--cacert", str(self.ca), *(extra if method == "POST" else []), *args)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    servers: list[HttpServer] = []
    snap = snapshot_for("PASS")

    def start(web: WebConfig, ca: Path, **limits: float) -> Listener:
        app = HttpApp(lambda: snap, lambda: NOW, render_status_page)
        server = HttpServer(app, "127.0.0.1", 0, HttpSettings.model_validate(limits), web)
        server.start()
        servers.append(server)
        return Listener(server.port, server, ca)

    yield start
    for server in servers:
        server.stop()


def web_file(pki: Pki, directory: Path, hashed: str | None, **tls: Any) -> WebConfig:
    document: dict[str, Any] = {
        "tls_server_config": {
            "cert_file": str(pki.directory / "server.crt"),
            "key_file": str(pki.directory / "server.key"),
            **tls,
        },
        "http_server_config": {
            "headers": {"Strict-Transport-Security": "max-age=31536000", "X-Content-Type-Options": "nosniff"}
        },
    }
    if hashed is not None:
        document["basic_auth_users"] = {USER: hashed}
    return load_web_config(write_yaml(directory / "web.yml", document))


def test_every_endpoint_needs_the_credential_over_tls(
    pki: Pki, hashed: str, tmp_path: Path, serve: Any
) -> None:
    listener: Listener = serve(web_file(pki, tmp_path, hashed), pki.ca)
    right = ["-u", f"{USER}:{PASSWORD}"]
    for method, path in ENDPOINTS:
        missing = listener.curl(method, path)
        assert missing.status == 401, (method, path, missing)
        assert "www-authenticate: basic" in missing.headers.lower()
        assert "quantum_gate_" not in missing.body and "verdict" not in missing.body
        wrong = listener.curl(method, path, "-u", f"{USER}:{PASSWORD}x")
        assert wrong.status == 401, (method, path, wrong)
        other_user = listener.curl(method, path, "-u", f"grafana:{PASSWORD}")
        assert other_user.status == 401
        ok = listener.curl(method, path, *right)
        assert ok.code == 0 and ok.status in {200, 503}, (method, path, ok)  # /healthz: 503 when stale
        assert "strict-transport-security: max-age=31536000" in ok.headers.lower()
        assert "strict-transport-security" in missing.headers.lower()  # 401s carry them too
        for answer in (missing, wrong, ok):
            assert PASSWORD not in answer.body + answer.headers
    assert "quantum_gate_verdict" in listener.curl("GET", "/metrics", *right).body
    assert json.loads(listener.curl("POST", "/gate?require=pass", *right).body)["verdict"] == "PASS"
    page = listener.curl("GET", "/", *right)
    assert "Content-Security-Policy" in page.body and "default-src 'none'" in page.body  # kept


def test_plain_http_to_the_tls_listener_gets_no_data(
    pki: Pki, hashed: str, tmp_path: Path, serve: Any
) -> None:
    listener: Listener = serve(web_file(pki, tmp_path, hashed), pki.ca)
    plain = curl(listener.url("/metrics", "http"), "-u", f"{USER}:{PASSWORD}")
    assert plain.code != 0 and plain.status == 0 and plain.body == ""
    # Byte level: a plain request, and nothing that looks like HTTP or metrics comes back.
    with socket.create_connection(("127.0.0.1", listener.port), timeout=5) as raw:
        raw.sendall(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        received = b""
        try:
            while chunk := raw.recv(4096):
                received += chunk
        except ConnectionResetError:
            pass
    assert b"HTTP/" not in received and b"quantum_gate" not in received
    # The listener is still there for a proper TLS client.
    assert curl(listener.url("/metrics"), "--cacert", str(pki.ca), "-u", f"{USER}:{PASSWORD}").status == 200


def test_require_and_verify_client_cert(pki: Pki, tmp_path: Path, serve: Any) -> None:
    web = web_file(
        pki, tmp_path, None, client_auth_type="RequireAndVerifyClientCert", client_ca_file=str(pki.ca)
    )
    listener: Listener = serve(web, pki.ca)
    d = pki.directory
    refused = listener.curl("GET", "/metrics")
    assert refused.code != 0 and refused.status == 0 and "quantum_gate_" not in refused.body
    stranger = listener.curl(
        "GET", "/metrics", "--cert", str(d / "intruder.crt"), "--key", str(d / "intruder.key")
    )
    assert stranger.code != 0 and stranger.status == 0  # a certificate from another CA
    served = listener.curl("GET", "/metrics", "--cert", str(d / "client.crt"), "--key", str(d / "client.key"))
    assert served.status == 200 and "quantum_gate_verdict" in served.body


def test_client_allowed_sans_admits_only_the_named_client(pki: Pki, tmp_path: Path, serve: Any) -> None:
    d = pki.directory
    client = ["--cert", str(d / "client.crt"), "--key", str(d / "client.key")]
    common = {"client_auth_type": "RequireAndVerifyClientCert", "client_ca_file": str(pki.ca)}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    named = serve(web_file(pki, tmp_path / "a", None, client_allowed_sans=["prometheus"], **common), pki.ca)
    others = serve(web_file(pki, tmp_path / "b", None, client_allowed_sans=["grafana"], **common), pki.ca)
    assert named.curl("GET", "/metrics", *client).status == 200
    assert others.curl("GET", "/metrics", *client).status == 0


def test_min_version_is_enforced_by_the_server(pki: Pki, tmp_path: Path, serve: Any) -> None:
    """TLS 1.2 is the default floor; ``min_version: TLS13`` refuses a client that stops at 1.2."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    default = serve(web_file(pki, tmp_path / "a", None), pki.ca)
    strict = serve(web_file(pki, tmp_path / "b", None, min_version="TLS13"), pki.ca)
    assert default.curl("GET", "/healthz", "--tls-max", "1.2").code == 0
    assert strict.curl("GET", "/healthz", "--tls-max", "1.2").code != 0
    assert strict.curl("GET", "/healthz", "--tlsv1.3").code == 0


def test_the_certificate_rotates_without_a_restart(pki: Pki, tmp_path: Path, serve: Any) -> None:
    live = tmp_path / "live"
    live.mkdir()
    for suffix in ("crt", "key"):
        shutil.copy(pki.directory / f"server.{suffix}", live / f"tls.{suffix}")
    document = {"tls_server_config": {"cert_file": "tls.crt", "key_file": "tls.key"}}
    listener: Listener = serve(load_web_config(write_yaml(live / "web.yml", document)), pki.ca)
    assert peer_common_name(listener.port, pki.ca) == "localhost"
    # A broken pair (new certificate, old key): new connections keep getting the old, working pair.
    shutil.copy(pki.directory / "rotated.crt", live / "tls.crt")
    tls = listener.server._server.tls
    assert tls is not None
    failed_before = tls.reloads
    wait_until(lambda: tls._failed_signature is not None, 10, "the broken pair to be tried")
    assert peer_common_name(listener.port, pki.ca) == "localhost"
    assert tls.reloads == failed_before
    shutil.copy(pki.directory / "rotated.key", live / "tls.key")
    wait_until(lambda: peer_common_name(listener.port, pki.ca) == "rotated.localhost", 10, "the rotated cert")
    assert listener.curl("GET", "/healthz").code == 0


def test_a_client_that_stalls_the_handshake_is_cut_at_the_deadline(
    pki: Pki, hashed: str, tmp_path: Path, serve: Any
) -> None:
    """A slowloris over TLS: connect, send half a ClientHello, then nothing. The selector thread does
    the handshake, so the connection holds no worker, and the request deadline closes it."""
    listener: Listener = serve(web_file(pki, tmp_path, hashed), pki.ca, request_timeout_seconds=1)
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as raw:
        raw.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a record header, then silence
        try:
            closed = raw.recv(1) == b""  # closed by the listener (the 10 s socket timeout would raise)
        except ConnectionResetError:
            closed = True
        assert closed
        assert listener.curl("GET", "/healthz", "-u", f"{USER}:{PASSWORD}").code == 0
