"""The fault suite's infrastructure faults, small (issue 15): Kafka SIGKILLed and restarted, Kafka
SIGSTOPped 10 s, Postgres SIGSTOPped 20 s, Postgres crashed (SIGKILL) and down 60 s, a random service
SIGKILLed every 20 +- 10 s, Redis killed and restarted; each once, under steady legacy load, on a stack
of the suite's own (never the shared one). Every input gives exactly one cycle_completed, nothing is
dead-lettered, no allocation goes above its limit, every service is ready within 30 s of the fault's end.

MGRID_CHAOS_EVENTS / MGRID_CHAOS_RATE size it (300 at 10/s by default); `mgrid chaos` runs it by hand.
"""

from __future__ import annotations

import os

import pytest

from simulator.chaos import HEADER, READY_WITHIN_S, STACK_FAULTS, run_fault
from simulator.chaos_stack import OwnStack
from simulator.service_processes import ServiceProcesses
from simulator.transport import SimulatorSettings

pytestmark = [pytest.mark.system, pytest.mark.req("NFR-005", "NFR-006")]
EVENTS = int(os.environ.get("MGRID_CHAOS_EVENTS", "300"))
RATE = float(os.environ.get("MGRID_CHAOS_RATE", "10"))


@pytest.mark.timeout(900)  # the own stack's first start, then a 60 s outage and the drain after it
@pytest.mark.parametrize("fault", STACK_FAULTS)
async def test_every_input_gives_exactly_one_cycle_through_the_outage(
    fault: str, own_stack: OwnStack, own_stack_services: tuple[ServiceProcesses, SimulatorSettings]
) -> None:
    processes, settings = own_stack_services
    run = await run_fault(settings, processes, fault=fault, events=EVENTS, rate_per_s=RATE, stack=own_stack)
    print(f"\n{HEADER}\n{run.row()}")
    assert (run.sent, run.once, run.lost, run.duplicated) == (EVENTS, EVENTS, 0, 0), run.row()
    assert run.dead_lettered == 0, run.row()
    assert run.over_limit == []
    assert run.ready_after_s is not None and run.ready_after_s <= READY_WITHIN_S, f"{run.row()} {run.not_ready}"
