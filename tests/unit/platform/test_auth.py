"""Bearer-token auth: 401 without a valid token, 403 without the scope, 404 outside the grant.

Issue 14: no default signing key, every token expires within a maximum, identity-provider tokens
(RS256/ES256 against a JWKS, iss/aud checked), microgrid and depot grants.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import stat
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID, uuid4

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi import APIRouter, Depends
from fastapi.testclient import TestClient
from jwt.utils import base64url_encode
from typer.testing import CliRunner

from libs.platform.auth import (
    ALGORITHM,
    ALL,
    SECRET_ENV,
    Grant,
    Principal,
    Scope,
    SigningKeyError,
    issue_token,
    microgrid_guard,
    require_verifier,
    service_token,
    verify_token,
)
from libs.platform.auth import require_scopes as require
from libs.platform.http import create_app
from libs.platform.runtime import ServiceDefinition, ServiceRuntime
from libs.platform.settings import PlatformSettings
from libs.platform.signing_keys import SECRET_FILE_ENV, ensure_local_key, local_key_file
from tools.token_cli import app as token_app

SECRET = "unit-test-secret-long-enough-for-hs256"
# The constant main fell back to when MGRID_AUTH_SECRET was unset (issue 14): it must sign nothing now.
OLD_DEFAULT_SECRET = "mgrid-dev-only-secret-do-not-use-in-production"
MICROGRID_A, MICROGRID_B = UUID(int=0xA), UUID(int=0xB)

router = APIRouter()


@router.post("/rebalance")
def rebalance(principal: Annotated[Principal, Depends(require(Scope.OPERATOR_WRITE))]) -> dict[str, object]:
    return {"subject": principal.subject, "scopes": sorted(principal.scopes)}


@router.get("/api/microgrid/{microgrid_id}/status")
def microgrid_status(
    microgrid_id: UUID, principal: Annotated[Principal, Depends(microgrid_guard(require(Scope.OPERATOR_READ)))]
) -> dict[str, str]:
    return {"microgrid_id": str(microgrid_id)}


@pytest.fixture(autouse=True)
def no_local_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each test starts from an installation without any key: a private stack dir, nothing in the env."""
    monkeypatch.setenv("MGRID_STACK_DIR", str(tmp_path / "stack"))
    for name in (SECRET_ENV, SECRET_FILE_ENV, "MGRID_AUTH_JWKS_URL", "MGRID_AUTH_ISSUER", "MGRID_AUTH_AUDIENCE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> TestClient:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    return TestClient(create_app(service_name="test", routers=[router]))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def local_claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": "mgrid-local", "sub": "alice", "scope": "operator:write", "iat": now, "exp": now + 60, **extra}


def assert_unauthenticated(response, challenge: str) -> None:
    assert response.status_code == 401
    assert response.json()["reason_code"] == "UNAUTHENTICATED"
    assert response.json()["message"]
    assert response.headers["WWW-Authenticate"] == challenge


# ---- 401 / 403 -------------------------------------------------------------------------------------


def test_no_token_answers_401_with_bearer_challenge(client: TestClient) -> None:
    assert_unauthenticated(client.post("/rebalance"), "Bearer")


def test_other_scheme_answers_401(client: TestClient) -> None:
    assert_unauthenticated(client.post("/rebalance", headers={"Authorization": "Basic YTpi"}), "Bearer")


def test_garbage_token_answers_401(client: TestClient) -> None:
    response = client.post("/rebalance", headers=bearer("not.a.jwt"))

    assert_unauthenticated(response, 'Bearer error="invalid_token"')


def test_expired_token_answers_401(client: TestClient) -> None:
    token = jwt.encode(local_claims(iat=int(time.time()) - 600, exp=int(time.time()) - 60), SECRET, algorithm=ALGORITHM)

    response = client.post("/rebalance", headers=bearer(token))

    assert_unauthenticated(response, 'Bearer error="invalid_token"')
    assert "expired" in response.json()["message"]


def test_token_signed_with_another_secret_answers_401(client: TestClient) -> None:
    token = jwt.encode(local_claims(sub="mallory"), OLD_DEFAULT_SECRET, algorithm=ALGORITHM)

    assert_unauthenticated(client.post("/rebalance", headers=bearer(token)), 'Bearer error="invalid_token"')


@pytest.mark.parametrize("sub", ["a" * 201, "", "nul\x00byte", 42])
def test_a_subject_that_could_not_be_an_audit_actor_answers_401(client: TestClient, sub: object) -> None:
    """The subject becomes the actor of every audit record: one that no record could hold is refused at the
    door, not after a write has half happened."""
    token = jwt.encode(local_claims(sub=sub), SECRET, algorithm=ALGORITHM)

    response = client.post("/rebalance", headers=bearer(token))

    assert_unauthenticated(response, 'Bearer error="invalid_token"')
    assert "sub" in response.json()["message"].lower()


def test_the_issuer_refuses_a_subject_no_audit_record_could_hold() -> None:
    with pytest.raises(ValueError, match="subject"):
        issue_token("a" * 201, [Scope.OPERATOR_READ], ALL)


def test_token_without_the_scope_answers_403_naming_it(client: TestClient) -> None:
    response = client.post("/rebalance", headers=bearer(issue_token("alice", [Scope.OPERATOR_READ], ALL)))

    assert response.status_code == 403
    assert response.json()["reason_code"] == "FORBIDDEN"
    assert "operator:write" in response.json()["message"]


def test_token_with_the_scope_reaches_the_handler_as_principal(client: TestClient) -> None:
    token = issue_token("alice", [Scope.OPERATOR_READ, Scope.OPERATOR_WRITE], ALL, ttl_seconds=60)

    response = client.post("/rebalance", headers=bearer(token))

    assert response.status_code == 200
    assert response.json() == {"subject": "alice", "scopes": ["operator:read", "operator:write"]}


# ---- no default key -----------------------------------------------------------------------------------


def test_without_a_configured_key_nothing_is_signed_or_verified() -> None:
    with pytest.raises(SigningKeyError):
        issue_token("alice", [Scope.OPERATOR_WRITE], ALL)
    with pytest.raises(SigningKeyError):
        require_verifier()
    forged = jwt.encode(local_claims(scope="operator:read operator:write integration:write"), OLD_DEFAULT_SECRET)

    with pytest.raises(Exception) as refused:
        verify_token(forged)
    assert getattr(refused.value, "status_code", None) == 401


def test_a_service_refuses_to_start_without_a_key() -> None:
    definition = ServiceDefinition(name="keyless", migrations=Path("/nonexistent"), handlers={})

    with pytest.raises(SigningKeyError, match="MGRID_AUTH_SECRET"):
        asyncio.run(ServiceRuntime(definition, PlatformSettings()).start())


def test_a_short_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, "short")

    with pytest.raises(SigningKeyError, match="shorter"):
        require_verifier()


def test_the_local_key_is_random_private_and_made_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = ensure_local_key()
    key = first.read_text()
    ensure_local_key()

    assert first == local_key_file() and first.read_text() == key
    assert stat.S_IMODE(first.stat().st_mode) == 0o600
    assert len(key.strip()) >= 48
    monkeypatch.setenv("MGRID_STACK_DIR", str(tmp_path / "other-installation"))
    assert ensure_local_key().read_text() != key
    verify_token(issue_token("alice", [Scope.OPERATOR_READ], ALL))  # signs and verifies with it


def test_a_key_file_is_read_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(SECRET + "\n")
    monkeypatch.setenv(SECRET_FILE_ENV, str(key_file))

    token = issue_token("alice", [Scope.OPERATOR_READ], ALL)

    assert jwt.decode(token, SECRET, algorithms=[ALGORITHM])["sub"] == "alice"


# ---- expiry -------------------------------------------------------------------------------------------


def test_every_token_expires_in_an_hour_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)

    claims = jwt.decode(issue_token("alice", [Scope.OPERATOR_READ], ALL), SECRET, algorithms=[ALGORITHM])

    assert claims["exp"] - claims["iat"] == 3600


def test_the_issuer_refuses_a_lifetime_over_the_maximum(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    monkeypatch.setenv("MGRID_AUTH_TOKEN_MAX_TTL_S", "7200")

    with pytest.raises(ValueError, match="7200"):
        issue_token("alice", [Scope.OPERATOR_READ], ALL, ttl_seconds=7201)


def test_the_verifier_refuses_tokens_without_exp_or_living_too_long(client: TestClient) -> None:
    now = int(time.time())
    eternal = {k: v for k, v in local_claims().items() if k != "exp"}
    decade = local_claims(exp=now + 10 * 365 * 86_400)

    for claims in (eternal, decade):
        response = client.post("/rebalance", headers=bearer(jwt.encode(claims, SECRET, algorithm=ALGORITHM)))
        assert_unauthenticated(response, 'Bearer error="invalid_token"')


# ---- grants -------------------------------------------------------------------------------------------


def test_a_route_outside_the_microgrid_grant_answers_404(client: TestClient) -> None:
    token = issue_token("depot-a", [Scope.OPERATOR_READ], Grant(microgrids=frozenset({MICROGRID_A})))

    own = client.get(f"/api/microgrid/{MICROGRID_A}/status", headers=bearer(token))
    foreign = client.get(f"/api/microgrid/{MICROGRID_B}/status", headers=bearer(token))

    assert own.status_code == 200
    assert foreign.status_code == 404
    assert foreign.json()["reason_code"] == "NOT_FOUND"


def test_a_token_without_a_grant_reaches_no_microgrid(client: TestClient) -> None:
    token = issue_token("nobody", [Scope.OPERATOR_READ])

    assert client.get(f"/api/microgrid/{MICROGRID_A}/status", headers=bearer(token)).status_code == 404


def test_the_all_microgrids_grant_reaches_every_microgrid(client: TestClient) -> None:
    token = issue_token("platform", [Scope.OPERATOR_READ], ALL)

    assert client.get(f"/api/microgrid/{uuid4()}/status", headers=bearer(token)).status_code == 200


def test_grants_round_trip_through_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    depot = uuid4()
    grant = Grant(microgrids=frozenset({MICROGRID_A}), depots=frozenset({depot}))

    principal = verify_token(issue_token("depot-a", [Scope.OPERATOR_READ], grant))

    assert principal.grant == grant
    assert principal.grant.covers_depot(depot) and principal.grant.covers_depot(uuid4(), [MICROGRID_A])
    assert not principal.grant.covers_depot(uuid4(), [MICROGRID_B])


def test_a_malformed_grant_claim_answers_401(client: TestClient) -> None:
    for microgrids in ("everything", [1, 2], ["not-a-uuid"]):
        token = jwt.encode(local_claims(microgrids=microgrids), SECRET, algorithm=ALGORITHM)
        response = client.post("/rebalance", headers=bearer(token))
        assert_unauthenticated(response, 'Bearer error="invalid_token"')


def test_service_token_names_the_service_and_integration_scopes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)

    principal = verify_token(service_token("envelope-lifecycle"))

    assert principal == Principal("envelope-lifecycle", frozenset({"integration:write", "operator:read"}), ALL)
    claims = jwt.decode(service_token("x"), SECRET, algorithms=[ALGORITHM])
    assert claims["exp"] - claims["iat"] == 300


# ---- identity provider: RS256 / ES256 against a JWKS ------------------------------------------------------


class _Jwks:
    def __init__(self) -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.keys = [
            self._jwk(self.rsa.public_key(), "rsa-1", "RS256"),
            self._jwk(self.ec.public_key(), "ec-1", "ES256"),
        ]

    @staticmethod
    def _jwk(public_key: Any, kid: str, alg: str) -> dict[str, Any]:
        algorithm = jwt.algorithms.RSAAlgorithm if alg == "RS256" else jwt.algorithms.ECAlgorithm
        return {**json.loads(algorithm.to_jwk(public_key)), "kid": kid, "alg": alg, "use": "sig"}

    def token(self, alg: str = "RS256", **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": "https://idp.example/realms/mgrid", "aud": "mgrid-api", "sub": "keycloak-user",
                "scope": "openid operator:read", "iat": now, "exp": now + 300, "microgrids": [str(MICROGRID_A)]}
        key, kid = (self.rsa, "rsa-1") if alg == "RS256" else (self.ec, "ec-1")
        return jwt.encode({**body, **claims}, key, algorithm=alg, headers={"kid": kid})


@pytest.fixture
def idp(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Jwks]:
    """A local JWKS endpoint, as Keycloak or any OIDC provider serves it, configured as the verifier."""
    jwks = _Jwks()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body = json.dumps({"keys": jwks.keys}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("MGRID_AUTH_JWKS_URL", f"http://127.0.0.1:{server.server_port}/certs")
    monkeypatch.setenv("MGRID_AUTH_ISSUER", "https://idp.example/realms/mgrid")
    monkeypatch.setenv("MGRID_AUTH_AUDIENCE", "mgrid-api")
    try:
        yield jwks
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_identity_provider_tokens_are_verified_against_the_jwks(idp: _Jwks, alg: str) -> None:
    principal = verify_token(idp.token(alg))

    assert principal.subject == "keycloak-user"
    assert principal.scopes == {"openid", "operator:read"}
    assert principal.grant == Grant(microgrids=frozenset({MICROGRID_A}))


def test_a_service_with_only_an_identity_provider_starts(idp: _Jwks) -> None:
    require_verifier()  # no HS256 key anywhere, and that is fine


@pytest.mark.parametrize(
    "claims",
    [
        {"iss": "https://evil.example/realms/mgrid"},
        {"aud": "another-api"},
        {"exp": int(time.time()) - 120, "iat": int(time.time()) - 400},
        {"exp": int(time.time()) + 3 * 86_400},
    ],
    ids=["wrong-iss", "wrong-aud", "expired", "too-long-lived"],
)
def test_identity_provider_tokens_with_wrong_claims_answer_401(idp: _Jwks, claims: dict[str, Any]) -> None:
    with pytest.raises(Exception) as refused:
        verify_token(idp.token(**claims))

    assert getattr(refused.value, "status_code", None) == 401


def test_a_key_not_in_the_jwks_answers_401(idp: _Jwks) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    token = jwt.encode({"sub": "x", "iat": now, "exp": now + 60}, stranger, algorithm="RS256", headers={"kid": "rsa-1"})

    with pytest.raises(Exception) as refused:
        verify_token(token)

    assert getattr(refused.value, "status_code", None) == 401


def test_local_tokens_are_refused_where_only_the_identity_provider_is_configured(idp: _Jwks) -> None:
    # Algorithm confusion: an HS256 token whose HMAC key is the provider's public key must not pass.
    public_pem = idp.rsa.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    signing_input = b".".join(
        base64url_encode(json.dumps(part).encode()) for part in ({"alg": "HS256", "typ": "JWT"}, local_claims())
    )
    signature = base64url_encode(hmac.new(public_pem, signing_input, hashlib.sha256).digest())

    with pytest.raises(Exception) as refused:
        verify_token((signing_input + b"." + signature).decode())

    assert getattr(refused.value, "status_code", None) == 401


# ---- the CLI ------------------------------------------------------------------------------------------


def test_token_cli_prints_a_token_with_the_requested_scopes_and_grant(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)

    result = CliRunner().invoke(
        token_app,
        ["issue", "--subject", "ops", "--scope", "operator:read", "--scope", "operator:write",
         "--microgrid", str(MICROGRID_A), "--ttl", "60"],
    )

    assert result.exit_code == 0, result.output
    claims = jwt.decode(result.output.strip(), SECRET, algorithms=[ALGORITHM])
    assert claims["sub"] == "ops"
    assert claims["scope"] == "operator:read operator:write"
    assert claims["exp"] - claims["iat"] == 60
    assert claims["microgrids"] == [str(MICROGRID_A)]


def test_token_cli_works_on_a_fresh_installation_with_the_local_key() -> None:
    args = ["issue", "--subject", "ops", "--scope", "operator:read", "--all-microgrids"]

    result = CliRunner().invoke(token_app, args)

    assert result.exit_code == 0, result.output
    assert local_key_file().is_file()
    assert verify_token(result.output.strip()).grant == ALL


@pytest.mark.parametrize(
    "args",
    [
        ["--scope", "root", "--all-microgrids"],
        ["--scope", "operator:read"],  # a grant must be named
        ["--scope", "operator:read", "--all-microgrids", "--ttl", "999999"],
    ],
    ids=["unknown-scope", "no-grant", "ttl-over-maximum"],
)
def test_token_cli_refuses(args: list[str]) -> None:
    result = CliRunner().invoke(token_app, ["issue", "--subject", "ops", *args])

    assert result.exit_code != 0
