"""Hardening, access (issue 6, items 5 and 6): a read-only ACL user, and TLS with a password.

Item 5 proves the product never sends a command outside ``+@read +@connection``: ``check`` and the
daemon run as such a user, and ``ACL LOG`` (which records every command Redis refused for
permissions) stays empty. A control write as the same user shows that ``ACL LOG`` does catch it.

Item 6 runs Redis with TLS only (``--port 0 --tls-port``) and ``requirepass``, certificates made here
with openssl; the daemon and ``check`` trust the test CA through ``redis.tls_ca_file`` and read the
password from ``redis.password_file`` or the systemd credential, and it never shows in any output.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from conftest import RedisServer, free_port, require_tool
from hardening_kit import DaemonProcess, Metrics, http_get, quantum_gate_argv, xadd_many

ACL_USER, ACL_PASSWORD = "gate", "gate-pw-7c1e"
SECRET = "s3cret-Zq9-pw-never-shown"


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*quantum_gate_argv(), *args], capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


def healthy_pass(metrics: Metrics) -> bool:
    return metrics.get("verdict", verdict="pass") == 1 and metrics.get("stream_length") is not None


# ---- item 5: the read-only proof ---------------------------------------------------------------------


def acl_log(client: redis.Redis) -> list[dict[str, object]]:
    entries: list[dict[str, object]] = client.acl_log()  # type: ignore[assignment]
    return entries


def test_check_and_daemon_run_under_a_read_only_acl_user_and_acl_log_stays_empty(
    tmp_path: Path, stream_key: str
) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        admin = server.admin()
        admin.acl_setuser(
            ACL_USER,
            enabled=True,
            passwords=[f"+{ACL_PASSWORD}"],
            keys=["*"],
            categories=["+@read", "+@connection"],
            reset=True,
        )
        xadd_many(admin, stream_key, 300)
        url = f"redis://{ACL_USER}:{ACL_PASSWORD}@127.0.0.1:{server.port}/0"

        # Control: the same user cannot write, and ACL LOG records the refusal.
        gate_user = redis.Redis.from_url(url)
        with pytest.raises(redis.exceptions.NoPermissionError):
            gate_user.xadd(stream_key, {"event_type": "probe"})
        assert [entry["object"] for entry in acl_log(admin)] == ["xadd"]
        gate_user.close()
        admin.acl_log_reset()

        done = run_cli(
            "check", "--redis-url", url, "--stream", stream_key, "--after", "2020-01-01T00:00:00Z", "--json"
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["verdict"] == "PASS"
        assert acl_log(admin) == []

        daemon = DaemonProcess(url, stream_key, tmp_path / "daemon", args=["--window", "10000"])
        try:
            daemon.start()
            daemon.wait_until(healthy_pass, timeout=30, what="PASS and an XINFO reading")
            xadd_many(admin, stream_key, 50)  # live entries through XREAD BLOCK
            live = daemon.wait_until(
                lambda m: m.get("events_accepted_total") == 350, timeout=30, what="350 accepted"
            )
            assert live.value("redis_up") == 1
            assert daemon.terminate()[0] == 0
        finally:
            daemon.close()
        assert acl_log(admin) == [], "the product sent a command outside +@read +@connection"
        assert not [line for line in daemon.logs() if line.get("event") == "stream.disconnected"]
    finally:
        server.stop()


# ---- item 6: TLS and a password from a file or a systemd credential ----------------------------------


@dataclass
class Certificates:
    ca: Path
    cert: Path
    key: Path


def make_certificates(directory: Path) -> Certificates:
    openssl = require_tool("openssl")
    directory.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=directory, check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=quantum-gate test CA",
        "-keyout", "ca.key", "-out", "ca.crt")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key",
        "-out", "server.csr")  # fmt: skip
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n", encoding="ascii")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-extfile", "san.ext", "-out", "server.crt")  # fmt: skip
    return Certificates(directory / "ca.crt", directory / "server.crt", directory / "server.key")


@dataclass
class TlsRedisServer(RedisServer):
    """redis-server with TLS only (no plaintext port) and ``requirepass``."""

    ca: Path | None = None

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.port}/0"

    def admin(self) -> redis.Redis:
        return redis.Redis(
            port=self.port, password=SECRET, ssl=True, ssl_ca_certs=str(self.ca), socket_timeout=5
        )


@pytest.fixture
def tls_redis(tmp_path: Path) -> TlsRedisServer:
    certs = make_certificates(tmp_path / "certs")
    port = free_port()
    server = TlsRedisServer(
        tmp_path / "redis",
        port=port,
        ca=certs.ca,
        extra_args=(
            "--port",
            "0",
            "--tls-port",
            str(port),
            "--tls-cert-file",
            str(certs.cert),
            "--tls-key-file",
            str(certs.key),
            "--tls-ca-cert-file",
            str(certs.ca),
            "--tls-auth-clients",
            "no",
            "--requirepass",
            SECRET,
        ),
    )
    server.start()
    return server


def no_secret(*texts: str) -> None:
    for text in texts:
        assert SECRET not in text


@pytest.mark.parametrize("source", ["password_file", "credential"])
def test_tls_and_password_from_a_file_or_credential_never_shown(
    source: str, tls_redis: TlsRedisServer, tmp_path: Path, stream_key: str
) -> None:
    try:
        admin = tls_redis.admin()
        xadd_many(admin, stream_key, 300)
        secrets = tmp_path / "secrets"
        secrets.mkdir()
        env = {"QUANTUM_GATE_REDIS_TLS_CA_FILE": str(tls_redis.ca)}
        if source == "password_file":
            (secrets / "pw").write_text(SECRET + "\n", encoding="utf-8")
            env["QUANTUM_GATE_REDIS_PASSWORD_FILE"] = str(secrets / "pw")
        else:
            (secrets / "redis-password").write_text(SECRET, encoding="utf-8")
            env["CREDENTIALS_DIRECTORY"] = str(secrets)
        base_env = {key: value for key, value in os.environ.items() if not key.startswith("QUANTUM_GATE_")}
        common = ["--redis-url", tls_redis.url, "--stream", stream_key, "--after", "2020-01-01T00:00:00Z"]

        done = run_cli("check", *common, "--json", env={**base_env, **env})
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["verdict"] == "PASS"
        no_secret(done.stdout, done.stderr)

        # Without the CA the client must refuse the server (the test CA is trusted only by config).
        untrusted = run_cli(
            "check", *common, env={**base_env, **{k: v for k, v in env.items() if "TLS" not in k}}
        )
        assert untrusted.returncode == 1
        no_secret(untrusted.stdout, untrusted.stderr)

        # A wrong password: one clear line, and neither password in it.
        (secrets / "wrong").write_text("not-the-password", encoding="utf-8")
        wrong_env = {**base_env, **env, "QUANTUM_GATE_REDIS_PASSWORD_FILE": str(secrets / "wrong")}
        wrong = run_cli("check", *common, env=wrong_env)
        assert wrong.returncode == 1
        assert "authentication" in wrong.stderr.lower() or "password" in wrong.stderr.lower(), wrong.stderr
        assert "not-the-password" not in wrong.stderr + wrong.stdout
        no_secret(wrong.stdout, wrong.stderr)

        for help_args in (["--help"], ["run", "--help"], ["check", "--help"]):
            shown = run_cli(*help_args, env={**base_env, **env})
            assert shown.returncode == 0
            no_secret(shown.stdout, shown.stderr)

        daemon = DaemonProcess(
            tls_redis.url, stream_key, tmp_path / "daemon", args=["--window", "10000"], env=env
        )
        try:
            daemon.start()
            daemon.wait_until(healthy_pass, timeout=30, what="PASS over TLS")
            xadd_many(admin, stream_key, 20)
            daemon.wait_until(
                lambda m: m.get("events_accepted_total") == 320, timeout=30, what="live over TLS"
            )
            # Redis goes away and comes back: the reconnect path re-reads the password, still unseen.
            tls_redis.kill()
            daemon.wait_until(lambda m: m.get("redis_up") == 0, timeout=30, what="redis_up 0")
            tls_redis.start()
            daemon.wait_until(lambda m: m.get("redis_up") == 1, timeout=60, what="redis_up 1 over TLS")
            pages = [
                http_get(daemon.port, path)[1].decode("utf-8", "replace")
                for path in ("/", "/metrics", "/gate", "/healthz")
            ]
            assert daemon.terminate()[0] == 0
        finally:
            daemon.close()
        no_secret(daemon.log_path.read_text(encoding="utf-8"), *pages)
        events = daemon.log_events()
        assert "stream.disconnected" in events
        assert "stream.reconnected" in events
    finally:
        tls_redis.stop()


# ---- issue 11: the same proof through Sentinel and through a Redis Cluster ---------------------------

SENTINEL_USER, SENTINEL_PASSWORD = "gate-sentinel", "sentinel-pw-93ab"
# docs/redis.md: what quantum-gate needs on the sentinels, and on the data nodes for replica reads.
SENTINEL_RULES = ("+@connection", "+sentinel|masters", "+sentinel|replicas", "+sentinel|slaves")
READ_CATEGORIES = ["+@read", "+@connection"]
CLUSTER_COMMANDS = ("+cluster|slots",)  # redis-py's RedisCluster reads the slot map (CLUSTER SLOTS)


def set_gate_user(client: redis.Redis, commands: tuple[str, ...] = ()) -> None:
    client.acl_setuser(
        ACL_USER,
        enabled=True,
        passwords=[f"+{ACL_PASSWORD}"],
        keys=["*"],
        categories=READ_CATEGORIES,
        commands=list(commands),
        reset=True,
    )


def test_sentinel_replica_reads_under_read_only_acl_users_and_every_acl_log_stays_empty(
    tmp_path: Path, stream_key: str
) -> None:
    from topology_kit import SentinelGroup, command

    group = SentinelGroup(tmp_path / "sentinel", down_after_ms=5000)  # nothing may fail over here
    try:
        group.start()
        data_nodes = [group.master.admin(), group.replica.admin()]
        for node in data_nodes:
            set_gate_user(node, ("+info",))  # INFO replication on the replica read
        sentinels = [sentinel.client() for sentinel in group.sentinels]
        for sentinel in sentinels:
            command(sentinel, "ACL", "SETUSER", SENTINEL_USER, "reset", "on", f">{SENTINEL_PASSWORD}",
                                     *SENTINEL_RULES)  # fmt: skip
        # Control: the sentinel user cannot reconfigure Sentinel, and the sentinel's ACL LOG says so.
        probe = redis.Redis(port=group.sentinels[0].port, username=SENTINEL_USER, password=SENTINEL_PASSWORD)
        with pytest.raises(redis.exceptions.NoPermissionError):
            command(probe, "SENTINEL", "RESET", "*")
        assert [entry["object"] for entry in acl_log(sentinels[0])] == ["sentinel|reset"]
        probe.close()
        sentinels[0].acl_log_reset()
        xadd_many(data_nodes[0], stream_key, 300)
        assert data_nodes[0].wait(1, 5000) == 1
        secrets = tmp_path / "secrets"
        secrets.mkdir()
        (secrets / "sentinel-pw").write_text(SENTINEL_PASSWORD + "\n", encoding="utf-8")
        env = {
            "QUANTUM_GATE_REDIS_SENTINEL_USERNAME": SENTINEL_USER,
            "QUANTUM_GATE_REDIS_SENTINEL_PASSWORD_FILE": str(secrets / "sentinel-pw"),
        }
        url = group.url(read_from="replica", userinfo=f"{ACL_USER}:{ACL_PASSWORD}@")
        base_env = {key: value for key, value in os.environ.items() if not key.startswith("QUANTUM_GATE_")}
        done = run_cli(
            "check", "--redis-url", url, "--stream", stream_key, "--after", "2020-01-01T00:00:00Z", "--json",
            env={**base_env, **env},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["verdict"] == "PASS"
        daemon = DaemonProcess(url, stream_key, tmp_path / "daemon", args=["--window", "10000"], env=env)
        try:
            daemon.start()
            daemon.wait_until(healthy_pass, timeout=30, what="PASS and an XINFO reading")
            xadd_many(data_nodes[0], stream_key, 50)
            live = daemon.wait_until(
                lambda m: m.get("events_accepted_total") == 350 and m.get("redis_replica_link_up") == 1,
                timeout=30,
                what="350 accepted and the replica's link read",
            )
            assert live.value("redis_up") == 1
            assert daemon.terminate()[0] == 0
        finally:
            daemon.close()
        for client in [*data_nodes, *sentinels]:
            assert acl_log(client) == [], "the product sent a command outside its ACL"
        shown = daemon.log_path.read_text(encoding="utf-8") + done.stdout + done.stderr
        assert SENTINEL_PASSWORD not in shown
        assert ACL_PASSWORD not in shown
    finally:
        group.stop()


def test_cluster_reads_under_a_read_only_acl_user_and_acl_log_stays_empty(
    tmp_path: Path, stream_key: str
) -> None:
    from topology_kit import ClusterGroup

    cluster = ClusterGroup(tmp_path / "cluster")
    try:
        cluster.start()
        nodes = [node.admin() for node in cluster.nodes]
        for node in nodes:
            set_gate_user(node, CLUSTER_COMMANDS)
        xadd_many(cluster.admin(), stream_key, 300)  # type: ignore[arg-type]
        owner = cluster.owner_of(stream_key)
        other = next(node for node in cluster.nodes if node is not owner)
        url = cluster.url(other, userinfo=f"{ACL_USER}:{ACL_PASSWORD}@")
        done = run_cli(
            "check", "--redis-url", url, "--stream", stream_key, "--after", "2020-01-01T00:00:00Z", "--json"
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["verdict"] == "PASS"
        daemon = DaemonProcess(url, stream_key, tmp_path / "daemon", args=["--window", "10000"])
        try:
            daemon.start()
            daemon.wait_until(healthy_pass, timeout=30, what="PASS and an XINFO reading")
            xadd_many(cluster.admin(), stream_key, 50)  # type: ignore[arg-type]
            live = daemon.wait_until(
                lambda m: m.get("events_accepted_total") == 350, timeout=30, what="350 accepted"
            )
            assert live.value("redis_up") == 1
            assert daemon.terminate()[0] == 0
        finally:
            daemon.close()
        for node in nodes:
            assert acl_log(node) == [], "the product sent a command outside +@read +@connection"
        assert ACL_PASSWORD not in daemon.log_path.read_text(encoding="utf-8")
    finally:
        cluster.stop()
