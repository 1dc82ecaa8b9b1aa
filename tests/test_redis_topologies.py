"""Issue 11: Redis as production runs it. Sentinel failover, replica reads and Redis Cluster, with real
servers (tests/topology_kit.py), and the connection forms (quantum_gate/connection.py).

The daemon runs as a child process and is observed only through /metrics and its JSON log, exactly as
in the hardening tests. Every server a test starts is killed by its fixture's finalizer.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from conftest import RedisServer, wait_until
from hardening_kit import (
    COMPACT_VARIANTS,
    EARLY_CUTOVER,
    DaemonProcess,
    Metrics,
    quantum_gate_argv,
    xadd_many,
)
from topology_kit import REDIS_TROUBLE, ClusterGroup, SentinelGroup, command

from quantum_gate.config import ConfigError
from quantum_gate.config_loading import load_settings
from quantum_gate.connection import RedisTarget, node_kwargs, parse_redis_url, sentinel_kwargs

FAST_RECONNECT = {"QUANTUM_GATE_REDIS_BACKOFF_MAX_SECONDS": "0.5"}


# ---- the connection forms (pure) ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6379/0", RedisTarget("direct")),
        ("rediss://h:1/0", RedisTarget("direct", tls=True)),
        ("unix:///run/redis.sock", RedisTarget("direct")),
        (
            "redis+sentinel://a:26379,b:26380/mymaster",
            RedisTarget("sentinel", hosts=(("a", 26379), ("b", 26380)), master_name="mymaster"),
        ),
        (
            "rediss+sentinel://gate:pw@a,[::1]:7/mymaster/3?read_from=replica",
            RedisTarget(
                "sentinel",
                tls=True,
                hosts=(("a", 26379), ("::1", 7)),
                username="gate",
                password="pw",
                master_name="mymaster",
                db=3,
                read_from="replica",
            ),
        ),
        ("redis+cluster://x:7000,y:7001", RedisTarget("cluster", hosts=(("x", 7000), ("y", 7001)))),
        ("redis+cluster://:pw@x/0", RedisTarget("cluster", hosts=(("x", 6379),), password="pw")),
    ],
)
def test_connection_forms_parse(url: str, expected: RedisTarget) -> None:
    parsed = parse_redis_url(url)
    assert parsed == expected
    assert parsed.password == expected.password  # repr=False hides it, equality still compares it


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("redis+sentinel://h:1", "no master name"),
        ("redis+sentinel://h:1/m/x", "database must be a number"),
        ("redis+sentinel://h:1/m/0/extra", "too many path parts"),
        ("redis+sentinel://h:99999/m", "port must be a number"),
        ("redis+sentinel://h:1,,h:2/m", "empty host"),
        ("redis+sentinel://h:1/m?read_from=nearest", "read_from must be master or replica"),
        ("redis+sentinel://h:1/m?timeout=3", "unknown URL parameter 'timeout'"),
        ("redis+cluster://h:1?read_from=replica", "for redis+sentinel:// only"),
        ("redis+cluster://h:1/2", "only database 0"),
        ("redis+cluster:///0", "no host"),
        ("redis+nonsense://h:1", "must start with"),
    ],
)
def test_bad_forms_are_refused_in_one_line(url: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(environ={}, overrides={"redis.url": url})
    message = str(raised.value)
    assert fragment in message
    assert "\n" not in message
    assert message.startswith("config: redis.url: ")


SECRET = "hunter2-never-shown"


@pytest.mark.parametrize(
    "url",
    [
        f"redis+sentinel://gate:{SECRET}@127.0.0.1:1,127.0.0.1:99999/m",
        f"redis+sentinel://gate:{SECRET}@127.0.0.1:1/m?password={SECRET}",
        f"redis+cluster://gate:{SECRET}@h:1/5",
    ],
)
def test_a_bad_form_at_start_is_one_line_without_traceback_or_password(url: str, tmp_path: Path) -> None:
    for subcommand in (["check", "--after", EARLY_CUTOVER], ["run", "--after", EARLY_CUTOVER]):
        done = subprocess.run(
            [*quantum_gate_argv(), *subcommand, "--redis-url", url],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=tmp_path,
        )
        assert done.returncode == 1
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "redis.url" in done.stderr
        assert "Traceback" not in done.stderr
        assert SECRET not in done.stderr + done.stdout


def test_the_redacted_url_of_a_multi_host_form_hides_the_credentials() -> None:
    url = f"redis+sentinel://gate:{SECRET}@127.0.0.1:1,127.0.0.1:2/mymaster/0?read_from=replica"
    shown = load_settings(environ={}, overrides={"redis.url": url}).redis.redacted_url()
    assert shown == "redis+sentinel://***@127.0.0.1:1,127.0.0.1:2/mymaster/0?read_from=replica"


def test_tls_and_credentials_for_sentinels_and_data_nodes_are_set_apart(tmp_path: Path) -> None:
    """rediss+sentinel:// is TLS to both; the sentinels get their own user and password (from the file),
    the data node the URL's."""
    (tmp_path / "sentinel-pw").write_text("s-secret\n", encoding="utf-8")
    url = "rediss+sentinel://gate:d-secret@127.0.0.1:1/mymaster/2"
    settings = load_settings(
        environ={},
        overrides={
            "redis.url": url,
            "redis.tls_ca_file": str(tmp_path / "ca.crt"),
            "redis.sentinel_username": "gate-sentinel",
            "redis.sentinel_password_file": str(tmp_path / "sentinel-pw"),
        },
    )
    target = parse_redis_url(url)
    to_sentinels = sentinel_kwargs(settings, target)
    assert to_sentinels["username"] == "gate-sentinel"
    assert to_sentinels["password"] == "s-secret"
    assert to_sentinels["ssl"] is True
    assert to_sentinels["ssl_ca_certs"] == str(tmp_path / "ca.crt")
    to_node = node_kwargs(settings, target, target.password)
    assert (to_node["username"], to_node["password"], to_node["ssl"]) == ("gate", "d-secret", True)
    plain = parse_redis_url("redis+sentinel://127.0.0.1:1/mymaster")
    assert "ssl" not in sentinel_kwargs(settings, plain)
    assert "ssl" not in node_kwargs(settings, plain, None)


# ---- fixtures: real topologies, always torn down ------------------------------------------------------


@pytest.fixture
def sentinel_group(tmp_path: Path) -> Iterator[SentinelGroup]:
    """down-after-milliseconds 1000, for the tests that fail a node over or down."""
    group = SentinelGroup(tmp_path / "sentinel")
    try:
        group.start()
        yield group
    finally:
        group.stop()


@pytest.fixture
def steady_sentinel_group(tmp_path: Path) -> Iterator[SentinelGroup]:
    """down-after-milliseconds 5000, for tests in which nothing may fail over."""
    group = SentinelGroup(tmp_path / "sentinel", down_after_ms=5000)
    try:
        group.start()
        yield group
    finally:
        group.stop()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ClusterGroup]:
    group = ClusterGroup(tmp_path / "cluster")
    try:
        group.start()
        yield group
    finally:
        group.stop()


def post_events(metrics: Metrics) -> float | None:
    return metrics.get("window_events", window="post")


def endpoint(metrics: Metrics) -> dict[str, str]:
    found = [dict(labels) for labels, value in metrics.family("redis_endpoint_info").items() if value == 1]
    assert len(found) <= 1, found
    return found[0] if found else {}


def run_check(url: str, stream: str, *extra: str) -> dict[str, object]:
    done = subprocess.run(
        [*quantum_gate_argv(), "check", "--redis-url", url, "--stream", stream, "--after", EARLY_CUTOVER,
         "--window", "5000", "--json", *extra],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode in {0, 2}, done.stderr
    document: dict[str, object] = json.loads(done.stdout)
    return document


def check_post_events(url: str, stream: str) -> int:
    progress = run_check(url, stream)["progress"]
    assert isinstance(progress, dict)
    return int(progress["events"])


def no_traceback(daemon: DaemonProcess) -> None:
    text = daemon.log_path.read_text(encoding="utf-8")
    assert "Traceback" not in text
    assert not [line for line in daemon.logs() if line.get("exc_info") or line.get("exception")]


# ---- Sentinel -----------------------------------------------------------------------------------------


def test_daemon_follows_a_sentinel_failover_counting_every_event_once(
    sentinel_group: SentinelGroup, tmp_path: Path, stream_key: str
) -> None:
    group = sentinel_group
    url = group.url()
    old_master = group.master.admin()
    xadd_many(old_master, stream_key, 500)
    daemon = DaemonProcess(
        url, stream_key, tmp_path / "daemon", args=["--window", "5000"], env=FAST_RECONNECT
    )
    try:
        daemon.start()
        before = daemon.wait_until(lambda m: post_events(m) == 500, timeout=30, what="500 in the post window")
        assert endpoint(before) == {"role": "master", "address": f"127.0.0.1:{group.master.port}"}
        # All 500 reached the replica before the kill: this test is about following the failover (a write
        # lost in replication is the rollback test's business).
        assert old_master.wait(1, 5000) == 1
        old_port = group.master.port
        group.master.kill()  # SIGKILL
        new_port = group.wait_failover(old_port)
        assert new_port == group.replica.port
        daemon.wait_until(
            lambda m: m.get("redis_up") == 1 and endpoint(m).get("address") == f"127.0.0.1:{new_port}",
            timeout=30,
            what="the daemon reading the new master",
        )
        xadd_many(group.replica.admin(), stream_key, 500)
        after = daemon.wait_until(
            lambda m: post_events(m) == 1000, timeout=30, what="1000 in the post window"
        )
        assert after.value("redis_up") == 1
        assert after.value("events_accepted_total") == 1000
        assert after.value("entries_read_total") == 1000  # nothing read twice
        assert after.value("redis_failovers_total") == 1
        assert after.value("stream_rollbacks_total") == 0
        assert endpoint(after) == {"role": "master", "address": f"127.0.0.1:{new_port}"}
        assert check_post_events(url, stream_key) == 1000  # check, through the same URL, agrees
        settled = daemon.wait_until(
            lambda m: m.get("stream_length") == 1000, timeout=30, what="an XINFO reading"
        )
        assert post_events(settled) == 1000
        assert daemon.terminate()[0] == 0
    finally:
        daemon.close()
    no_traceback(daemon)
    events = daemon.log_events()
    assert events.count("redis.failover") == 1
    assert "stream.disconnected" in events
    assert "stream.rollback" not in events


def test_replica_reads_send_no_command_to_the_master(
    steady_sentinel_group: SentinelGroup, tmp_path: Path, stream_key: str
) -> None:
    group = steady_sentinel_group
    master = group.master.admin()
    master.client_setname("test-harness")
    master.config_resetstat()
    xadd_many(master, stream_key, 300)
    assert master.wait(1, 5000) == 1
    daemon = DaemonProcess(
        group.url(read_from="replica"), stream_key, tmp_path / "daemon", args=["--window", "5000"]
    )
    try:
        daemon.start()
        daemon.wait_until(lambda m: post_events(m) == 300, timeout=30, what="300 read from the replica")
        xadd_many(master, stream_key, 50)  # live entries, replicated, tailed on the replica
        live = daemon.wait_until(
            lambda m: post_events(m) == 350 and m.get("redis_replica_link_up") == 1,
            timeout=30,
            what="350 and the replica's link state",
        )
        assert endpoint(live) == {"role": "replica", "address": f"127.0.0.1:{group.replica.port}"}
        assert live.value("redis_replica_fallback") == 0
        assert live.value("redis_replica_last_io_seconds") >= 0
        # While the daemon is still connected: who talks to the master?
        strangers = [
            client
            for client in master.client_list()
            if client.get("name") != "test-harness"
            and "S" not in str(client.get("flags"))  # the replica's replication link
            and not str(client.get("name", "")).startswith("sentinel-")
        ]
        assert strangers == []
        assert daemon.terminate()[0] == 0
    finally:
        daemon.close()
    stats = master.info("commandstats")
    stream_reads = {"cmdstat_xread", "cmdstat_xrevrange", "cmdstat_xrange", "cmdstat_xinfo"}
    read_commands = {name for name in stats if name.split("|")[0] in stream_reads}
    assert read_commands == set(), read_commands
    replica_stats = group.replica.admin().info("commandstats")
    assert "cmdstat_xread" in replica_stats  # the control: the reads did happen, on the replica
    no_traceback(daemon)


def test_replica_reads_fall_back_to_the_master_when_no_replica_is_up_and_say_so(
    sentinel_group: SentinelGroup, tmp_path: Path, stream_key: str
) -> None:
    group = sentinel_group
    master = group.master.admin()
    xadd_many(master, stream_key, 100)
    group.replica.kill()

    def replica_down() -> bool:
        client = group.sentinels[0].client()
        try:
            return all("s_down" in str(r.get("flags")) for r in client.sentinel_slaves("mymaster"))
        finally:
            client.close()

    wait_until(replica_down, 30, "the sentinels marking the replica down", every=0.05, ignore=REDIS_TROUBLE)
    daemon = DaemonProcess(group.url(read_from="replica"), stream_key, tmp_path / "daemon")
    try:
        daemon.start()
        seen = daemon.wait_until(lambda m: post_events(m) == 100, timeout=30, what="100 read from the master")
        assert endpoint(seen) == {"role": "master", "address": f"127.0.0.1:{group.master.port}"}
        assert seen.value("redis_replica_fallback") == 1
        assert daemon.terminate()[0] == 0
    finally:
        daemon.close()
    assert "redis.replica_fallback" in daemon.log_events()


def write_entries(client: redis.Redis, key: str, base: int, count: int) -> None:
    """``count`` entries with explicit IDs ``base + 10 * i`` (ms), the same on every node."""
    pipe = client.pipeline(transaction=False)
    for index in range(count):
        pipe.xadd(key, COMPACT_VARIANTS[index % len(COMPACT_VARIANTS)], id=f"{base + index * 10}-0")  # type: ignore[arg-type]
    pipe.execute()


def test_the_daemon_keeps_reading_its_node_while_no_sentinel_answers(
    steady_sentinel_group: SentinelGroup, tmp_path: Path, stream_key: str
) -> None:
    group = steady_sentinel_group
    master = group.master.admin()
    xadd_many(master, stream_key, 100)
    daemon = DaemonProcess(group.url(), stream_key, tmp_path / "daemon", args=["--window", "5000"])
    try:
        daemon.start()
        daemon.wait_until(lambda m: post_events(m) == 100, timeout=30, what="100 read")
        for sentinel in group.sentinels:
            sentinel.stop()
        xadd_many(master, stream_key, 50)
        # stream_length comes from the XINFO that follows each endpoint check (every 5 s): seeing 150
        # there means a check ran with every sentinel gone and kept the working master.
        seen = daemon.wait_until(
            lambda m: m.get("stream_length") == 150 and post_events(m) == 150, timeout=30, what="a check"
        )
        assert seen.value("redis_up") == 1
        assert endpoint(seen) == {"role": "master", "address": f"127.0.0.1:{group.master.port}"}
        assert daemon.terminate()[0] == 0
    finally:
        daemon.close()
    assert "stream.disconnected" not in daemon.log_events()


# ---- a rollback: the new node's stream ends before what was counted ---------------------------------


def test_a_rollback_is_counted_once_keeps_the_windows_and_never_blocks_lower_ids(
    tmp_path: Path, stream_key: str
) -> None:
    """The old node acknowledged 300 entries; the node that replaces it on the same address only has the
    first 200 (as a promoted replica would when the last writes never replicated). New writes then get IDs
    below the lost ones: the daemon must read them, and count the rollback once."""
    base = 1_800_000_000_000
    # The node that takes over: the first 200 entries with the same IDs, saved to an RDB it loads at start.
    replacement = RedisServer(tmp_path / "new")
    first = RedisServer(tmp_path / "old")
    try:
        replacement.start()
        write_entries(replacement.admin(), stream_key, base, 200)
        replacement.admin().save()
        replacement.stop()
        replacement.port = first.port
        first.start()
        write_entries(first.admin(), stream_key, base, 300)
        daemon = DaemonProcess(
            first.url, stream_key, tmp_path / "daemon", args=["--window", "5000"], env=FAST_RECONNECT
        )
        try:
            daemon.start()
            daemon.wait_until(lambda m: post_events(m) == 300, timeout=30, what="300 counted")
            first.kill()
            daemon.wait_until(lambda m: m.get("redis_up") == 0, timeout=30, what="redis_up 0")
            replacement.start()
            survivor = replacement.admin()
            assert survivor.xlen(stream_key) == 200
            rolled = daemon.wait_until(
                lambda m: m.get("redis_up") == 1 and m.get("stream_rollbacks_total") == 1,
                timeout=30,
                what="the rollback counted",
            )
            assert post_events(rolled) == 300  # the windows keep what they held
            # New entries with IDs below the lost ones (base+2000 .. base+2990) must still be read.
            pipe = survivor.pipeline(transaction=False)
            for index in range(50):
                pipe.xadd(stream_key, COMPACT_VARIANTS[index], id=f"{base + 1995 + index}-0")  # type: ignore[arg-type]
            pipe.execute()
            after = daemon.wait_until(lambda m: post_events(m) == 350, timeout=30, what="the 50 new entries")
            assert after.value("stream_rollbacks_total") == 1
            assert after.value("stream_resets_total") == 0  # a rollback is not also a reset
            assert after.value("events_accepted_total") == 350
            assert daemon.terminate()[0] == 0
        finally:
            daemon.close()
    finally:
        first.kill()
        replacement.kill()
    rollbacks = [line for line in daemon.logs() if line.get("event") == "stream.rollback"]
    assert len(rollbacks) == 1
    assert rollbacks[0]["counted_up_to"] == f"{base + 2990}-0"
    assert rollbacks[0]["stream_ends_at"] == f"{base + 1990}-0"
    assert rollbacks[0]["window_events_beyond_end"] == 100
    no_traceback(daemon)


# ---- Redis Cluster ------------------------------------------------------------------------------------


def migrate_slot(group: ClusterGroup, key: str, target: RedisServer) -> None:
    """Move ``key``'s slot to ``target`` the way redis-cli --cluster reshard does, one step at a time:
    SETSLOT IMPORTING / MIGRATING, MIGRATE the keys, SETSLOT NODE on both sides."""
    source = group.owner_of(key)
    slot = group.slot_of(key)
    source_id, target_id = group.node_id(source), group.node_id(target)
    command(target.admin(), "CLUSTER SETSLOT", slot, "IMPORTING", source_id)
    command(source.admin(), "CLUSTER SETSLOT", slot, "MIGRATING", target_id)
    while keys := command(source.admin(), "CLUSTER GETKEYSINSLOT", slot, 100):
        command(source.admin(), "MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
    for node in (target, source, *[n for n in group.nodes if n not in (source, target)]):
        command(node.admin(), "CLUSTER SETSLOT", slot, "NODE", target_id)


def test_cluster_check_through_a_node_that_does_not_own_the_slot(
    cluster: ClusterGroup, stream_key: str
) -> None:
    admin = cluster.admin()
    xadd_many(admin, stream_key, 300)  # type: ignore[arg-type]
    owner = cluster.owner_of(stream_key)
    other = next(node for node in cluster.nodes if node is not owner)
    assert command(other.admin(), "CLUSTER COUNTKEYSINSLOT", cluster.slot_of(stream_key)) == 0  # not there
    assert check_post_events(cluster.url(other), stream_key) == 300


def test_cluster_daemon_tails_through_a_slot_migration_losing_and_doubling_nothing(
    cluster: ClusterGroup, tmp_path: Path, stream_key: str
) -> None:
    admin = cluster.admin()
    xadd_many(admin, stream_key, 200)  # type: ignore[arg-type]
    owner = cluster.owner_of(stream_key)
    other = next(node for node in cluster.nodes if node is not owner)
    daemon = DaemonProcess(
        cluster.url(other), stream_key, tmp_path / "daemon", args=["--window", "5000"], env=FAST_RECONNECT
    )
    try:
        daemon.start()
        started = daemon.wait_until(lambda m: post_events(m) == 200, timeout=30, what="200 from the cluster")
        assert endpoint(started) == {"role": "master", "address": f"127.0.0.1:{owner.port}"}
        xadd_many(admin, stream_key, 100)  # type: ignore[arg-type]
        daemon.wait_until(lambda m: post_events(m) == 300, timeout=30, what="300 tailed")
        migrate_slot(cluster, stream_key, other)
        assert cluster.owner_of(stream_key) is other
        assert command(other.admin(), "CLUSTER COUNTKEYSINSLOT", cluster.slot_of(stream_key)) == 1
        fresh = redis.RedisCluster(host="127.0.0.1", port=other.port, socket_timeout=5)
        xadd_many(fresh, stream_key, 100)  # type: ignore[arg-type]
        after = daemon.wait_until(lambda m: post_events(m) == 400, timeout=30, what="400 after the migration")
        assert after.value("events_accepted_total") == 400
        assert after.value("entries_read_total") == 400
        moved = daemon.wait_until(
            lambda m: endpoint(m).get("address") == f"127.0.0.1:{other.port}",
            timeout=30,
            what="the new owner",
        )
        assert moved.value("redis_up") == 1
        assert check_post_events(cluster.url(owner), stream_key) == 400
        assert daemon.terminate()[0] == 0
    finally:
        daemon.close()
    no_traceback(daemon)


def test_a_cluster_url_on_a_plain_server_is_one_line_without_traceback(redis_server: RedisServer) -> None:
    done = subprocess.run(
        [*quantum_gate_argv(), "check", "--redis-url", f"redis+cluster://127.0.0.1:{redis_server.port}",
         "--after", EARLY_CUTOVER],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert "Cluster mode is not enabled" in done.stderr
    assert "Traceback" not in done.stderr
