"""The depot simulator (D-013, FR-017, NFR-007): plays every outside actor against the running services.

A scenario is a YAML data file (`simulator/scenarios/*.yaml`) naming a depot layout
(`simulator/scenarios/depots/*.yaml`), a seed, the requirement ids it verifies, a list of steps and the
outcomes each step must produce. The runner plays the steps through the services' public topics and
routes only, reads their output topics, checks the expectations with deadlines and writes a report.

Reproducible by construction: every random choice comes from `random.Random(seed)`, every UUID is a
uuid5 over a namespace derived from (scenario, seed, anchor), and every timestamp in a payload is the
scenario clock's (anchor + planned offset), never a fresh read of the wall clock.

Modules, by job:
- `scenario`, `depot`: the file formats (pydantic), loaders and the scenario library.
- `identity`, `clock`: deterministic ids and simulated time.
- `actors/`: the outside actors (operator, circuit registry, telemetry sources, chargers, envelope
  adapter, legacy producers and schedulers); each builds requests and messages, none does I/O.
  `actors/*_step(s).py` play one kind of step each on the `Stage` (`actors/stage.py`: the depot's
  state and the only way to send), and `actors/actions.py` maps a step's action model to its player.
- `transport`: the only I/O (Kafka producer, HTTP clients, the output-topic observer, settle barrier),
  with a dry-run twin that records what would be sent.
- `expectations`: pure checks of observed outputs against a step's expectations and the invariants.
- `runner`: runs one scenario step by step, checks each step's expectations, finishes with the
  invariants; `report`: terminal summary and the HTML report.
- `service_processes`: starts, stops and reports the four service processes (used by `mgrid demo`
  and the system tests).
"""
