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


def test_a_service_keeps_freed_memory_instead_of_faulting_it_in_again_each_cycle() -> None:
    import resource

    from libs.platform.allocator import keep_freed_memory
    from libs.platform.settings import PlatformSettings

    assert keep_freed_memory(0) is False  # glibc's defaults left as they are
    assert PlatformSettings().malloc_keep_bytes == 256 * 1024 * 1024
    assert keep_freed_memory(PlatformSettings().malloc_keep_bytes) is True  # glibc: this project's platform

    def faults_of_a_cycle_sized_churn() -> int:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(20):
            lists = [[0] * 40_000 for _ in range(20)]  # a 10,000-node cycle's columns: ~6 MB, freed at once
            del lists
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    faults_of_a_cycle_sized_churn()  # the heap grows to its peak once
    assert faults_of_a_cycle_sized_churn() < 100  # glibc's defaults: ~1,500 a round, ~30,000 here
