"""The web configuration file (issue 12): what it accepts, what it refuses (one line naming the key,
exit 1, never the secret), basic auth with its cache, and certificate rotation in ``TlsSource``."""

from __future__ import annotations

import base64
import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from conftest import REPO
from hardening_kit import quantum_gate_argv
from structlog.testing import capture_logs
from tlskit import PASSWORD, USER, Pki, htpasswd_hash, write_yaml

from quantum_gate.basicauth import BasicAuth
from quantum_gate.config import ConfigError
from quantum_gate.config_loading import load_settings
from quantum_gate.tlscontext import TlsSource
from quantum_gate.webconfig import load_web_config

# A bcrypt hash of "pw" made once here (cost 4: these tests check the logic, not the cost).
FAST_HASH = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    pki = Pki(tmp_path_factory.mktemp("pki")).create()
    pki.server()
    pki.server("other", "other")
    return pki


def web(tmp_path: Path, document: dict[str, Any]) -> Path:
    return write_yaml(tmp_path / "web.yml", document)


def tls_section(pki: Pki, **extra: Any) -> dict[str, Any]:
    return {
        "cert_file": str(pki.directory / "server.crt"),
        "key_file": str(pki.directory / "server.key"),
        **extra,
    }


def test_a_full_file_is_read_with_paths_relative_to_its_folder(pki: Pki) -> None:
    hashed = htpasswd_hash()
    path = write_yaml(
        pki.directory / "web.yml",
        {
            "tls_server_config": {
                "cert_file": "server.crt",
                "key_file": "server.key",
                "client_auth_type": "RequireAndVerifyClientCert",
                "client_ca_file": "ca.crt",
                "client_allowed_sans": ["prometheus"],
                "min_version": "TLS13",
                "cipher_suites": ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"],
                "curve_preferences": ["X25519"],
            },
            "http_server_config": {"http2": True, "headers": {"x-frame-options": "deny"}},
            "basic_auth_users": {USER: hashed},
        },
    )
    config = load_web_config(path)
    assert config.tls is not None
    assert config.tls.cert_file == pki.directory / "server.crt"
    assert config.tls.client_ca_file == pki.directory / "ca.crt"
    assert config.tls.client_allowed_sans == ("prometheus",)
    assert config.headers == (("X-Frame-Options", "deny"),)
    assert config.users == {USER: hashed.encode()}
    assert hashed not in repr(config)


def test_an_empty_file_means_plain_http_without_auth(tmp_path: Path) -> None:
    path = tmp_path / "web.yml"
    path.write_text("# nothing configured yet\n", encoding="utf-8")
    config = load_web_config(path)
    assert (config.tls, dict(config.users), config.headers) == (None, {}, ())


def test_tls_defaults_to_tls12_and_the_context_refuses_older(pki: Pki, tmp_path: Path) -> None:
    config = load_web_config(web(tmp_path, {"tls_server_config": tls_section(pki)}))
    assert config.tls is not None and config.tls.min_version == "TLS12"
    source = TlsSource(config.tls)
    assert source.current().minimum_version == ssl.TLSVersion.TLSv1_2
    assert source.current().verify_mode == ssl.CERT_NONE


BAD_FILES: list[tuple[str, dict[str, Any], str]] = [
    ("unknown top key", {"tls_config": {}}, "tls_config: unknown key"),
    ("unknown tls key", {"tls_server_config": {"certfile": "x"}}, "tls_server_config.certfile: unknown key"),
    (
        "cert without key",
        {"tls_server_config": {"cert_file": "a.crt"}},
        "tls_server_config.key_file: missing",
    ),
    ("auth type", {"tls_server_config": {"client_auth_type": "Sometimes"}}, "tls_server_config.cert_file"),
    (
        "not bcrypt",
        {"basic_auth_users": {"alice": "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g="}},
        "basic_auth_users.alice: not a bcrypt hash",
    ),
    (
        "plain password",
        {"basic_auth_users": {"alice": "hunter2-plain"}},
        "basic_auth_users.alice: not a bcrypt",
    ),
    (
        "header",
        {"http_server_config": {"headers": {"Server": "x"}}},
        "http_server_config.headers.Server: cannot",
    ),
    (
        "header value",
        {"http_server_config": {"headers": {"X-Frame-Options": "allow"}}},
        "http_server_config.headers.X-Frame-Options: must be one of deny, sameorigin",
    ),
    ("http2", {"http_server_config": {"http2": "yes"}}, "http_server_config.http2: must be true or false"),
]


@pytest.mark.parametrize(
    ("document", "expected"), [(d, e) for _, d, e in BAD_FILES], ids=[i for i, _, _ in BAD_FILES]
)
def test_a_bad_file_is_one_line_naming_the_key(
    tmp_path: Path, document: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_web_config(web(tmp_path, document))
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message
    assert "W6ph5Mm5" not in message and "hunter2" not in message  # the value is never echoed


TLS_PROBLEMS: list[tuple[str, dict[str, Any], str]] = [
    ("auth type", {"client_auth_type": "Sometimes"}, "tls_server_config.client_auth_type: must be one of"),
    (
        "verify without CA",
        {"client_auth_type": "RequireAndVerifyClientCert"},
        "tls_server_config.client_ca_file",
    ),
    ("CA without verify", {"client_ca_file": "ca.crt"}, "tls_server_config.client_auth_type: client_ca_file"),
    ("sans without verify", {"client_allowed_sans": ["x"]}, "tls_server_config.client_allowed_sans"),
    ("min version", {"min_version": "SSL3"}, "tls_server_config.min_version: must be one of"),
    ("cipher", {"cipher_suites": ["TLS_RSA_WITH_RC4_128_SHA"]}, "tls_server_config.cipher_suites"),
    ("curves", {"curve_preferences": ["CurveP256", "X25519"]}, "tls_server_config.curve_preferences"),
]


@pytest.mark.parametrize(
    ("extra", "expected"), [(x, e) for _, x, e in TLS_PROBLEMS], ids=[i for i, _, _ in TLS_PROBLEMS]
)
def test_bad_tls_settings_name_the_key(
    pki: Pki, tmp_path: Path, extra: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected.replace(".", r"\.")):
        load_web_config(web(tmp_path, {"tls_server_config": tls_section(pki, **extra)}))


def test_unusable_key_files_name_the_key(pki: Pki, tmp_path: Path) -> None:
    def refused(**files: str) -> str:
        with pytest.raises(ConfigError) as caught:
            load_web_config(web(tmp_path, {"tls_server_config": tls_section(pki, **files)}))
        return str(caught.value)

    assert "tls_server_config.key_file: " in refused(key_file=str(tmp_path / "absent.key"))
    assert "No such file" in refused(key_file=str(tmp_path / "absent.key"))
    assert "tls_server_config.key_file: " in refused(key_file=str(tmp_path))  # a folder: unreadable
    (tmp_path / "garbage.key").write_text("not a key\n", encoding="ascii")
    assert "holds no PEM private key" in refused(key_file=str(tmp_path / "garbage.key"))
    assert "does not match cert_file" in refused(key_file=str(pki.directory / "other.key"))
    assert "tls_server_config.cert_file" in refused(cert_file=str(pki.directory / "server.key"))
    openssl = shutil.which("openssl")
    assert openssl is not None
    encrypted = tmp_path / "encrypted.key"
    subprocess.run(
        [
            openssl,
            "pkey",
            "-in",
            str(pki.directory / "server.key"),
            "-aes256",
            "-passout",
            "pass:x",
            "-out",
            str(encrypted),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    assert "is encrypted" in refused(key_file=str(encrypted))


def test_the_run_command_refuses_a_bad_file_with_exit_1_and_one_line(tmp_path: Path) -> None:
    """Through flag and environment variable; before Redis is touched (none is running here)."""
    path = web(tmp_path, {"basic_auth_users": {"alice": "plain-Secret-123"}})
    common = ["run", "--redis-url", "redis://127.0.0.1:1/0", "--after", "2020-01-01T00:00:00Z"]
    flag = subprocess.run(
        [*quantum_gate_argv(), *common, "--web-config-file", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    env_run = subprocess.run(
        [*quantum_gate_argv(), *common],
        capture_output=True,
        text=True,
        timeout=60,
        env={"QUANTUM_GATE_HTTP_WEB_CONFIG_FILE": str(path), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    for done in (flag, env_run):
        assert done.returncode == 1
        assert done.stdout == ""
        assert done.stderr.count("\n") == 1, done.stderr
        assert "basic_auth_users.alice: not a bcrypt hash" in done.stderr
        assert "plain-Secret-123" not in done.stderr
    missing = subprocess.run(
        [*quantum_gate_argv(), *common, "--web-config-file", str(tmp_path / "no.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert missing.returncode == 1 and "No such file or directory" in missing.stderr


def test_the_setting_has_a_key_an_environment_variable_and_a_flag(tmp_path: Path) -> None:
    assert load_settings(environ={}).http.web_config_file is None
    via_env = load_settings(environ={"QUANTUM_GATE_HTTP_WEB_CONFIG_FILE": "/etc/qg/web.yml"})
    assert via_env.http.web_config_file == Path("/etc/qg/web.yml")
    via_flag = load_settings(environ={}, overrides={"http.web_config_file": tmp_path / "w.yml"})
    assert via_flag.http.web_config_file == tmp_path / "w.yml"


# ---- basic auth ------------------------------------------------------------------------------------


def basic(user: str, password: str | bytes) -> str:
    raw = user.encode() + b":" + (password if isinstance(password, bytes) else password.encode())
    return "Basic " + base64.b64encode(raw).decode()


def test_a_verified_credential_is_cached_briefly_and_wrong_ones_never() -> None:
    now = [100.0]
    auth = BasicAuth({"alice": FAST_HASH.encode()}, cache_seconds=30, clock=lambda: now[0])
    assert auth.check(basic("alice", "pw"))
    assert auth.bcrypt_rounds == 1
    assert auth.check(basic("alice", "pw"))  # a 1 s scrape interval: no bcrypt round
    assert auth.bcrypt_rounds == 1
    assert not auth.check(basic("alice", "wrong"))  # a wrong password is checked, not matched to the cache
    assert not auth.check(basic("alice", "wrong"))
    assert auth.bcrypt_rounds == 3
    now[0] += 31  # the cache entry expired
    assert auth.check(basic("alice", "pw"))
    assert auth.bcrypt_rounds == 4
    assert "pw" not in repr(auth) and FAST_HASH not in repr(auth)


def test_basic_auth_refuses_every_malformed_or_unknown_credential() -> None:
    auth = BasicAuth({"alice": FAST_HASH.encode()}, cache_seconds=0)
    for header in (
        None,
        "",
        "Bearer abc",
        "Basic !!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        basic("bob", "pw"),
        basic("alice", "x" * 100),
        basic("alice", b"\xff"),
    ):
        assert not auth.check(header), header
    assert auth.check("basic " + basic("alice", "pw").split(" ")[1])  # the scheme is case-insensitive
    # An unknown user still costs a bcrypt round (no user-name oracle through timing).
    before = auth.bcrypt_rounds
    assert not auth.check(basic("mallory", "pw"))
    assert auth.bcrypt_rounds == before + 1


def test_an_htpasswd_hash_verifies_with_the_bcrypt_package() -> None:
    auth = BasicAuth({USER: htpasswd_hash().encode()}, cache_seconds=60)
    assert auth.check(basic(USER, PASSWORD))
    assert not auth.check(basic(USER, PASSWORD + "x"))


# ---- rotation --------------------------------------------------------------------------------------


def served_cn(source: TlsSource, ca: Path) -> str:
    """The CN a client sees from the source's current context (a handshake over memory BIOs)."""
    client_context = ssl.create_default_context(cafile=str(ca))
    client_context.check_hostname = False
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_context.wrap_bio(c_in, c_out)
    server = source.current().wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        done = 0
        for side in (client, server):
            try:
                side.do_handshake()
                done += 1
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if done == 2:
            break
    cert: Any = client.getpeercert()
    return str(dict(pair[0] for pair in cert["subject"])["commonName"])


def test_a_changed_pair_is_picked_up_and_a_broken_one_keeps_the_old_and_logs_once(
    pki: Pki, tmp_path: Path
) -> None:
    live = tmp_path / "live"
    live.mkdir()
    for suffix in ("crt", "key"):
        shutil.copy(pki.directory / f"server.{suffix}", live / f"tls.{suffix}")
    config = load_web_config(
        web(live, {"tls_server_config": {"cert_file": "tls.crt", "key_file": "tls.key"}})
    )
    assert config.tls is not None
    now = [0.0]
    source = TlsSource(config.tls, check_every=1.0, clock=lambda: now[0])
    assert served_cn(source, pki.ca) == "localhost"
    with capture_logs() as logs:
        # A half-done rotation: the new certificate, the old key. Kept, logged once however often asked.
        shutil.copy(pki.directory / "other.crt", live / "tls.crt")
        for _ in range(3):
            now[0] += 1.5
            assert served_cn(source, pki.ca) == "localhost"
        failed = [entry for entry in logs if entry["event"] == "web.tls_reload_failed"]
        assert len(failed) == 1 and "does not match cert_file" in failed[0]["error"]
        shutil.copy(pki.directory / "other.key", live / "tls.key")  # the rotation completes
        now[0] += 1.5
        assert served_cn(source, pki.ca) == "other"
        assert [entry["cause"] for entry in logs if entry["event"] == "web.tls_reloaded"] == ["files"]
        # SIGHUP (request_reload) re-reads at once, inside the check interval, even if nothing changed.
        source.request_reload()
        assert served_cn(source, pki.ca) == "other"
        assert [entry["cause"] for entry in logs if entry["event"] == "web.tls_reloaded"] == [
            "files",
            "sighup",
        ]
    assert source.reloads == 2


def test_the_shipped_example_loads_beside_a_real_pair(pki: Pki, tmp_path: Path) -> None:
    """deploy/web-config.example.yml as the unit hands it over: in one folder with web.crt and web.key."""
    shutil.copy(REPO / "deploy" / "web-config.example.yml", tmp_path / "web-config.yml")
    shutil.copy(pki.directory / "server.crt", tmp_path / "web.crt")
    shutil.copy(pki.directory / "server.key", tmp_path / "web.key")
    config = load_web_config(tmp_path / "web-config.yml")
    assert config.tls is not None and config.tls.key_file == tmp_path / "web.key"
    assert config.tls.min_version == "TLS12" and config.tls.client_auth_type == "NoClientCert"
    assert set(config.users) == {"prometheus"}
    assert ("X-Frame-Options", "deny") in config.headers


def test_the_units_default_credential_is_plain_http(tmp_path: Path) -> None:
    """The systemd units' SetCredential=web-config.yml:{} default: no TLS, no auth."""
    (tmp_path / "web-config.yml").write_text("{}", encoding="utf-8")
    config = load_web_config(tmp_path / "web-config.yml")
    assert (config.tls, dict(config.users), config.headers) == (None, {}, ())
