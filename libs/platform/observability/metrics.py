"""The project's metric instruments, defined once, and the Prometheus /metrics route.

OTel instrument names are dotted (`mgrid.cycles`); the Prometheus exporter renders them as
`mgrid_cycles_total`, `mgrid_cycle_duration_seconds_bucket`, ...
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from functools import cache

from fastapi import APIRouter, Response
from opentelemetry import metrics as metrics_api
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from contracts.enums import AliasPath, CycleOutcome, EnvelopeStatus, ReasonCode

_log = logging.getLogger(__name__)

# A cycle is milliseconds of pure computation plus a few queries; the tail catches a slow database.
CYCLE_DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# From outbox write to broker acknowledgement: the relay polls, so sub-second is normal.
OUTBOX_LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# What a gauge callback returns: one number, or several (value, attributes) readings,
# e.g. consumer lag per (topic, partition).
GaugeReading = float | int | Iterable[tuple[float | int, Mapping[str, str]]]
GaugeCallback = Callable[[], GaugeReading]


class _GaugeFeed:
    """Lets services register callbacks after the observable gauge exists (OTel takes them at creation)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._callbacks: list[GaugeCallback] = []
        self._lock = threading.Lock()

    def add(self, callback: GaugeCallback) -> None:
        with self._lock:
            self._callbacks.append(callback)

    def observe(self, _options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            try:
                reading = callback()
            except Exception:  # a broken callback must not break the whole scrape
                _log.exception("gauge callback for %s failed", self._name)
                continue
            if isinstance(reading, int | float):
                yield Observation(reading)
            else:
                for value, attributes in reading:
                    yield Observation(value, dict(attributes))


class Metrics:
    """Every instrument of mgrid. Record through the methods: they fix the attribute names."""

    def __init__(self, meter: Meter) -> None:
        self.cycle_duration_seconds = meter.create_histogram(
            "mgrid.cycle.duration",
            unit="s",
            description="Balancing cycle wall time, by outcome",
            explicit_bucket_boundaries_advisory=CYCLE_DURATION_BUCKETS,
        )
        self.cycles_total = meter.create_counter("mgrid.cycles", description="Balancing cycles, by outcome")
        self.breaches_total = meter.create_counter(
            "mgrid.breaches", description="Constraint breaches detected, by reason code"
        )
        self.alias_translations_total = meter.create_counter(
            "mgrid.alias.translations",
            description="circuit_id -> microgrid translations applied, by legacy path",
        )
        self.alias_failures_total = meter.create_counter(
            "mgrid.alias.failures", description="circuit_id translations that failed, by reason code"
        )
        self.envelope_transitions_total = meter.create_counter(
            "mgrid.envelope.transitions", description="Operating envelope status changes"
        )
        self.outbox_lag_seconds = meter.create_histogram(
            "mgrid.outbox.lag",
            unit="s",
            description="Time from outbox write to publish: the oldest row of each topic in each relay batch",
            explicit_bucket_boundaries_advisory=OUTBOX_LAG_BUCKETS,
        )
        self.dead_letters_total = meter.create_counter(
            "mgrid.dead_letters",
            description="Messages sent to the dead-letter topic, by source topic and reason",
        )
        self.outbox_parked_total = meter.create_counter(
            "mgrid.outbox.parked_rows",
            description="Outbox rows parked because the broker can never take them, by reason",
        )
        self._outbox_pending = _GaugeFeed("mgrid.outbox.pending")
        self._outbox_oldest_age = _GaugeFeed("mgrid.outbox.oldest_pending_age")
        self._outbox_parked = _GaugeFeed("mgrid.outbox.parked")
        self._dead_letter_backlog = _GaugeFeed("mgrid.dead_letter.letters")
        self._consumer_lag = _GaugeFeed("mgrid.consumer.lag")
        meter.create_observable_gauge(
            "mgrid.outbox.pending",
            callbacks=[self._outbox_pending.observe],
            description="Outbox rows not yet published (parked rows not included)",
        )
        meter.create_observable_gauge(
            "mgrid.outbox.oldest_pending_age",
            callbacks=[self._outbox_oldest_age.observe],
            unit="s",
            description="Age of the oldest outbox row not yet published",
        )
        meter.create_observable_gauge(
            "mgrid.outbox.parked",
            callbacks=[self._outbox_parked.observe],
            description="Outbox rows parked, waiting for an operator (mgrid outbox parked)",
        )
        meter.create_observable_gauge(
            "mgrid.dead_letter.letters",
            callbacks=[self._dead_letter_backlog.observe],
            description="Letters on a consumer group's dead-letter topic, and how many were replayed",
        )
        meter.create_observable_gauge(
            "mgrid.consumer.lag",
            callbacks=[self._consumer_lag.observe],
            description="Messages behind the partition end, per consumer group, topic and partition",
        )

    def record_cycle(self, *, outcome: CycleOutcome, duration_seconds: float) -> None:
        attrs = {"outcome": CycleOutcome(outcome).value}
        self.cycles_total.add(1, attrs)
        self.cycle_duration_seconds.record(duration_seconds, attrs)

    def count_breach(self, *, reason_code: ReasonCode, count: int = 1) -> None:
        self.breaches_total.add(count, {"reason_code": ReasonCode(reason_code).value})

    def count_alias_translation(self, *, path: AliasPath) -> None:
        self.alias_translations_total.add(1, {"path": AliasPath(path).value})

    def count_alias_failure(self, *, reason_code: ReasonCode) -> None:
        self.alias_failures_total.add(1, {"reason_code": ReasonCode(reason_code).value})

    def count_envelope_transition(
        self, *, from_status: EnvelopeStatus | None, to_status: EnvelopeStatus
    ) -> None:
        # from_status None: the envelope's first status (received)
        source = EnvelopeStatus(from_status).value if from_status is not None else "NONE"
        self.envelope_transitions_total.add(
            1, {"from_status": source, "to_status": EnvelopeStatus(to_status).value}
        )

    def record_outbox_lag(self, *, seconds: float, topic: str) -> None:
        self.outbox_lag_seconds.record(seconds, {"topic": topic})

    def count_dead_letter(self, *, topic: str, reason: str) -> None:
        self.dead_letters_total.add(1, {"topic": topic, "reason": reason})

    def observe_outbox_pending(self, callback: GaugeCallback) -> None:
        """Register a cheap callback (it runs during the scrape): e.g. the relay's last count."""
        self._outbox_pending.add(callback)

    def count_outbox_parked(self, *, reason: str) -> None:
        self.outbox_parked_total.add(1, {"reason": reason})

    def observe_outbox(
        self, *, pending: GaugeCallback, oldest_pending_age_s: GaugeCallback, parked: GaugeCallback
    ) -> None:
        """The relay's last backlog reading: rows waiting, the oldest one's age, rows parked."""
        self._outbox_pending.add(pending)
        self._outbox_oldest_age.add(oldest_pending_age_s)
        self._outbox_parked.add(parked)

    def observe_dead_letters(self, callback: GaugeCallback) -> None:
        """Register a callback returning (count, {"group", "state": "total"|"replayed"}) readings."""
        self._dead_letter_backlog.add(callback)

    def observe_consumer_lag(self, callback: GaugeCallback) -> None:
        """Register a callback returning (lag, {"group", "topic", "partition"}) readings."""
        self._consumer_lag.add(callback)


@cache
def get_metrics() -> Metrics:
    """The process's instruments on the global meter provider. Before setup_observability they are
    no-ops that start recording once the provider is set (OTel's proxy meter)."""
    return Metrics(metrics_api.get_meter("mgrid"))


def build_meter_provider(resource: Resource, registry: CollectorRegistry = REGISTRY) -> MeterProvider:
    """A meter provider read by Prometheus scrapes: the reader collects on every /metrics request."""
    return MeterProvider(resource=resource, metric_readers=[PrometheusMetricReader(registry=registry)])


def metrics_router(registry: CollectorRegistry = REGISTRY) -> APIRouter:
    router = APIRouter(tags=["observability"])

    # async on purpose: gauge callbacks then run on the event loop thread, next to the state they read
    @router.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(content=generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
