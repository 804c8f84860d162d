-- The console's cycle list now reads balancing's own cycle audit (cycles.result is the published
-- cycle_completed payload); a second copy of every cycle's record cost a 60 KB write per cycle.
DROP TABLE IF EXISTS console_cycles;
