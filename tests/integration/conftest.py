"""Fixtures shared by the platform's messaging tests (tests/integration/messaging_env.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from libs.platform.settings import PlatformSettings
from tests.integration.messaging_env import MessagingEnv, messaging_env


@pytest.fixture
async def backbone_env(settings: PlatformSettings, request: pytest.FixtureRequest) -> AsyncIterator[MessagingEnv]:
    """A fresh messaging environment for the consumer group `backbone`, its producer named after the module."""
    async with messaging_env(settings, client_id=request.module.__name__.rsplit(".", 1)[-1]) as env:
        yield env
