"""Every service answers its operations endpoints: /health, /ready (database, broker, consumer) and /metrics."""

from __future__ import annotations

import importlib
import uuid

import pytest

from libs.platform.settings import PlatformSettings
from tests.support_services import running_service
from tools.run_cli import SERVICES

pytestmark = pytest.mark.integration


@pytest.mark.req("NFR-008")
@pytest.mark.parametrize("service", SERVICES)
async def test_health_readiness_and_metrics_answer(service: str, settings: PlatformSettings) -> None:
    definition = importlib.import_module(f"services.{service}.bootstrap").DEFINITION
    own = settings.model_copy(update={"topic_prefix": f"{settings.topic_prefix}ops{uuid.uuid4().hex[:4]}."})
    async with running_service(definition, own) as svc:
        health = await svc.client.get("/health")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        ready = await svc.client.get("/ready")
        assert ready.status_code == 200, ready.text
        assert {"database", "broker", "consumer_progress", "outbox"} <= set(ready.json()["checks"])
        metrics = await svc.client.get("/metrics")
        assert metrics.status_code == 200
        assert "mgrid_outbox_pending" in metrics.text
        assert "mgrid_outbox_parked" in metrics.text and "mgrid_outbox_oldest_pending_age" in metrics.text
        assert 'mgrid_dead_letter_letters{group="' in metrics.text

        # With the database gone, readiness says so (503) and names the failing check.
        svc.ctx.pool.terminate()
        not_ready = await svc.client.get("/ready")
        assert not_ready.status_code == 503
        assert "database" in not_ready.json()["failed"]
