"""Bearer-token auth: 401 without a valid token, 403 without the scope, the Principal otherwise."""

from __future__ import annotations

import time
from typing import Annotated

import jwt
import pytest
from fastapi import APIRouter, Depends
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from libs.platform.auth import (
    ALGORITHM,
    DEV_ONLY_SECRET,
    SECRET_ENV,
    Principal,
    Scope,
    issue_token,
    service_token,
    verify_token,
)
from libs.platform.auth import require_scopes as require
from libs.platform.http import create_app
from libs.platform.token_cli import app as token_app

router = APIRouter()


@router.post("/rebalance")
def rebalance(principal: Annotated[Principal, Depends(require(Scope.OPERATOR_WRITE))]) -> dict[str, object]:
    return {"subject": principal.subject, "scopes": sorted(principal.scopes)}


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> TestClient:
    monkeypatch.setenv(SECRET_ENV, "unit-test-secret-long-enough-for-hs256")
    return TestClient(create_app(service_name="test", routers=[router]))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_unauthenticated(response, challenge: str) -> None:
    assert response.status_code == 401
    assert response.json()["reason_code"] == "UNAUTHENTICATED"
    assert response.json()["message"]
    assert response.headers["WWW-Authenticate"] == challenge


def test_no_token_answers_401_with_bearer_challenge(client: TestClient) -> None:
    assert_unauthenticated(client.post("/rebalance"), "Bearer")


def test_other_scheme_answers_401(client: TestClient) -> None:
    assert_unauthenticated(client.post("/rebalance", headers={"Authorization": "Basic YTpi"}), "Bearer")


def test_garbage_token_answers_401(client: TestClient) -> None:
    response = client.post("/rebalance", headers=bearer("not.a.jwt"))

    assert_unauthenticated(response, 'Bearer error="invalid_token"')


def test_expired_token_answers_401(client: TestClient) -> None:
    claims = {"sub": "alice", "scope": "operator:write", "exp": int(time.time()) - 60}
    token = jwt.encode(claims, "unit-test-secret-long-enough-for-hs256", algorithm=ALGORITHM)

    response = client.post("/rebalance", headers=bearer(token))

    assert_unauthenticated(response, 'Bearer error="invalid_token"')
    assert "expired" in response.json()["message"]


def test_token_signed_with_another_secret_answers_401(client: TestClient) -> None:
    token = jwt.encode({"sub": "mallory", "scope": "operator:write"}, DEV_ONLY_SECRET, algorithm=ALGORITHM)

    assert_unauthenticated(client.post("/rebalance", headers=bearer(token)), 'Bearer error="invalid_token"')


def test_token_without_the_scope_answers_403_naming_it(client: TestClient) -> None:
    response = client.post("/rebalance", headers=bearer(issue_token("alice", [Scope.OPERATOR_READ])))

    assert response.status_code == 403
    assert response.json()["reason_code"] == "FORBIDDEN"
    assert "operator:write" in response.json()["message"]


def test_token_with_the_scope_reaches_the_handler_as_principal(client: TestClient) -> None:
    token = issue_token("alice", [Scope.OPERATOR_READ, Scope.OPERATOR_WRITE], ttl_seconds=60)

    response = client.post("/rebalance", headers=bearer(token))

    assert response.status_code == 200
    assert response.json() == {"subject": "alice", "scopes": ["operator:read", "operator:write"]}


def test_service_token_names_the_service_and_integration_scopes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SECRET_ENV, raising=False)

    principal = verify_token(service_token("envelope-lifecycle"))

    assert principal == Principal("envelope-lifecycle", frozenset({"integration:write", "operator:read"}))
    assert "exp" in jwt.decode(service_token("x"), DEV_ONLY_SECRET, algorithms=[ALGORITHM])


def test_token_cli_prints_a_token_with_the_requested_scopes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, "cli-test-secret-long-enough-for-hs256!")

    result = CliRunner().invoke(
        token_app,
        ["issue", "--subject", "ops", "--scope", "operator:read", "--scope", "operator:write", "--ttl", "60"],
    )

    assert result.exit_code == 0, result.output
    claims = jwt.decode(
        result.output.strip(), "cli-test-secret-long-enough-for-hs256!", algorithms=[ALGORITHM]
    )
    assert claims["sub"] == "ops"
    assert claims["scope"] == "operator:read operator:write"
    assert claims["exp"] - claims["iat"] == 60


def test_token_cli_rejects_an_unknown_scope() -> None:
    result = CliRunner().invoke(token_app, ["issue", "--subject", "ops", "--scope", "root"])

    assert result.exit_code != 0
