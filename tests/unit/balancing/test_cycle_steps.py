"""A cycle's domain steps are spans only when its trace is kept (MGRID_TRACE_ROOTS_PER_S, sixteenth round)."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased

from libs.domain import run_balancing_cycle
from libs.platform.observability import tracing
from libs.platform.observability.tracing import IdlePollingSampler, span, span_attributes
from services.balancing.cycle_execution import domain_steps
from tests.unit.balancing.cycle_builders import inputs

STEPS = ["topology_check", "demand_resolution", "constraint_evaluation", "allocation"]


def _cycle_spans(monkeypatch: pytest.MonkeyPatch, roots_per_s: float | None) -> list[str]:
    """Run one cycle as balancing does, under a provider keeping at most `roots_per_s` roots a second."""
    exported = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(root=IdlePollingSampler(roots_per_s=roots_per_s)))
    provider.add_span_processor(SimpleSpanProcessor(exported))
    monkeypatch.setattr(tracing, "get_tracer", lambda: provider.get_tracer("test"))
    ids = span_attributes(microgrid_id="mg-1")
    with span("balancing_cycle", ids) as cycle_span:
        run_balancing_cycle(inputs(), step=domain_steps(cycle_span, ids))
    return [s.name for s in exported.get_finished_spans()]


def test_a_kept_cycle_has_a_span_per_domain_step(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _cycle_spans(monkeypatch, None) == [*STEPS, "balancing_cycle"]


def test_a_cycle_whose_trace_is_not_kept_makes_no_step_spans(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[str] = []
    real_span = tracing.span

    def counting_span(name: str, /, *args, **kwargs):
        made.append(name)
        return real_span(name, *args, **kwargs)

    monkeypatch.setattr("services.balancing.cycle_execution.span", counting_span)
    assert _cycle_spans(monkeypatch, 0) == []
    assert made == []  # not even opened as non-recording spans: each costs ~20-40 us
