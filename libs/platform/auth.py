"""Bearer-token auth: HS256 JWTs with `sub` and space-separated `scope` claims, checked per route.

The signing secret comes from MGRID_AUTH_SECRET. Without it the documented dev-only secret below is
used, so a local stack works out of the box; never run a shared deployment on it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

import jwt
from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from libs.platform.http.errors import ApiError

SECRET_ENV = "MGRID_AUTH_SECRET"
DEV_ONLY_SECRET = "mgrid-dev-only-secret-do-not-use-in-production"
ALGORITHM = "HS256"
SERVICE_TOKEN_TTL_SECONDS = 300


class Scope(StrEnum):
    OPERATOR_READ = "operator:read"
    OPERATOR_WRITE = "operator:write"
    INTEGRATION_WRITE = "integration:write"


@dataclass(frozen=True)
class Principal:
    subject: str
    scopes: frozenset[str]


def auth_secret() -> str:
    # Read on every call so a changed environment (tests, rotation on restart) is honoured.
    return os.environ.get(SECRET_ENV) or DEV_ONLY_SECRET


def issue_token(subject: str, scopes: Iterable[str], ttl_seconds: int | None = None) -> str:
    """A signed token; without `ttl_seconds` it carries no `exp` and never expires."""
    now = int(time.time())
    claims: dict[str, object] = {"sub": subject, "scope": " ".join(str(s) for s in scopes), "iat": now}
    if ttl_seconds is not None:
        claims["exp"] = now + ttl_seconds
    return jwt.encode(claims, auth_secret(), algorithm=ALGORITHM)


def service_token(service_name: str, ttl_seconds: int = SERVICE_TOKEN_TTL_SECONDS) -> str:
    """Token for service-to-service internal calls; short-lived, so issue one per call or batch."""
    return issue_token(service_name, [Scope.INTEGRATION_WRITE, Scope.OPERATOR_READ], ttl_seconds)


def verify_token(token: str) -> Principal:
    """The token's principal, or ApiError 401 if it is malformed, badly signed or expired."""
    try:
        claims = jwt.decode(token, auth_secret(), algorithms=[ALGORITHM], options={"require": ["sub"]})
    except jwt.ExpiredSignatureError:
        raise ApiError.unauthenticated("Bearer token has expired", invalid_token=True) from None
    except jwt.InvalidTokenError:
        raise ApiError.unauthenticated("Bearer token is invalid", invalid_token=True) from None
    scope = claims.get("scope", "")
    if not isinstance(scope, str):
        raise ApiError.unauthenticated("Bearer token scope claim is not a string", invalid_token=True)
    return Principal(subject=str(claims["sub"]), scopes=frozenset(scope.split()))


# auto_error=False: a missing token must produce our 401 shape, not FastAPI's default 403.
_bearer = HTTPBearer(auto_error=False)


def require_scopes(*scopes: Scope | str) -> Callable[..., Principal]:
    """FastAPI dependency: the caller's Principal, holding every one of `scopes` (else 401/403)."""
    needed = tuple(str(s) for s in scopes)

    def principal(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        if credentials is None:
            raise ApiError.unauthenticated("Missing bearer token")
        found = verify_token(credentials.credentials)
        missing = [s for s in needed if s not in found.scopes]
        if missing:
            raise ApiError.forbidden(f"Token lacks required scope: {' '.join(missing)}")
        return found

    return principal
