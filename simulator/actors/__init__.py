"""The outside actors the simulator plays. Each builds HTTP calls or messages; none does I/O or reads a clock."""
