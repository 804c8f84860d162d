"""The console is a role of the balancing service: its tests run the same in-process balancing service."""

from tests.integration.balancing.conftest import clock, feed, service  # noqa: F401
