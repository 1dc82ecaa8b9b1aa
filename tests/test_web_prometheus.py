"""The daemon behind ``--web-config-file`` scraped by a real Prometheus over TLS with basic auth
(issue 12): ``up == 1`` with the right credential and the test CA, ``up == 0`` for a job with a wrong
password; the password never reaches the daemon's log; SIGHUP re-reads the certificate."""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import RedisServer, free_port, require_tool, wait_until
from hardening_kit import DaemonProcess, xadd_many
from tlskit import PASSWORD, USER, Pki, curl, htpasswd_hash, write_yaml

pytestmark = pytest.mark.slow


def prometheus_query(port: int, query: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=5) as answer:
        result: list[dict[str, Any]] = json.loads(answer.read())["data"]["result"]
    return result


def up_by_job(port: int) -> dict[str, float]:
    try:
        return {item["metric"]["job"]: float(item["value"][1]) for item in prometheus_query(port, "up")}
    except OSError:
        return {}


@pytest.mark.timeout(180)
def test_prometheus_scrapes_the_daemon_over_tls_with_basic_auth(
    redis_server: RedisServer, stream_key: str, tmp_path: Path
) -> None:
    prometheus_bin = require_tool("prometheus")
    pki = Pki(tmp_path / "pki").create()
    pki.server()
    xadd_many(redis_server.admin(), stream_key, 250)
    web = write_yaml(
        pki.directory / "web.yml",
        {
            "tls_server_config": {"cert_file": "server.crt", "key_file": "server.key"},
            "basic_auth_users": {USER: htpasswd_hash()},
        },
    )
    (tmp_path / "password").write_text(PASSWORD + "\n", encoding="utf-8")
    (tmp_path / "wrong").write_text("not-" + PASSWORD + "\n", encoding="utf-8")
    daemon = DaemonProcess(
        redis_server.url, stream_key, tmp_path / "daemon", args=["--web-config-file", str(web)]
    )
    prometheus_port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": job,
                "scheme": "https",
                "basic_auth": {"username": USER, "password_file": str(tmp_path / secret)},
                "tls_config": {"ca_file": str(pki.ca)},
                "static_configs": [{"targets": [f"127.0.0.1:{daemon.port}"]}],
            }
            for job, secret in (("quantum-gate", "password"), ("wrong-password", "wrong"))
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    (tmp_path / "prometheus-data").mkdir()
    prometheus_log = tmp_path / "prometheus.log"
    auth = ["--cacert", str(pki.ca), "-u", f"{USER}:{PASSWORD}"]
    prometheus: subprocess.Popen[bytes] | None = None
    try:
        daemon.start(wait_http=False)
        wait_until(
            lambda: curl(f"https://127.0.0.1:{daemon.port}/healthz", *auth).status == 200,
            60,
            "the daemon healthy over TLS",
            every=0.25,
            explain=daemon.log_tail,
        )
        with prometheus_log.open("wb") as sink:
            prometheus = subprocess.Popen(
                [
                    prometheus_bin,
                    f"--config.file={tmp_path / 'prometheus.yml'}",
                    f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
                    f"--web.listen-address=127.0.0.1:{prometheus_port}",
                ],
                stdout=sink,
                stderr=subprocess.STDOUT,
                cwd=tmp_path,
            )

        def explain() -> str:
            tail = prometheus_log.read_text(encoding="utf-8", errors="replace")[-3000:]
            return (
                f"up: {up_by_job(prometheus_port)}\nprometheus log:\n{tail}\ndaemon log:\n{daemon.log_tail()}"
            )

        wait_until(
            lambda: up_by_job(prometheus_port) == {"quantum-gate": 1.0, "wrong-password": 0.0},
            60,
            "up == 1 for the right credential and 0 for the wrong one",
            every=0.25,
            explain=explain,
        )
        accepted = wait_until(
            lambda: prometheus_query(
                prometheus_port, 'quantum_gate_events_accepted_total{job="quantum-gate"}'
            ),
            30,
            "a scraped sample",
            every=0.25,
            explain=explain,
        )
        assert float(accepted[0]["value"][1]) == 250
        assert not prometheus_query(prometheus_port, 'quantum_gate_build_info{job="wrong-password"}')

        # Plain HTTP to the daemon: no data. SIGHUP: the certificate is re-read.
        plain = curl(f"http://127.0.0.1:{daemon.port}/metrics", "-u", f"{USER}:{PASSWORD}")
        assert plain.status == 0 and plain.body == ""
        daemon.send(signal.SIGHUP)
        wait_until(
            lambda: any(
                e.get("event") == "web.tls_reloaded" and e.get("cause") == "sighup" for e in daemon.logs()
            ),
            10,
            "web.tls_reloaded after SIGHUP",
            every=0.25,
            explain=daemon.log_tail,
        )
        daemon.assert_alive()
        assert up_by_job(prometheus_port)["quantum-gate"] == 1.0
        assert daemon.terminate()[0] == 0
    finally:
        if prometheus is not None and prometheus.poll() is None:
            prometheus.terminate()
            prometheus.wait(timeout=10)
        daemon.close()
    log_text = daemon.log_path.read_text(encoding="utf-8")
    assert PASSWORD not in log_text
    starting = [e for e in daemon.logs() if e.get("event") == "daemon.starting"]
    assert starting and starting[0]["tls"] is True and starting[0]["basic_auth_users"] == 1
