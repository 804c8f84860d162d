"""Building blocks of benchmarks/fleet.py: the fleet's depots, the probes (CPU, consumer lag), the bare hop."""
