"""Bearer-token auth: who the caller is (`sub`), what they may do (`scope`) and on which microgrids.

Two kinds of token are accepted (docs/security.md):
- HS256 tokens of the local issuer (`issue_token`, `mgrid token issue`), signed with the key from
  `libs.platform.signing_keys` (never a key in the source);
- RS256/ES256 tokens of an identity provider, verified against its JWKS (MGRID_AUTH_JWKS_URL), with
  `iss` and `aud` checked when MGRID_AUTH_ISSUER / MGRID_AUTH_AUDIENCE are set.

Every token must carry `exp`, and no token may live longer than MGRID_AUTH_TOKEN_MAX_TTL_S.
The object grant: `microgrids` (a list of microgrid ids, or "*" for all: platform operators and the
local tools) and `depots` (a list of depot ids). A route outside the grant answers 404.
"""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Any
from uuid import UUID

import jwt
from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import TypeAdapter, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.base import Name
from libs.platform.http.errors import ApiError
from libs.platform.signing_keys import SECRET_ENV, SigningKeyError, configured_secret

__all__ = ["SECRET_ENV", "SigningKeyError"]

ALGORITHM = "HS256"  # the local issuer's
ASYMMETRIC_ALGORITHMS = ("RS256", "ES256")  # an identity provider's, verified against its JWKS
LOCAL_ISSUER = "mgrid-local"
ALL_MICROGRIDS = "*"
SERVICE_TOKEN_TTL_SECONDS = 300


class AuthSettings(BaseSettings):
    """MGRID_AUTH_*: token lifetimes and the identity provider. The HS256 key: libs.platform.signing_keys."""

    model_config = SettingsConfigDict(env_prefix="MGRID_AUTH_", extra="ignore")

    token_ttl_s: int = 3600
    token_max_ttl_s: int = 86_400
    jwks_url: str | None = None
    issuer: str | None = None
    audience: str | None = None
    # Tolerance for clocks of issuer and verifier: applied to exp/iat/nbf.
    leeway_s: int = 30


class Scope(StrEnum):
    OPERATOR_READ = "operator:read"
    OPERATOR_WRITE = "operator:write"
    INTEGRATION_WRITE = "integration:write"


@dataclass(frozen=True)
class Grant:
    """The objects a token may act on: some microgrids and depots, or every microgrid (`everything`)."""

    everything: bool = False
    microgrids: frozenset[UUID] = frozenset()
    depots: frozenset[UUID] = frozenset()

    def covers_microgrid(self, microgrid_id: UUID) -> bool:
        return self.everything or microgrid_id in self.microgrids

    def covers_depot(self, depot_id: UUID | None, microgrid_ids: Iterable[UUID] = ()) -> bool:
        """A depot route is covered by the depot's own grant or by a grant of a microgrid it maps to."""
        if self.everything or (depot_id is not None and depot_id in self.depots):
            return True
        return any(m in self.microgrids for m in microgrid_ids)

    def claims(self) -> dict[str, object]:
        microgrids: object = ALL_MICROGRIDS if self.everything else sorted(str(m) for m in self.microgrids)
        return {"microgrids": microgrids, "depots": sorted(str(d) for d in self.depots)}


ALL = Grant(everything=True)


@dataclass(frozen=True)
class Principal:
    subject: str
    scopes: frozenset[str]
    grant: Grant = field(default_factory=Grant)


def auth_settings() -> AuthSettings:
    # Follows the environment (tests change it) without building settings per request (milliseconds).
    return _auth_settings(tuple(os.environ.get(name) for name in _AUTH_ENV))


_AUTH_ENV = tuple(f"MGRID_AUTH_{field.upper()}" for field in AuthSettings.model_fields)


@lru_cache(maxsize=8)
def _auth_settings(_env: tuple[str | None, ...]) -> AuthSettings:
    return AuthSettings()


def _signing_secret() -> str:
    secret = configured_secret()
    if secret is None:
        raise SigningKeyError(
            "no token signing key: set MGRID_AUTH_SECRET or MGRID_AUTH_SECRET_FILE,"
            " or run `./mgrid stack up` to create the local one"
        )
    return secret


def require_verifier() -> None:
    """Called at service start: refuse to run unless tokens can be verified (a key or a JWKS URL)."""
    settings = auth_settings()
    if settings.jwks_url:
        configured_secret()  # a configured but unusable key is still an error
        return
    _signing_secret()


# The subject becomes the actor of every audit record a write makes, so it obeys the same text rules.
_SUBJECT = TypeAdapter(Name)
_SUBJECT_RULE = "1-200 characters of text without NUL or lone surrogates (it becomes the audit actor)"


def _subject_ok(subject: object) -> bool:
    try:
        _SUBJECT.validate_python(subject, strict=True)
    except ValidationError:
        return False
    return True


def issue_token(
    subject: str,
    scopes: Iterable[str],
    grant: Grant | None = None,
    ttl_seconds: int | None = None,
) -> str:
    """A token of the local HS256 issuer; it always expires (default MGRID_AUTH_TOKEN_TTL_S, capped)."""
    if not _subject_ok(subject):
        raise ValueError(f"token subject must be {_SUBJECT_RULE}")
    settings = auth_settings()
    ttl = settings.token_ttl_s if ttl_seconds is None else ttl_seconds
    if not 0 < ttl <= settings.token_max_ttl_s:
        raise ValueError(f"token lifetime must be 1..{settings.token_max_ttl_s} s, not {ttl}")
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": LOCAL_ISSUER,
        "sub": subject,
        "scope": " ".join(str(s) for s in scopes),
        "iat": now,
        "exp": now + ttl,
        **(grant or Grant()).claims(),
    }
    return jwt.encode(claims, _signing_secret(), algorithm=ALGORITHM)


def service_token(service_name: str, ttl_seconds: int = SERVICE_TOKEN_TTL_SECONDS) -> str:
    """Token for service-to-service internal calls; short-lived, so issue one per call or batch."""
    return issue_token(service_name, [Scope.INTEGRATION_WRITE, Scope.OPERATOR_READ], ALL, ttl_seconds)


@lru_cache(maxsize=4)
def _jwks_client(url: str) -> jwt.PyJWKClient:
    # Caches the key set (and each key) so a request does not fetch it; an unknown kid refetches.
    return jwt.PyJWKClient(url, cache_keys=True, lifespan=300)


def _invalid(message: str) -> ApiError:
    return ApiError.unauthenticated(message, invalid_token=True)


def _decode(token: str, settings: AuthSettings) -> dict[str, Any]:
    try:
        algorithm = jwt.get_unverified_header(token).get("alg")
    except jwt.InvalidTokenError:
        raise _invalid("Bearer token is invalid") from None
    options = {"require": ["sub", "exp", "iat"]}
    try:
        if algorithm == ALGORITHM:
            secret = configured_secret()
            if secret is None:
                raise _invalid("Bearer token is invalid: local tokens are not accepted here")
            return jwt.decode(
                token,
                secret,
                algorithms=[ALGORITHM],
                issuer=LOCAL_ISSUER,
                leeway=settings.leeway_s,
                options={**options, "verify_aud": False},
            )
        if algorithm in ASYMMETRIC_ALGORITHMS and settings.jwks_url:
            key = _jwks_client(settings.jwks_url).get_signing_key_from_jwt(token)
            return jwt.decode(
                token,
                key.key,
                algorithms=list(ASYMMETRIC_ALGORITHMS),
                issuer=settings.issuer,
                audience=settings.audience,
                leeway=settings.leeway_s,
                options={**options, "verify_aud": settings.audience is not None},
            )
    except jwt.ExpiredSignatureError:
        raise _invalid("Bearer token has expired") from None
    except jwt.PyJWKClientError:
        raise _invalid("Bearer token is invalid: no matching key in the identity provider's JWKS") from None
    except jwt.InvalidTokenError as exc:
        raise _invalid(f"Bearer token is invalid: {exc}") from None
    raise _invalid(f"Bearer token is invalid: algorithm {algorithm!r} is not accepted")


def _uuids(value: object, claim: str) -> frozenset[UUID]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _invalid(f"Bearer token {claim} claim is not a list of ids")
    try:
        return frozenset(UUID(v) for v in value)
    except ValueError:
        raise _invalid(f"Bearer token {claim} claim holds a malformed id") from None


def _grant(claims: dict[str, Any]) -> Grant:
    microgrids = claims.get("microgrids", [])
    depots = _uuids(claims.get("depots", []), "depots")
    if microgrids == ALL_MICROGRIDS:
        return Grant(everything=True, depots=depots)
    return Grant(microgrids=_uuids(microgrids, "microgrids"), depots=depots)


def verify_token(token: str) -> Principal:
    """The token's principal, or ApiError 401 if it is malformed, badly signed, expired or too long-lived."""
    settings = auth_settings()
    claims = _decode(token, settings)
    exp, iat = claims["exp"], claims["iat"]
    if not isinstance(exp, int | float) or not isinstance(iat, int | float):
        raise _invalid("Bearer token exp/iat claims are not numbers")
    if exp - iat > settings.token_max_ttl_s:
        raise _invalid(f"Bearer token lives longer than the maximum {settings.token_max_ttl_s} s")
    scope = claims.get("scope", "")
    if not isinstance(scope, str):
        raise _invalid("Bearer token scope claim is not a string")
    if not _subject_ok(claims["sub"]):
        raise _invalid(f"Bearer token sub claim must be {_SUBJECT_RULE}")
    return Principal(subject=claims["sub"], scopes=frozenset(scope.split()), grant=_grant(claims))


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


def require_any_scope(*scopes: Scope | str) -> Callable[..., Principal]:
    """FastAPI dependency: the caller's Principal, holding at least one of `scopes` (else 401/403)."""
    allowed = frozenset(str(s) for s in scopes)

    def principal(found: Annotated[Principal, Depends(require_scopes())]) -> Principal:
        if not found.scopes & allowed:
            raise ApiError.forbidden(f"Token lacks required scope: one of {' '.join(sorted(allowed))}")
        return found

    return principal


def not_found(kind: str, object_id: UUID | str) -> ApiError:
    """The answer for an object outside the caller's grant: the same as for one that does not exist."""
    return ApiError.not_found(f"{kind} {object_id} not found")


def authorize_microgrid(principal: Principal, microgrid_id: UUID) -> None:
    if not principal.grant.covers_microgrid(microgrid_id):
        raise not_found("microgrid", microgrid_id)


def microgrid_guard(principal_dependency: Callable[..., Principal]) -> Callable[..., Principal]:
    """FastAPI dependency for routes with a `{microgrid_id}` path parameter: scopes first, then the grant."""

    def guarded(microgrid_id: UUID, principal: Principal) -> Principal:
        authorize_microgrid(principal, microgrid_id)
        return principal

    # Spelled out: string annotations (this module's `from __future__`) cannot name the closure variable.
    guarded.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter("microgrid_id", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=UUID),
            inspect.Parameter(
                "principal",
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                annotation=Annotated[Principal, Depends(principal_dependency)],
            ),
        ],
        return_annotation=Principal,
    )
    return guarded


def require_platform_grant(principal: Principal) -> None:
    """Routes that span every microgrid (e.g. counts across all of them) need the all-microgrids grant."""
    if not principal.grant.everything:
        raise ApiError.forbidden("This route spans every microgrid: it needs the all-microgrids grant")
