"""setup_observability: the one call a service makes at start-up to get traces, metrics and logs."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass

from opentelemetry import metrics as metrics_api
from opentelemetry import propagate, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

from libs.platform.observability.instrumentation import instrument_asyncpg, instrument_httpx
from libs.platform.observability.logs import configure_logging
from libs.platform.observability.metrics import Metrics, build_meter_provider, get_metrics
from libs.platform.observability.propagation import PROPAGATOR
from libs.platform.observability.tracing import build_tracer_provider, service_resource, span_exporter

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Observability:
    service_name: str
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    metrics: Metrics
    # the traces file, or the OTLP endpoint URL
    trace_destination: str

    def force_flush(self, timeout_millis: int = 5000) -> bool:
        """Export every finished span now (tests that read the trace files call this)."""
        return self.tracer_provider.force_flush(timeout_millis)

    def shutdown(self) -> None:
        """Flush and stop exporting; call once when the service stops."""
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


_lock = threading.Lock()
_current: Observability | None = None


def setup_observability(service_name: str) -> Observability:
    """Install the process-wide tracer provider, propagator, meter provider and JSON logging.

    Idempotent: OTel allows one global provider per process, so a second call returns the first
    result (with a warning if it names another service). Also instruments httpx (and asyncpg with
    MGRID_TRACE_SQL=1), which every service uses; FastAPI apps are instrumented one by one with `instrument_app`.
    """
    global _current
    with _lock:
        if _current is not None:
            if _current.service_name != service_name:
                _log.warning(
                    "observability already set up for %s; %s shares it", _current.service_name, service_name
                )
            return _current

        configure_logging(service_name)
        resource = service_resource(service_name)
        exporter, destination = span_exporter(service_name)
        tracer_provider = build_tracer_provider(service_name, exporter)
        trace.set_tracer_provider(tracer_provider)
        propagate.set_global_textmap(PROPAGATOR)
        meter_provider = build_meter_provider(resource)
        metrics_api.set_meter_provider(meter_provider)
        if os.environ.get("MGRID_TRACE_SQL", "").lower() in ("1", "true", "yes"):
            # A span per SQL statement costs more CPU than a balancing cycle's own steps at fleet rates
            # (about 20 statements a cycle), so it is opt-in, for a profiling session.
            instrument_asyncpg()
        instrument_httpx()
        _current = Observability(
            service_name=service_name,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            metrics=get_metrics(),
            trace_destination=destination,
        )
        _log.info("observability ready", extra={"traces_to": destination})
        return _current
