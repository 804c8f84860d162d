"""The HTTP layer's part of issue 14: a write whose event cannot fit its topic is a 413 in the spec's
shape, and a 405 names every method the path allows."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.testclient import TestClient

from contracts.message_sizes import MessageTooLarge
from libs.platform.http import create_app

router = APIRouter()


@router.get("/api/microgrid/{microgrid_id}/topology")
def read_topology(microgrid_id: str) -> dict[str, str]:
    return {"microgrid_id": microgrid_id}


@router.post("/api/microgrid/{microgrid_id}/topology")
def write_topology(microgrid_id: str) -> dict[str, str]:
    raise MessageTooLarge("microgrid.topology_updated", 1_490_000, 786_432)


def _client() -> TestClient:
    return TestClient(create_app(service_name="test", routers=[router]), raise_server_exceptions=False)


def test_a_write_whose_event_cannot_fit_is_a_413_naming_topic_size_and_budget() -> None:
    response = _client().post("/api/microgrid/m1/topology")
    assert response.status_code == 413
    body = response.json()
    assert body["reason_code"] == "PAYLOAD_TOO_LARGE"
    assert body["details"] == {"topic": "microgrid.topology_updated", "size_bytes": 1_490_000, "budget_bytes": 786_432}


def test_a_405_allows_every_method_of_the_path() -> None:
    response = _client().delete("/api/microgrid/m1/topology")
    assert response.status_code == 405
    assert response.json()["reason_code"] == "METHOD_NOT_ALLOWED"
    assert response.headers["Allow"] == "GET, POST"
