"""The fault suite's cluster cases (issues 13 and 15): one broker of three SIGKILLed and restarted (a stack
of three brokers of the suite's own, RF 3, min ISR 2), one of two replicas of a service SIGKILLed (the
other takes its partitions over), and both at once (a replica of balancing and a broker of that stack).
Same bar as the others: every input exactly one cycle_completed, nothing dead-lettered, every service
ready within 30 s of the fault's end.

They run with every test (~3-4 minutes, three more JVMs); MGRID_TEST_SKIP_CLUSTER=1 leaves them out of a
quick local run.
"""

from __future__ import annotations

import os

import pytest

from simulator.chaos import HEADER, OUTAGE_S, READY_WITHIN_S, FaultRun, run_fault
from simulator.chaos_stack import OwnStack
from simulator.service_processes import ServiceProcesses
from simulator.transport import SimulatorSettings

pytestmark = [
    pytest.mark.system,
    pytest.mark.req("NFR-005", "NFR-006"),
    pytest.mark.skipif(os.environ.get("MGRID_TEST_SKIP_CLUSTER") == "1",
                       reason="MGRID_TEST_SKIP_CLUSTER=1: no second Kafka cluster of three brokers"),
]
EVENTS = int(os.environ.get("MGRID_CHAOS_EVENTS", "300"))
RATE = float(os.environ.get("MGRID_CHAOS_RATE", "10"))


def _assert_clean(run: FaultRun) -> None:
    print(f"\n{HEADER}\n{run.row()}")
    assert (run.sent, run.once, run.lost, run.duplicated) == (EVENTS, EVENTS, 0, 0), run.row()
    assert run.dead_lettered == 0, run.row()
    assert run.over_limit == []
    assert run.ready_after_s is not None and run.ready_after_s <= READY_WITHIN_S, f"{run.row()} {run.not_ready}"


@pytest.mark.timeout(900)
async def test_one_broker_of_three_killed_loses_nothing(
    own_cluster: OwnStack, own_cluster_services: tuple[ServiceProcesses, SimulatorSettings]
) -> None:
    processes, settings = own_cluster_services
    _assert_clean(await run_fault(settings, processes, fault="broker-kill", events=EVENTS, rate_per_s=RATE,
                                  stack=own_cluster))


@pytest.mark.timeout(900)
async def test_one_broker_of_three_and_one_of_two_replicas_killed_together_lose_nothing(
    own_cluster: OwnStack, own_cluster_services: tuple[ServiceProcesses, SimulatorSettings]
) -> None:
    """Issue 13: a second replica of balancing and one broker SIGKILLed at the same moment, mid-load: the
    first replica takes over the partitions and the relay lock while the group's coordinator may be moving."""
    processes, settings = own_cluster_services
    run = await run_fault(settings, processes, fault="broker-and-replica-kill", events=EVENTS, rate_per_s=RATE,
                          stack=own_cluster, seed=11)  # a depot of its own on that stack
    _assert_clean(run)
    # the faults struck (a replica not running fails the run): the broker was away for its whole outage
    assert run.injected == ["broker-and-replica-kill"] and run.down_s >= OUTAGE_S["broker-and-replica-kill"]


@pytest.mark.timeout(600)
async def test_one_of_two_replicas_killed_loses_nothing(
    chaos_services: tuple[ServiceProcesses, SimulatorSettings]
) -> None:
    processes, settings = chaos_services
    _assert_clean(await run_fault(settings, processes, fault="replica-kill", events=EVENTS, rate_per_s=RATE))
