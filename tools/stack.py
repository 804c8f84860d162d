"""The local stack: the project's own Kafka, Postgres and Redis, run as plain processes.

Kafka is a single-node KRaft broker from the Apache Kafka jars on Maven Central (deploy/kafka/pom.xml);
Postgres and Redis come from Debian packages, installed with apt-get when missing. Every instance
has its own ports, config, data and pid file under the stack dir (MGRID_STACK_DIR, default
<repo>/.stack), so it never touches a system-wide service, and `down()` stops only what `up()`
started. Config templates live in deploy/; this module fills in ports and paths.

No library starts these three as processes without Docker (testcontainers needs an engine), hence
this module.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import shutil
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from string import Template
from typing import Any

from libs.platform import stack_credentials
from libs.platform.settings import REPO_ROOT, PlatformSettings
from libs.platform.signing_keys import ensure_local_key
from libs.platform.stack_credentials import Credentials
from tools.processes import log_tail, port_open, process_matches, read_pid, terminate

DEPLOY_DIR = REPO_ROOT / "deploy"
HOST = "127.0.0.1"
# Overridable so a second stack (a CI rehearsal beside a running one) can listen elsewhere.
KAFKA_PORT = int(os.environ.get("MGRID_STACK_KAFKA_PORT", "59092"))
KAFKA_CONTROLLER_PORT = int(os.environ.get("MGRID_STACK_KAFKA_CONTROLLER_PORT", str(KAFKA_PORT + 1)))
POSTGRES_PORT = int(os.environ.get("MGRID_STACK_POSTGRES_PORT", "55432"))
REDIS_PORT = int(os.environ.get("MGRID_STACK_REDIS_PORT", "56379"))
DB_NAME = "mgrid"
DB_ADMIN = stack_credentials.POSTGRES_ADMIN  # the bootstrap superuser: only the stack connects as it
# The OS user Postgres runs as when we are root: postgres refuses to run as root.
POSTGRES_OS_USER = "postgres"
READY_TIMEOUT_S = 90.0
# About 1 GiB of heap is plenty for one broker with test traffic; G1 with short pauses as Kafka's scripts.
KAFKA_JVM_OPTIONS = (
    "-Xms512m",
    "-Xmx1g",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExitOnOutOfMemoryError",
)
# Three nodes share the machine: half the heap each (measured ~170 MB in use per node with test traffic).
KAFKA_CLUSTER_JVM_OPTIONS = ("-Xms256m", "-Xmx512m", *KAFKA_JVM_OPTIONS[2:])


POSTGRES_BASE_DSN = f"postgresql://{HOST}:{POSTGRES_PORT}/{DB_NAME}"


def endpoints() -> dict[str, str]:
    """Where the stack listens and the tooling credentials (schema owner, Kafka admin), under the
    environment names the settings read (libs/platform/settings). A service started from these steps
    down to its own role and principal (`mgrid run`, `stack_credentials.for_service`)."""
    return {
        "MGRID_KAFKA_BOOTSTRAP": kafka_bootstrap(),
        "MGRID_KAFKA_REPLICATION_FACTOR": str(min(kafka_brokers(), 3)),
        "MGRID_REDIS_URL": f"redis://{HOST}:{REDIS_PORT}/0",
        **credentials().tooling_env(POSTGRES_BASE_DSN),
        "MGRID_STACK_DIR": str(stack_dir()),
    }


def local_env() -> dict[str, str]:
    """`endpoints()` once the stack has generated its credentials; nothing before that."""
    return endpoints() if stack_credentials.load(stack_dir()) is not None else {}


def stack_dir() -> Path:
    return PlatformSettings().stack_dir.resolve()


def credentials(root: Path | None = None) -> Credentials:
    """This stack's generated passwords (made on first use, kept in <stack dir>/credentials.json)."""
    return stack_credentials.ensure(root or stack_dir())


class StackError(RuntimeError):
    """A component failed to install, start, become ready or stop; names it and where to look."""

    def __init__(self, component: str, message: str, log_file: Path | None) -> None:
        self.component = component
        self.log_file = log_file
        text = f"{component}: {message}"
        if log_file is not None:
            text += f" (log: {log_file})"
            tail = log_tail(log_file)
            if tail:
                text += "\n--- last lines of the log ---\n" + tail
        super().__init__(text)


class State(StrEnum):
    RUNNING = "running"  # process alive and its port accepts connections
    STARTING = "starting"  # process alive, port not yet open
    STOPPED = "stopped"


class Action(StrEnum):
    """What `up()` or `down()` did to a component."""

    STARTED = "started"
    ALREADY_RUNNING = "already-running"
    STOPPED = "stopped"
    NOT_RUNNING = "not-running"


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    state: State
    listens: str
    log_file: Path
    pid: int | None
    action: Action | None = None


class Component(ABC):
    """One service of the stack. Subclasses know how to install, start, probe and stop it."""

    name: str
    port: int
    # A word that must appear in the pid's command line: a stale pid file whose pid was reused by
    # another program is then seen as "not running" and that program is never signalled.
    process_marker: str
    stop_grace_s = 30.0

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def dir(self) -> Path:
        """This component's own directory: config, data, log and pid file."""
        return self.root / self.name

    @property
    def pid_file(self) -> Path:
        return self.dir / f"{self.name}.pid"

    @property
    @abstractmethod
    def log_file(self) -> Path: ...

    @abstractmethod
    def ensure_installed(self) -> None: ...

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def _probe(self) -> None:
        """Raise unless the service answers a real request (not just an open port)."""

    def stop(self) -> None:
        """Signal the pid in our own pid file (never a process found by name), wait, forget the file."""
        pid = self.pid()
        if pid is not None:
            terminate(pid, self.process_marker, grace_s=self.stop_grace_s)
        self.pid_file.unlink(missing_ok=True)

    @property
    def listens(self) -> str:
        return f"{HOST}:{self.port}"

    def pid(self) -> int | None:
        pid = read_pid(self.pid_file)
        return pid if pid is not None and process_matches(pid, self.process_marker) else None

    def state(self) -> State:
        if self.pid() is None:
            return State.STOPPED
        return State.RUNNING if port_open(self.port) else State.STARTING

    def status(self) -> ComponentStatus:
        return ComponentStatus(self.name, self.state(), self.listens, self.log_file, self.pid())

    def wait_ready(self, deadline: float) -> None:
        """Poll until the service answers, the process dies, or the deadline passes."""
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.pid() is None:
                raise StackError(self.name, "the process exited while starting", self.log_file)
            if port_open(self.port):
                try:
                    self._probe()
                    return
                except StackError:
                    raise  # a probe that knows waiting will not help
                except Exception as exc:  # any failure means "not ready yet" until the deadline
                    last_error = exc
            time.sleep(0.25)
        raise StackError(self.name, f"not ready by the deadline (last error: {last_error!r})", self.log_file)

    def _refuse_taken_port(self) -> None:
        if port_open(self.port):
            raise StackError(
                self.name, f"port {self.port} is taken by a process this stack did not start", self.log_file
            )


class Kafka(Component):
    """One KRaft node (broker + controller). One of them is the stack's broker; three make a cluster."""

    process_marker = "kafka.Kafka"
    source_dir = DEPLOY_DIR / "kafka"
    libs = source_dir / "libs"
    stop_grace_s = 60.0  # a controlled shutdown flushes every partition

    def __init__(self, root: Path, node_id: int = 1, nodes: int = 1) -> None:
        super().__init__(root)
        self.node_id, self.nodes = node_id, nodes
        # One node keeps the historical name and ports; a cluster's nodes take consecutive port pairs.
        self.name = "kafka" if nodes == 1 else f"kafka-{node_id}"
        self.port = kafka_port(node_id)
        self.controller_port = KAFKA_CONTROLLER_PORT if nodes == 1 else self.port + 1

    @property
    def log_file(self) -> Path:
        return self.dir / "server.log"

    def ensure_installed(self) -> None:
        _ensure_commands("kafka", {"java": "openjdk-17-jre-headless", "mvn": "maven"}, self.root)
        # The stamp, written last, holds the pom's hash: an edited pom or an interrupted resolve
        # (no stamp) means resolve again from scratch.
        stamp = self.libs / ".pom.sha256"
        pom_hash = hashlib.sha256((self.source_dir / "pom.xml").read_bytes()).hexdigest()
        if stamp.exists() and stamp.read_text() == pom_hash:
            return
        shutil.rmtree(self.libs, ignore_errors=True)
        self.dir.mkdir(parents=True, exist_ok=True)
        _run(
            self.name,
            [
                "mvn",
                "-B",
                "-q",
                "-Dstyle.color=never",
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={self.libs}",
            ],
            log_file=self.dir / "maven.log",
            cwd=self.source_dir,
        )
        stamp.write_text(pom_hash)

    def _java(self, main_class: str, *args: str, heap: tuple[str, ...] = ()) -> list[str]:
        return [
            "java",
            *heap,
            f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.dir}",
            "-cp",
            f"{self.libs}/*",
            main_class,
            *args,
        ]

    def _quorum(self) -> list[tuple[int, int]]:
        """(node id, controller port) of every voter."""
        if self.nodes == 1:
            return [(1, self.controller_port)]
        return [(n, kafka_port(n) + 1) for n in range(1, self.nodes + 1)]

    def start(self) -> None:
        self._refuse_taken_port()
        creds = credentials(self.root)
        data = self.dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.dir / "server.properties"
        config.touch(mode=0o600)  # it holds the brokers' own passwords
        config.chmod(0o600)
        _render(
            self.source_dir / "server.properties",
            config,
            node_id=self.node_id,
            port=self.port,
            controller_port=self.controller_port,
            quorum_bootstrap=",".join(f"{HOST}:{port}" for _, port in self._quorum()),
            log_dirs=data,
            replication=min(self.nodes, 3),
            min_isr=2 if self.nodes >= 3 else 1,
            broker_password=creds.kafka[stack_credentials.KAFKA_BROKER],
            controller_password=creds.kafka[stack_credentials.KAFKA_CONTROLLER],
        )
        _render(self.source_dir / "log4j2.properties", self.dir / "log4j2.properties", log_file=self.log_file)
        # Storage formatted before the brokers authenticated has no SCRAM users: this local broker's
        # data (test traffic) is dropped and formatted again, with them.
        stamp = data / "mgrid-scram.stamp"
        if (data / "meta.properties").exists() and not stamp.exists():
            shutil.rmtree(data)
            data.mkdir()
        if not (data / "meta.properties").exists():
            self._format(config, creds)
            stamp.write_text(" ".join(stack_credentials.KAFKA_PRINCIPALS) + "\n")
        # The JVM's own stdout/stderr (crashes before log4j starts) go next to the log file.
        with open(self.dir / "kafka.out", "ab") as out:
            process = subprocess.Popen(
                self._java("kafka.Kafka", str(config),
                           heap=KAFKA_JVM_OPTIONS if self.nodes == 1 else KAFKA_CLUSTER_JVM_OPTIONS),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                start_new_session=True,  # survives the CLI's exit and its terminal (nohup)
            )
        self.pid_file.write_text(f"{process.pid}\n")

    def _format(self, config: Path, creds: Credentials) -> None:
        """Format once, with the cluster's id and quorum and every principal's SCRAM credentials."""
        cluster = _kafka_cluster(self.root, self.nodes, lambda: self._random_uuid())
        users = [u for u in stack_credentials.KAFKA_PRINCIPALS if u != stack_credentials.KAFKA_CONTROLLER]
        scram = [
            arg
            for user in users
            for arg in ("--add-scram", f"SCRAM-SHA-512=[name={user},password={creds.kafka[user]}]")
        ]
        if self.nodes == 1:
            quorum = ["--standalone"]
        else:
            voters = ",".join(
                f"{n}@{HOST}:{port}:{cluster['directories'][n - 1]}" for n, port in self._quorum()
            )
            quorum = ["--initial-controllers", voters]
        _run(
            self.name,
            self._java("kafka.tools.StorageTool", "format", "-t", cluster["cluster_id"], "-c", str(config),
                       *quorum, *scram),
            log_file=self.log_file,
        )

    def _random_uuid(self) -> str:
        out = _run(self.name, self._java("kafka.tools.StorageTool", "random-uuid"), log_file=self.log_file)
        return out.strip().splitlines()[-1]

    def _probe(self) -> None:
        if not (self.dir / "data" / "mgrid-scram.stamp").exists():
            # Started by an older version, without authentication: only a restart formats it with users.
            raise StackError(self.name, "running without SASL users: run `mgrid stack down` then `mgrid stack up`",
                             self.log_file)
        _run_async(_kafka_metadata(kafka_admin_settings(f"{HOST}:{self.port}")))


def kafka_port(node_id: int) -> int:
    return KAFKA_PORT + 2 * (node_id - 1)


def kafka_brokers(root: Path | None = None) -> int:
    """How many Kafka nodes this stack runs: as recorded by its last `up`, else MGRID_STACK_KAFKA_BROKERS or 1."""
    record = (root or stack_dir()) / "kafka.brokers"
    if record.exists():
        return int(record.read_text().strip())
    return int(os.environ.get("MGRID_STACK_KAFKA_BROKERS", "1"))


def kafka_bootstrap(root: Path | None = None) -> str:
    return ",".join(f"{HOST}:{kafka_port(n)}" for n in range(1, kafka_brokers(root) + 1))


def kafka_admin_settings(bootstrap: str | None = None) -> PlatformSettings:
    """The stack's Kafka admin principal: creates topics and ACLs; never given to a service."""
    env = credentials().kafka_env(stack_credentials.KAFKA_ADMIN)
    return PlatformSettings(
        kafka_bootstrap=bootstrap or kafka_bootstrap(),
        kafka_security_protocol=env["MGRID_KAFKA_SECURITY_PROTOCOL"],
        kafka_sasl_mechanism=env["MGRID_KAFKA_SASL_MECHANISM"],
        kafka_sasl_username=env["MGRID_KAFKA_SASL_USERNAME"],
        kafka_sasl_password=env["MGRID_KAFKA_SASL_PASSWORD"],
        kafka_replication_factor=min(kafka_brokers(), 3),
    )


def _kafka_cluster(root: Path, nodes: int, random_uuid: Callable[[], str]) -> dict[str, Any]:
    """The cluster id and controller directory ids every node is formatted with (made once)."""
    import json

    file = root / "kafka.cluster.json"
    if file.exists():
        cluster: dict[str, Any] = json.loads(file.read_text())
        if cluster.get("nodes") == nodes:
            return cluster
    cluster = {"nodes": nodes, "cluster_id": random_uuid(), "directories": [random_uuid() for _ in range(nodes)]}
    file.write_text(json.dumps(cluster))
    return cluster


class Postgres(Component):
    name = "postgres"
    port = POSTGRES_PORT
    process_marker = "postgres"

    @property
    def _record(self) -> Path:
        return self.root / "postgres.location"

    @cached_property
    def dir(self) -> Path:
        """Where the data dir and log live: see `_choose_postgres_dir`; recorded by the first start."""
        if self._record.exists():
            return Path(self._record.read_text().strip())
        return _choose_postgres_dir(self.root)

    @property
    def data(self) -> Path:
        return self.dir / "data"

    @property
    def log_file(self) -> Path:
        return self.dir / "postgres.log"

    @property
    def pid_file(self) -> Path:
        return self.data / "postmaster.pid"  # written by the postmaster itself

    def ensure_installed(self) -> None:
        if _postgres_bin() is None:
            _apt_install(self.name, ["postgresql"], self.root)
        if os.geteuid() == 0 and _run_quiet(["id", "-u", POSTGRES_OS_USER]) != 0:
            _run(
                self.name,
                [
                    "useradd",
                    "--system",
                    "--user-group",
                    "--home-dir",
                    "/var/lib/postgresql",
                    "--shell",
                    "/bin/sh",
                    POSTGRES_OS_USER,
                ],
                log_file=None,
            )

    def _as_db_user(self, command: list[str]) -> list[str]:
        return ["runuser", "-u", POSTGRES_OS_USER, "--", *command] if os.geteuid() == 0 else command

    def _pg(self, tool: str, *args: str) -> str:
        bin_dir = _postgres_bin()
        assert bin_dir is not None, "ensure_installed() runs first"
        # cwd in a dir the db user can read: initdb and pg_ctl complain about an unreachable cwd.
        return _run(self.name, self._as_db_user([str(bin_dir / tool), *args]), log_file=self.log_file, cwd=self.dir)

    def _own(self, path: Path) -> None:
        if os.geteuid() == 0:
            shutil.chown(path, POSTGRES_OS_USER, POSTGRES_OS_USER)

    def start(self) -> None:
        self._refuse_taken_port()
        self.root.mkdir(parents=True, exist_ok=True)
        self._record.write_text(f"{self.dir}\n")
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._own(self.dir)
        if not (self.data / "PG_VERSION").exists():
            shutil.rmtree(self.data, ignore_errors=True)  # a half-done initdb leaves a non-empty dir
            password_file = self.dir / "initdb.pw"
            password_file.write_text(credentials(self.root).postgres[DB_ADMIN] + "\n")
            self._own(password_file)
            try:
                # The bootstrap superuser is `mgrid`, as with the postgres image's POSTGRES_USER.
                self._pg(
                    "initdb",
                    "-D",
                    str(self.data),
                    "-U",
                    DB_ADMIN,
                    f"--pwfile={password_file}",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--no-locale",
                )
            finally:
                password_file.unlink(missing_ok=True)
            with open(self.data / "postgresql.conf", "a") as conf:
                conf.write("\ninclude_if_exists = 'mgrid.conf'\n")
        _render(DEPLOY_DIR / "postgres" / "postgresql.conf", self.data / "mgrid.conf", port=POSTGRES_PORT)
        self._own(self.data / "mgrid.conf")
        if not self.log_file.exists():
            self.log_file.touch()
            self._own(self.log_file)
        self._pg("pg_ctl", "-D", str(self.data), "-l", str(self.log_file), "-w", "-t", "60", "start")

    def _probe(self) -> None:
        _run_async(_postgres_ready(credentials(self.root)))

    def stop(self) -> None:
        if self.pid() is not None:
            self._pg("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")


class Redis(Component):
    name = "redis"
    port = REDIS_PORT
    process_marker = "redis-server"

    @property
    def log_file(self) -> Path:
        return self.dir / "redis.log"

    def ensure_installed(self) -> None:
        if shutil.which("redis-server") is None:
            _apt_install(self.name, ["redis-server"], self.root)

    def start(self) -> None:
        self._refuse_taken_port()
        self.dir.mkdir(parents=True, exist_ok=True)
        config = self.dir / "redis.conf"
        _render(
            DEPLOY_DIR / "redis" / "redis.conf",
            config,
            port=REDIS_PORT,
            dir=self.dir,
            pid_file=self.pid_file,
            log_file=self.log_file,
        )
        # daemonize=yes: redis forks, writes its own pid file and this call returns.
        _run(self.name, ["redis-server", str(config)], log_file=self.log_file, cwd=self.dir)

    def _probe(self) -> None:
        import redis

        client = redis.Redis(host=HOST, port=REDIS_PORT, socket_timeout=2)
        try:
            client.ping()
        finally:
            client.close()


def components(root: Path | None = None) -> list[Component]:
    root = root or stack_dir()
    nodes = kafka_brokers(root)
    return [*(Kafka(root, n, nodes) for n in range(1, nodes + 1)), Postgres(root), Redis(root)]


def _use_brokers(brokers: int | None) -> None:
    """Record how many Kafka nodes to run; refuse to change it under a running cluster."""
    if brokers is None:
        return
    if brokers not in (1, 3):
        raise StackError("kafka", f"--brokers must be 1 or 3, not {brokers}", None)
    current = kafka_brokers()
    if brokers != current and any(c.pid() is not None for c in components() if isinstance(c, Kafka)):
        raise StackError("kafka", f"{current} broker(s) running; `mgrid stack down` before changing to {brokers}",
                         None)
    stack_dir().mkdir(parents=True, exist_ok=True)
    (stack_dir() / "kafka.brokers").write_text(f"{brokers}\n")


def up(*, timeout_s: float = READY_TIMEOUT_S, brokers: int | None = None) -> list[ComponentStatus]:
    """Install what is missing, start what is stopped, wait until all answer. Idempotent.

    Then provisions what only the admin may create: the registry's topics and their ACLs.
    """
    with _stack_lock():
        ensure_local_key()  # the local token issuer's key, random per installation (docs/security.md)
        _use_brokers(brokers)
        stack = components()
        actions: dict[str, Action] = {}
        # Start all before waiting for any: Kafka's JVM warms up while Postgres and Redis start.
        for component in stack:
            if component.state() is State.STOPPED:
                component.ensure_installed()
                component.start()
                actions[component.name] = Action.STARTED
            else:
                actions[component.name] = Action.ALREADY_RUNNING
        deadline = time.monotonic() + timeout_s
        for component in stack:
            component.wait_ready(deadline)
        provision_kafka()
        return [replace(c.status(), action=actions[c.name]) for c in stack]


def provision_kafka(prefix: str = "") -> None:
    """As the admin: the registry's topics and the ACLs generated from it, for topics named `prefix`...

    For the stack's own (unprefixed) set, also drops the ACLs of prefixes with no topic left: runs that
    ended before giving theirs back (docs/security.md).
    """
    from libs.platform.messaging.acls import prune_orphaned_acls
    from libs.platform.messaging.topics_admin import provision

    admin = kafka_admin_settings().model_copy(update={"topic_prefix": prefix})
    _run_async(provision(admin))
    if not prefix and admin.kafka_security_protocol != "PLAINTEXT":
        _run_async(prune_orphaned_acls(admin))


def down(*, purge: bool = False) -> list[ComponentStatus]:
    """Stop what this stack started (its own pid files only). `purge` also deletes every data dir."""
    with _stack_lock():
        stack = components()
        results = {}

        def stop(component: Component) -> None:
            action = Action.NOT_RUNNING if component.pid() is None else Action.STOPPED
            component.stop()
            results[component.name] = replace(component.status(), action=action)

        # A cluster's nodes stop together: one stopped alone waits for a quorum that is leaving.
        with ThreadPoolExecutor(max_workers=len(stack)) as pool:
            list(pool.map(stop, [c for c in stack if isinstance(c, Kafka)]))
        for component in reversed([c for c in stack if not isinstance(c, Kafka)]):
            stop(component)
        if purge:
            _purge(stack)
        return [results[c.name] for c in stack]


def _purge(stack: list[Component]) -> None:
    for component in stack:
        shutil.rmtree(component.dir, ignore_errors=True)
        if isinstance(component, Postgres):
            component._record.unlink(missing_ok=True)
            if component.dir == _fallback_postgres_dir(component.root):
                shutil.rmtree(component.dir.parent, ignore_errors=True)


def status() -> list[ComponentStatus]:
    return [component.status() for component in components()]


# --- probes -------------------------------------------------------------------------------------


async def _kafka_metadata(admin_settings: PlatformSettings) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    from libs.platform.messaging.kafka import client_options

    admin = AIOKafkaAdminClient(**client_options(admin_settings), request_timeout_ms=5000)
    try:
        await asyncio.wait_for(admin.start(), timeout=10)
        await asyncio.wait_for(admin.list_topics(), timeout=10)
    finally:
        await admin.close()


async def _postgres_ready(creds: Credentials) -> None:
    """Create the `mgrid` database and the roles (db_roles), then answer `select 1` as the owner."""
    import asyncpg

    from libs.platform.db_roles import ensure_roles

    admin_password = creds.postgres[DB_ADMIN]
    try:
        admin = await asyncpg.connect(
            host=HOST, port=POSTGRES_PORT, user=DB_ADMIN, password=admin_password, database="postgres", timeout=5
        )
    except asyncpg.InvalidPasswordError:
        # A cluster made before passwords were generated: move it off the old password in the source.
        admin = await asyncpg.connect(
            host=HOST, port=POSTGRES_PORT, user=DB_ADMIN, password=stack_credentials.LEGACY_POSTGRES_PASSWORD,
            database="postgres", timeout=5,
        )
        await admin.execute(f"ALTER ROLE \"{DB_ADMIN}\" PASSWORD '{admin_password}'")  # hex: no quoting needed
    try:
        if not await admin.fetchval("select 1 from pg_database where datname = $1", DB_NAME):
            await admin.execute(f'create database "{DB_NAME}"')
    finally:
        await admin.close()
    await ensure_roles(creds.dsn(POSTGRES_BASE_DSN, DB_ADMIN), DB_NAME, creds.postgres)
    connection = await asyncpg.connect(creds.dsn(POSTGRES_BASE_DSN, stack_credentials.POSTGRES_OWNER), timeout=5)
    try:
        await connection.fetchval("select 1")
    finally:
        await connection.close()


def _run_async(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run a probe from sync code, also when the caller is itself inside an event loop (async fixtures)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


# --- processes, files, packages -------------------------------------------------------------------


def _run(component: str, command: list[str], *, log_file: Path | None, cwd: Path | None = None) -> str:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if log_file is not None and result.returncode != 0 and log_file.parent.exists():
        with open(log_file, "a") as log:  # keep the failing command's output where the error points
            log.write(f"$ {' '.join(command)}\n{result.stdout}{result.stderr}\n")
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise StackError(component, f"`{' '.join(command[:4])} ...` failed: {' | '.join(detail)}", log_file)
    return result.stdout


def _run_quiet(command: list[str]) -> int:
    return subprocess.run(command, capture_output=True).returncode


def _render(template: Path, target: Path, **values: object) -> None:
    target.write_text(Template(template.read_text()).substitute({k: str(v) for k, v in values.items()}))


_apt_updated = False


def _apt_install(component: str, packages: list[str], root: Path) -> None:
    global _apt_updated
    if os.geteuid() != 0:
        raise StackError(component, f"missing: run `apt-get install -y {' '.join(packages)}` as root", None)
    root.mkdir(parents=True, exist_ok=True)
    log_file = root / "install.log"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with open(log_file, "a") as log:
        steps = [] if _apt_updated else [["apt-get", "update"]]
        for command in [*steps, ["apt-get", "install", "-y", "--no-install-recommends", *packages]]:
            log.write(f"$ {' '.join(command)}\n")
            log.flush()
            if subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env).returncode != 0:
                raise StackError(component, f"`{' '.join(command)}` failed", log_file)
    _apt_updated = True


def ensure_debian_command(command: str, package: str, root: Path) -> str:
    """The path of `command`, installing its Debian package with apt-get when missing (e.g. chromium for tests)."""
    _ensure_commands(package, {command: package}, root)
    found = shutil.which(command)
    if found is None:
        raise StackError(package, f"`{command}` is still missing after installing {package}", None)
    return found


def _ensure_commands(component: str, packages_by_command: dict[str, str], root: Path) -> None:
    missing = [package for command, package in packages_by_command.items() if shutil.which(command) is None]
    if missing:
        _apt_install(component, missing, root)


def _postgres_bin() -> Path | None:
    """The newest installed major version's bin dir (/usr/lib/postgresql/<major>/bin), if any."""
    found = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")]
    return max(found, key=lambda p: int(p.parent.name), default=None)


def _choose_postgres_dir(root: Path) -> Path:
    """<stack>/postgres when the db user can get there, else a per-stack dir under /var/tmp.

    As root, Postgres runs as the `postgres` OS user, which must traverse every parent of its data
    dir. A CI checkout in a `mktemp -d` dir (mode 0700) is not traversable by it, so the data goes
    to /var/tmp/mgrid-<hash of the stack dir>/postgres instead.
    """
    preferred = root / "postgres"
    if os.geteuid() != 0:
        return preferred
    nearest = next(p for p in (root, *root.parents) if p.exists())  # before the first `up`, its parent
    if _run_quiet(["runuser", "-u", POSTGRES_OS_USER, "--", "test", "-x", str(nearest)]) == 0:
        return preferred
    return _fallback_postgres_dir(root)


def _fallback_postgres_dir(root: Path) -> Path:
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:12]
    return Path("/var/tmp") / f"mgrid-{digest}" / "postgres"


@contextmanager
def _stack_lock() -> Iterator[None]:
    """One `up`/`down` at a time per stack dir (parallel test sessions may both call `up`)."""
    root = stack_dir()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "stack.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
