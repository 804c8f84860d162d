"""The shared HTTP layer: every error leaves in the spec's shape; bodies over the limit are refused."""

from __future__ import annotations

import json

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from pydantic import BaseModel

from contracts.enums import ReasonCode
from libs.platform.http import ApiError, create_app

LIMIT = 64


class TopologyEdit(BaseModel):
    version: int
    name: str


router = APIRouter()


@router.post("/topology")
def edit_topology(edit: TopologyEdit) -> dict[str, int]:
    if edit.version != 7:
        raise ApiError.conflict(
            "Topology changed since it was read",
            reason_code=ReasonCode.TOPOLOGY_VERSION_CONFLICT,
            expected_version=edit.version,
            actual_version=7,
        )
    return {"version": 8}


@router.get("/status")
def status() -> dict[str, str]:
    raise ApiError.unavailable(
        "No fresh telemetry and no valid fallback",
        missing_inputs=["node-1.measured_watts"],
        safe_action_taken="HOLD_LAST_ALLOCATION",
    )


@router.get("/alias")
def alias() -> dict[str, str]:
    raise ApiError.conflict("No mapping for circuit", reason_code=ReasonCode.CIRCUIT_ALIAS_NOT_RESOLVABLE)


@router.get("/boom")
def boom() -> dict[str, str]:
    raise RuntimeError("bug")


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = create_app(service_name="test", routers=[router], max_body_bytes=LIMIT)
    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.req("FR-011")
def test_version_conflict_answers_409_with_expected_and_actual_version(client: TestClient) -> None:
    response = client.post("/topology", json={"version": 3, "name": "a"})

    assert response.status_code == 409
    assert response.json() == {
        "reason_code": "TOPOLOGY_VERSION_CONFLICT",
        "message": "Topology changed since it was read",
        "expected_version": 3,
        "actual_version": 7,
    }


def test_matching_version_succeeds(client: TestClient) -> None:
    response = client.post("/topology", json={"version": 7, "name": "a"})

    assert response.status_code == 200
    assert response.json() == {"version": 8}


def test_409_without_versions_still_carries_the_spec_fields(client: TestClient) -> None:
    body = client.get("/alias").json()

    assert body["reason_code"] == "CIRCUIT_ALIAS_NOT_RESOLVABLE"
    assert body["expected_version"] is None and body["actual_version"] is None


def test_503_carries_missing_inputs_and_safe_action(client: TestClient) -> None:
    response = client.get("/status")

    assert response.status_code == 503
    assert response.json() == {
        "reason_code": "TELEMETRY_INSUFFICIENT",
        "message": "No fresh telemetry and no valid fallback",
        "missing_inputs": ["node-1.measured_watts"],
        "safe_action_taken": "HOLD_LAST_ALLOCATION",
    }


def test_malformed_json_answers_422_validation_failed(client: TestClient) -> None:
    response = client.post("/topology", content=b"{not json", headers={"content-type": "application/json"})

    assert response.status_code == 422
    body = response.json()
    assert body["reason_code"] == "VALIDATION_FAILED"
    assert body["violated_rule"] == "request_schema"
    assert body["details"][0]["type"] == "json_invalid"
    json.dumps(body)  # json-safe all the way down


def test_schema_mismatch_details_name_the_field(client: TestClient) -> None:
    body = client.post("/topology", json={"version": "seven"}).json()

    assert body["reason_code"] == "VALIDATION_FAILED"
    locations = {tuple(d["loc"]) for d in body["details"]}
    assert locations == {("body", "version"), ("body", "name")}
    assert all("input" not in d for d in body["details"])


def test_declared_body_over_limit_answers_413(client: TestClient) -> None:
    response = client.post(
        "/topology", content=b"x" * (LIMIT + 1), headers={"content-type": "application/json"}
    )

    assert response.status_code == 413
    assert response.json()["reason_code"] == "PAYLOAD_TOO_LARGE"


def test_streamed_body_over_limit_answers_413(client: TestClient) -> None:
    # A generator body is sent chunked, without Content-Length: only the streamed count can catch it.
    def chunks():
        for _ in range(LIMIT):
            yield b"xx"

    response = client.post("/topology", content=chunks(), headers={"content-type": "application/json"})

    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert response.status_code == 413
    assert response.json()["reason_code"] == "PAYLOAD_TOO_LARGE"


def test_streamed_body_within_limit_reaches_the_handler(client: TestClient) -> None:
    def chunks():
        yield b'{"version": 7,'
        yield b' "name": "a"}'

    response = client.post("/topology", content=chunks(), headers={"content-type": "application/json"})

    assert response.status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "status", "reason"),
    [
        ("GET", "/nowhere", 404, "NOT_FOUND"),
        ("DELETE", "/topology", 405, "METHOD_NOT_ALLOWED"),
        ("GET", "/boom", 500, "INTERNAL_ERROR"),
    ],
)
def test_framework_errors_use_the_same_shape(
    client: TestClient, method: str, path: str, status: int, reason: str
) -> None:
    response = client.request(method, path)

    assert response.status_code == status
    assert set(response.json()) == {"reason_code", "message"}
    assert response.json()["reason_code"] == reason


def test_openapi_documents_the_error_shape(client: TestClient) -> None:
    responses = client.get("/openapi.json").json()["paths"]["/topology"]["post"]["responses"]

    assert responses["4XX"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
    assert "422" not in responses  # FastAPI's own validation schema would misdescribe our body


def test_lifespan_runs_around_the_app() -> None:
    from contextlib import asynccontextmanager

    events: list[str] = []

    @asynccontextmanager
    async def lifespan(_app):
        events.append("start")
        yield
        events.append("stop")

    with TestClient(create_app(service_name="test", routers=[], lifespan=lifespan)):
        assert events == ["start"]
    assert events == ["start", "stop"]


def test_405_allow_header_lists_every_method_served_at_the_path() -> None:
    # Two routes on one path: Starlette's own 405 names only the first route's method.
    shared = APIRouter()

    @shared.get("/api/microgrid/{microgrid_id}/topology")
    def read_topology(microgrid_id: str) -> dict[str, str]:
        return {}

    @shared.post("/api/microgrid/{microgrid_id}/topology")
    def write_topology(microgrid_id: str) -> dict[str, str]:
        return {}

    client = TestClient(create_app(service_name="test", routers=[shared]))

    response = client.delete("/api/microgrid/m-1/topology")

    assert response.status_code == 405
    assert response.json()["reason_code"] == ReasonCode.METHOD_NOT_ALLOWED
    assert set(response.headers["Allow"].split(", ")) == {"GET", "POST"}
