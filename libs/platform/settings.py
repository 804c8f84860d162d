"""Configuration by environment (MGRID_*), with defaults that work on one machine (the local stack)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]


class PlatformSettings(BaseSettings):
    """Endpoints and messaging knobs shared by every service. Services subclass it for their own."""

    model_config = SettingsConfigDict(env_prefix="MGRID_", extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:59092"
    # The broker authenticates every client (docs/security.md): SASL_PLAINTEXT on loopback (the
    # local stack), SASL_SSL across hosts; PLAINTEXT only for a broker without security.
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = None
    kafka_ssl_cafile: str | None = None  # SASL_SSL: the CA that signed the brokers' certificates
    # Replicas of each topic the admin creates: 1 on a single broker, 3 on a cluster (`--brokers 3`).
    kafka_replication_factor: int = 1
    # Codec of the batches every producer sends (aiokafka, through cramjam). None by default: zstd cut a
    # fleet cycle's bytes on the log 13x (268 -> 20 KiB) for no change in CPU per cycle, but added ~5 ms to a
    # single request at low load (compressing ~280 kB on the relay's path); a fleet short of disk or network
    # between brokers sets zstd (docs/performance.md, eighth round). aiokafka's lz4 is fixed at level 9 (HC).
    kafka_compression: Literal["none", "zstd", "lz4", "snappy", "gzip"] = "none"
    # The role this process works as (a service: its own login role, docs/security.md). No password
    # by default: the local stack generates them (`mgrid stack env`).
    postgres_dsn: str = "postgresql://127.0.0.1:55432/mgrid"
    # The schema owner: creates the service's schema, runs its migrations and grants the role of
    # `postgres_dsn` its rights there. Unset: migrations run as `postgres_dsn` (a deployment that
    # migrates in a separate step, or a single-role development database).
    postgres_owner_dsn: str | None = None
    redis_url: str = "redis://127.0.0.1:56379/0"
    stack_dir: Path = REPO_ROOT / ".stack"
    # Prefix for every topic and consumer group: lets tests and parallel runs share one broker safely.
    topic_prefix: str = ""
    consumer_max_attempts: int = 5
    consumer_backoff_initial_s: float = 0.2
    consumer_backoff_max_s: float = 5.0
    # Records handled per unit of work (one transaction, one offset commit). Bounds the latency a
    # batch adds to its first record; under load batches fill up and amortise commits.
    consumer_max_batch: int = 100
    # How long a handled batch's offsets may wait to be committed with later batches' (one request to the
    # group coordinator for all of them; the broker's cost follows requests). An idle poll, a revocation and
    # a stop commit at once. The inbox makes a redelivery after a crash a no-op. 0: a commit per batch.
    consumer_commit_interval_s: float = Field(default=0.5, ge=0, le=10)
    # Under load (batches handled less than 100 ms apart), how long a consumer waits after a batch before
    # polling the next, so the records arriving meanwhile share one transaction, outbox write, relay pass,
    # produce and fetch: ~20 % less CPU a fleet cycle for up to this much more latency a hop under load
    # (docs/performance.md, seventeenth round). At low load, and after a full batch (consumer_max_batch:
    # more records already wait), it polls at once. 0: never waits.
    consumer_linger_ms: float = Field(default=30, ge=0, le=1000)
    # Allocations between two young-generation collections of Python's cycle collector (CPython's default
    # is 700). A service holding a fleet's state in memory paid ~9 s of collections in a 30-depot run at
    # the default and ~1.6 s at 50,000 (balancing 41 -> 32 ms of CPU a cycle, docs/performance.md).
    gc_gen0_threshold: int = Field(default=50_000, ge=100, le=10_000_000)
    # Freed heap memory a process keeps instead of handing it back to the kernel (glibc's trim threshold;
    # blocks up to 32 MiB then come from the heap too). A cycle frees megabytes that the next one
    # allocates again, and each page handed back faulted in again (libs.platform.allocator). 0: glibc's
    # defaults.
    malloc_keep_bytes: int = Field(default=256 * 1024 * 1024, ge=0, le=4 * 1024 * 1024 * 1024)
    # Lanes a polled batch is split into by record key, run concurrently, each in its own transaction
    # (libs.platform.messaging.consumer). 1: the whole batch in one transaction, in order.
    consumer_lanes: int = Field(default=1, ge=1, le=16)
    # A dead letter above this size carries an excerpt of the payload instead (broker limit is 1 MiB).
    dead_letter_max_bytes: int = 900_000
    dead_letter_excerpt_bytes: int = 4096
    outbox_poll_interval_s: float = 0.5
    # Messages per relay pass, about: rows are claimed while the messages before them are fewer (a pack
    # counts its messages; a pack larger than this still goes, alone). A pass costs three awaits on an
    # event loop shared with the consumer, however many messages it carries: at 200 (two cycles' packs of a
    # curtailed depot) the relay fell behind once the consumer kept the loop busy, and a fleet of 60 depots
    # collapsed to 30-44 cycles/s; at 2,000, 54-55 (issue 13, docs/performance.md, tenth round). At low
    # load a pass carries what is waiting, so the size changes no latency.
    outbox_batch_size: int = Field(default=2_000, ge=1, le=100_000)
    # Published outbox rows stay readable this long (tests audit what a service emitted), then the relay
    # deletes them; 0 (the default): deleted once the broker has them, Kafka being the record.
    outbox_retention_s: float = 0.0
    http_host: str = "127.0.0.1"
    http_port: int = 0
    # How long the HTTP door keeps an idle keep-alive connection open. A client must give up its idle
    # connections sooner (the simulator: `SimulatorSettings.http_limits`, half of it): when both sides use
    # the same timeout (uvicorn's and httpx's defaults are both 5 s) a request sent on a connection the
    # server is closing at that moment fails with "Server disconnected without sending a response".
    http_keep_alive_s: int = Field(default=30, ge=2, le=3600)

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    def unprefixed(self, topic: str) -> str:
        return topic[len(self.topic_prefix):] if topic.startswith(self.topic_prefix) else topic
