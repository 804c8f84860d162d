"""The cycle collector's young-generation threshold comes from the service's settings."""

from __future__ import annotations


def test_a_service_sets_the_collectors_young_generation_threshold_from_its_settings() -> None:
    import gc

    from libs.platform.runtime import tune_collector
    from libs.platform.settings import PlatformSettings

    before = gc.get_threshold()
    try:
        tune_collector(PlatformSettings(gc_gen0_threshold=12_345))
        assert gc.get_threshold() == (12_345, before[1], before[2])
        assert PlatformSettings().gc_gen0_threshold == 50_000
    finally:
        gc.set_threshold(*before)
