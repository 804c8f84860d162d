"""setup_observability in a fresh process (it installs process-wide providers, so not in pytest's own)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from libs.platform.observability.trace_store import read_spans
from tools.trace_tree import build_tree

REPO = Path(__file__).resolve().parents[3]

SERVICE_PROCESS = textwrap.dedent(
    """
    import json, logging, time
    from pathlib import Path

    from fastapi import FastAPI

    from contracts.enums import CycleOutcome, ReasonCode
    from libs.platform.observability import (
        bind_context, get_logger, get_metrics, health_router, instrument_app, metrics_router,
        set_span_attributes, setup_observability, span,
    )

    obs = setup_observability("balancing")
    assert setup_observability("balancing") is obs

    # spans reach the file on the batch schedule, without an explicit flush
    with span("warm_up"):
        pass
    started, file = time.monotonic(), Path(obs.trace_destination)
    while not (file.exists() and "warm_up" in file.read_text()):
        assert time.monotonic() - started < 5, "span not exported within 5 s"
        time.sleep(0.02)
    export_delay = time.monotonic() - started

    app = FastAPI()

    @app.post("/api/microgrid/{microgrid_id}/rebalance")
    async def rebalance(microgrid_id: str) -> dict:
        with bind_context(correlation_id="corr-9", microgrid_id=microgrid_id):
            with span("balancing_cycle", microgrid_id=microgrid_id, correlation_id="corr-9"):
                with span("allocation"):
                    set_span_attributes(
                        outcome=CycleOutcome.CURTAILED, reason_codes=[ReasonCode.NODE_CAP_EXCEEDED]
                    )
                    get_logger("balancing.handlers").info("allocated", watts=11000)
                    logging.getLogger("aiokafka").warning("stdlib line")
        get_metrics().record_cycle(outcome=CycleOutcome.CURTAILED, duration_seconds=0.01)
        return {"ok": True}

    app.include_router(metrics_router())
    app.include_router(health_router({}))
    instrument_app(app)
    from fastapi.testclient import TestClient  # after setup: its import-time warning is then a JSON line

    client = TestClient(app)
    assert client.post("/api/microgrid/mg-1/rebalance").status_code == 200
    assert client.get("/health").status_code == 200
    metrics_text = client.get("/metrics").text
    obs.shutdown()
    result = {"destination": obs.trace_destination, "metrics": metrics_text, "export_delay": export_delay}
    print(json.dumps(result))
    """
)


def _run_service(tmp_path: Path) -> tuple[dict, list[dict]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MGRID_", "OTEL_"))}
    env["MGRID_TRACE_FILE_DIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", SERVICE_PROCESS],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    log_lines = [json.loads(line) for line in done.stderr.splitlines()]  # every stderr line must be JSON
    return json.loads(done.stdout), log_lines


def test_a_service_process_writes_traces_metrics_and_json_logs(tmp_path: Path) -> None:
    result, logs = _run_service(tmp_path)

    assert result["destination"] == str(tmp_path / "balancing.jsonl")
    assert result["export_delay"] < 5

    spans = read_spans(tmp_path).spans
    assert {s.service for s in spans} == {"balancing"}
    assert not any(s.name.startswith(("GET /health", "GET /metrics")) for s in spans)  # probes untraced
    cycle = next(s for s in spans if s.name == "balancing_cycle")
    allocation = next(s for s in spans if s.name == "allocation")
    assert cycle.attributes["microgrid.id"] == "mg-1" and cycle.attributes["correlation.id"] == "corr-9"
    assert allocation.parent_span_id == cycle.span_id
    assert allocation.attributes["reason_codes"] == ["NODE_CAP_EXCEEDED"]
    # the HTTP server span (FastAPI instrumentation) is the cycle's ancestor, in the same trace
    (request_tree,) = [r for r in build_tree([s for s in spans if s.trace_id == cycle.trace_id])]
    names = []
    stack = [request_tree]
    while stack:
        node = stack.pop()
        names.append(node.span.name)
        stack.extend(node.children)
    assert "POST /api/microgrid/{microgrid_id}/rebalance" in names

    allocated = next(line for line in logs if line["event"] == "allocated")
    assert allocated["service"] == "balancing"
    assert allocated["trace_id"] == allocation.trace_id and allocated["span_id"] == allocation.span_id
    assert (allocated["correlation_id"], allocated["microgrid_id"]) == ("corr-9", "mg-1")
    stdlib = next(line for line in logs if line["event"] == "stdlib line")
    assert stdlib["logger"] == "aiokafka" and stdlib["trace_id"] == allocation.trace_id

    assert "mgrid_cycles_total{" in result["metrics"] and 'outcome="CURTAILED"' in result["metrics"]
    assert 'service_name="balancing"' in result["metrics"]  # target_info carries the resource
