"""The compatibility adapter: keeps circuit-centric integrations working by translating them into
Microgrid contracts (circuit_id -> microgrid_id + node_id), never by deciding anything itself.

What happens when `load_balancer.rebalance_requested` arrives: `handlers.py` -> `service.py`
(`translate_legacy_rebalance`) -> `translation.py` (resolve with `libs/domain/circuit_alias.py`, the rule;
then apply or refuse). See docs/compatibility.md and docs/service-shape.md.
"""
