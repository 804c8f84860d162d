"""The local stack's generated credentials: one Postgres role and one Kafka principal per service.

Passwords are random per installation and kept in `<stack dir>/credentials.json` (mode 0600), never
in the source. Who holds which rights is decided elsewhere (`libs.platform.db_roles` for Postgres,
`libs.platform.messaging.acls` for Kafka); this module only names the identities, keeps their
secrets and turns them into the MGRID_* environment a process reads (`libs.platform.settings`).

A real deployment provides the same variables from its own secret store (docs/security.md).
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

from contracts.topics import SERVICES
from libs.platform.settings import PlatformSettings

# Postgres: the cluster's bootstrap superuser (only the stack uses it, to create the roles below),
# the owner of every service schema (runs migrations), and one login role per service.
POSTGRES_ADMIN = "mgrid"
POSTGRES_OWNER = "mgrid_owner"
# The password the bootstrap superuser had before credentials were generated: a stack created then
# is moved to a generated password on its next `up`.
LEGACY_POSTGRES_PASSWORD = "mgrid"

# Kafka: the admin (topics, ACLs), the brokers' own identities, one principal per service, the
# simulator, and the legacy producers (legacy circuit registry, load balancer, scheduler).
KAFKA_ADMIN = "admin"
KAFKA_BROKER = "broker"  # inter-broker, SCRAM on the client listener
KAFKA_CONTROLLER = "controller"  # SASL/PLAIN on the controller listener (SCRAM cannot be used there)
KAFKA_SIMULATOR = "simulator"
KAFKA_LEGACY = "legacy"
KAFKA_PRINCIPALS = (KAFKA_ADMIN, KAFKA_BROKER, KAFKA_CONTROLLER, *SERVICES, KAFKA_SIMULATOR, KAFKA_LEGACY)
KAFKA_SECURITY_PROTOCOL = "SASL_PLAINTEXT"  # loopback only; a deployment across hosts uses SASL_SSL
KAFKA_SASL_MECHANISM = "SCRAM-SHA-512"

FILE_NAME = "credentials.json"
S = TypeVar("S", bound=PlatformSettings)


def postgres_role(service: str) -> str:
    return f"mgrid_{service}"


def postgres_roles() -> tuple[str, ...]:
    return (POSTGRES_ADMIN, POSTGRES_OWNER, *(postgres_role(s) for s in SERVICES))


@dataclass(frozen=True)
class Credentials:
    """Passwords by Postgres role and by Kafka principal."""

    postgres: dict[str, str]
    kafka: dict[str, str]

    def kafka_env(self, principal: str) -> dict[str, str]:
        return {
            "MGRID_KAFKA_SECURITY_PROTOCOL": KAFKA_SECURITY_PROTOCOL,
            "MGRID_KAFKA_SASL_MECHANISM": KAFKA_SASL_MECHANISM,
            "MGRID_KAFKA_SASL_USERNAME": principal,
            "MGRID_KAFKA_SASL_PASSWORD": self.kafka[principal],
        }

    def dsn(self, base_dsn: str, role: str) -> str:
        """`base_dsn` (host, port, database) with `role` and its password."""
        return with_user(base_dsn, role, self.postgres[role])

    def service_env(self, service: str, base_dsn: str) -> dict[str, str]:
        """What `mgrid run <service>` runs with: its own role and principal; migrations as the owner."""
        return {
            "MGRID_POSTGRES_DSN": self.dsn(base_dsn, postgres_role(service)),
            "MGRID_POSTGRES_OWNER_DSN": self.dsn(base_dsn, POSTGRES_OWNER),
            **self.kafka_env(service),
        }

    def tooling_env(self, base_dsn: str) -> dict[str, str]:
        """Local tools and tests: the schema owner and the Kafka admin (never given to a service)."""
        owner = self.dsn(base_dsn, POSTGRES_OWNER)
        return {"MGRID_POSTGRES_DSN": owner, "MGRID_POSTGRES_OWNER_DSN": owner, **self.kafka_env(KAFKA_ADMIN)}


def with_user(dsn: str, user: str, password: str) -> str:
    parts = urlsplit(dsn)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def dsn_user(dsn: str) -> str | None:
    return urlsplit(dsn).username


def path(root: Path | None = None) -> Path:
    return (root or PlatformSettings().stack_dir.resolve()) / FILE_NAME


def load(root: Path | None = None) -> Credentials | None:
    """The stack's credentials, or None when this stack dir has none (a stack from before, or none)."""
    file = path(root)
    if not file.exists():
        return None
    data: dict[str, Any] = json.loads(file.read_text())
    return Credentials(postgres=dict(data.get("postgres", {})), kafka=dict(data.get("kafka", {})))


def ensure(root: Path) -> Credentials:
    """Load, adding a random password for every identity that has none yet (the first `up` makes all)."""
    current = load(root) or Credentials(postgres={}, kafka={})
    postgres = {role: current.postgres.get(role) or secrets.token_hex(24) for role in postgres_roles()}
    kafka = {user: current.kafka.get(user) or secrets.token_hex(24) for user in KAFKA_PRINCIPALS}
    result = Credentials(postgres=postgres, kafka=kafka)
    if result != current:
        root.mkdir(parents=True, exist_ok=True)
        file = path(root)
        tmp = file.with_suffix(".tmp")
        # Readable by this user only, from the first byte on.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({"postgres": postgres, "kafka": kafka}, out, indent=2, sort_keys=True)
        tmp.replace(file)
    return result


def as_kafka_principal(settings: S, principal: str, root: Path | None = None) -> S:
    """`settings` with the local stack's Kafka `principal` (the simulator, the legacy producers)."""
    credentials = load(root or settings.stack_dir.resolve())
    if credentials is None or principal not in credentials.kafka or settings.kafka_security_protocol == "PLAINTEXT":
        return settings
    password = credentials.kafka[principal]
    return settings.model_copy(update={"kafka_sasl_username": principal, "kafka_sasl_password": password})


def for_service(settings: PlatformSettings, service: str, root: Path | None = None) -> PlatformSettings:
    """`settings` stepped down to `service`'s own role and principal, when the local stack knows them.

    Tools and tests hold the owner's and the admin's credentials; a service they start must never
    run with those. Without stack credentials (an outside stack, no security), `settings` as given.
    """
    credentials = load(root or settings.stack_dir.resolve())
    if credentials is None or postgres_role(service) not in credentials.postgres:
        return settings
    env = credentials.service_env(service, settings.postgres_dsn)
    return settings.model_copy(
        update={
            "postgres_dsn": env["MGRID_POSTGRES_DSN"],
            "postgres_owner_dsn": settings.postgres_owner_dsn or env["MGRID_POSTGRES_OWNER_DSN"],
            "kafka_security_protocol": KAFKA_SECURITY_PROTOCOL,
            "kafka_sasl_mechanism": KAFKA_SASL_MECHANISM,
            "kafka_sasl_username": service,
            "kafka_sasl_password": credentials.kafka[service],
        }
    )


def compose_env(credentials: Credentials) -> dict[str, str]:
    """The variables docker-compose.yml reads (`mgrid stack compose-env > .env`): every password."""
    env = {f"MGRID_KAFKA_{user.upper()}_PASSWORD": password for user, password in credentials.kafka.items()}
    env["MGRID_POSTGRES_ADMIN_PASSWORD"] = credentials.postgres[POSTGRES_ADMIN]
    env["MGRID_POSTGRES_OWNER_PASSWORD"] = credentials.postgres[POSTGRES_OWNER]
    for service in SERVICES:
        env[f"MGRID_POSTGRES_{service.upper()}_PASSWORD"] = credentials.postgres[postgres_role(service)]
    return env
