"""Real Redis topologies on loopback for the issue-11 tests: a master, a replica and three sentinels, or a
three-master Redis Cluster. Every process gets a free port and a ``--dir`` of its own; ``stop()`` kills
them all (the fixtures call it in a finalizer, so a failing test leaves nothing running).

The test harness may write and administer (XADD, CLUSTER SETSLOT, MIGRATE, ACL SETUSER): only the
product is read-only.
"""

from __future__ import annotations

import functools
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from conftest import RedisServer, free_port, require_tool, wait_until

MASTER_NAME = "mymaster"
CLUSTER_PORT_LIMIT = 55535  # the cluster bus listens on port + 10000
REDIS_TROUBLE = (redis.RedisError, OSError)  # a node still starting or just killed: "not yet"
# The old name, kept importable: the kit's wait_until with this module's cadence and errors.
wait_for = functools.partial(wait_until, every=0.05, ignore=REDIS_TROUBLE)


def command(client: redis.Redis, *args: object) -> Any:
    """``execute_command`` with a type (redis-py leaves it untyped) for the harness's admin commands."""
    return client.execute_command(*args)  # type: ignore[no-untyped-call]


@dataclass
class SentinelProcess:
    directory: Path
    master_port: int
    port: int = field(default_factory=free_port)
    down_after_ms: int = 1000
    extra_config: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = require_tool("redis-server")
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "sentinel.conf"
        lines = [
            f"port {self.port}",
            "bind 127.0.0.1",
            f"dir {self.directory}",
            f"logfile {self.directory / 'sentinel.log'}",
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master_port} 2",
            f"sentinel down-after-milliseconds {MASTER_NAME} {self.down_after_ms}",
            f"sentinel failover-timeout {MASTER_NAME} 10000",
            f"sentinel parallel-syncs {MASTER_NAME} 1",
            *self.extra_config,
        ]
        config.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.process = subprocess.Popen(
            [binary, str(config), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def client(self, **kwargs: object) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5, **kwargs)  # type: ignore[arg-type]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@dataclass
class SentinelGroup:
    """One master, one replica, three sentinels (quorum 2)."""

    directory: Path
    # 1000 ms as the failover test needs; tests that must not see a failover use more, so that a loaded
    # machine (a replica or master slow to answer a ping for a second) cannot trigger one.
    down_after_ms: int = 1000
    master: RedisServer = field(init=False)
    replica: RedisServer = field(init=False)
    sentinels: list[SentinelProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.master = RedisServer(self.directory / "master")
        self.replica = RedisServer(self.directory / "replica")
        self.replica.extra_args = ("--replicaof", "127.0.0.1", str(self.master.port))

    def start(self, sentinel_config: tuple[str, ...] = ()) -> SentinelGroup:
        self.master.start()
        self.replica.start()
        wait_until(self.replica_in_sync, 20, "the replica's first sync", every=0.05, ignore=REDIS_TROUBLE)
        for index in range(3):
            sentinel = SentinelProcess(
                self.directory / f"sentinel{index}",
                self.master.port,
                down_after_ms=self.down_after_ms,
                extra_config=sentinel_config,
            )
            self.sentinels.append(sentinel)
            sentinel.start()
        wait_until(
            self.sentinels_ready,
            30,
            "three sentinels seeing the master and the replica",
            every=0.05,
            ignore=REDIS_TROUBLE,
        )
        return self

    def replica_in_sync(self) -> bool:
        info = self.replica.admin().info("replication")
        return str(info.get("master_link_status")) == "up"

    def sentinels_ready(self) -> bool:
        for sentinel in self.sentinels:
            client = sentinel.client()
            try:
                state: dict[str, Any] = client.sentinel_master(MASTER_NAME)  # type: ignore[assignment]
                if int(state.get("num-slaves", 0)) < 1 or int(state.get("num-other-sentinels", 0)) < 2:
                    return False
            finally:
                client.close()
        return True

    def url(self, *, read_from: str | None = None, db: int = 0, userinfo: str = "", tls: bool = False) -> str:
        hosts = ",".join(f"127.0.0.1:{sentinel.port}" for sentinel in self.sentinels)
        query = f"?read_from={read_from}" if read_from else ""
        scheme = "rediss+sentinel" if tls else "redis+sentinel"
        return f"{scheme}://{userinfo}{hosts}/{MASTER_NAME}/{db}{query}"

    def master_port_by_sentinels(self) -> int | None:
        client = self.sentinels[0].client()
        try:
            address: Any = client.sentinel_get_master_addr_by_name(MASTER_NAME)
        finally:
            client.close()
        return int(address[1]) if address else None

    def wait_failover(self, old_port: int, timeout: float = 30) -> int:
        """After the master died: the port Sentinel promoted, once it answers as a master."""

        def promoted() -> int | None:
            port = self.master_port_by_sentinels()
            if port is None or port == old_port:
                return None
            role = redis.Redis(port=port, socket_timeout=5).info("replication").get("role")
            return port if role == "master" else None

        return wait_until(
            promoted, timeout, "Sentinel to promote the replica", every=0.05, ignore=REDIS_TROUBLE
        )

    def stop(self) -> None:
        for sentinel in self.sentinels:
            sentinel.stop()
        self.replica.kill()
        self.master.kill()


def free_cluster_port() -> int:
    """A free port below 55535 whose bus port (port + 10000) is free too."""
    for _ in range(200):
        port = free_port()
        if port >= CLUSTER_PORT_LIMIT:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair below 55535 for a cluster node")


@dataclass
class ClusterGroup:
    """Three masters, no replicas, slots spread by ``redis-cli --cluster create``."""

    directory: Path
    nodes: list[RedisServer] = field(default_factory=list)

    def start(self) -> ClusterGroup:
        require_tool("redis-cli")
        for index in range(3):
            node = RedisServer(
                self.directory / f"node{index}",
                port=free_cluster_port(),
                extra_args=("--cluster-enabled", "yes", "--cluster-node-timeout", "5000"),
            )
            node.extra_args += ("--cluster-config-file", str(node.directory / "nodes.conf"))
            self.nodes.append(node)
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run(
            [shutil.which("redis-cli") or "redis-cli", "--cluster", "create", *addresses, "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        wait_until(self.converged, 30, "cluster_state:ok on every node", every=0.05, ignore=REDIS_TROUBLE)
        return self

    def converged(self) -> bool:
        return all(node.admin().cluster("info").get("cluster_state") == "ok" for node in self.nodes)

    def admin(self) -> redis.RedisCluster:
        return redis.RedisCluster(host="127.0.0.1", port=self.nodes[0].port, socket_timeout=5)

    def slot_of(self, key: str) -> int:
        return int(command(self.nodes[0].admin(), "CLUSTER KEYSLOT", key))

    def owner_of(self, key: str) -> RedisServer:
        """The node that owns ``key``'s slot, from CLUSTER SLOTS as the first node sees it."""
        slot = self.slot_of(key)
        for row in command(self.nodes[0].admin(), "CLUSTER SLOTS"):
            if int(row[0]) <= slot <= int(row[1]):
                port = int(row[2][1])
                return next(node for node in self.nodes if node.port == port)
        raise AssertionError(f"no node owns slot {slot}")

    def node_id(self, node: RedisServer) -> str:
        return bytes(command(node.admin(), "CLUSTER MYID")).decode()

    def url(self, node: RedisServer, userinfo: str = "") -> str:
        return f"redis+cluster://{userinfo}127.0.0.1:{node.port}"

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()
