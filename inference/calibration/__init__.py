"""Simulation-based calibration: the simulations, the rank statistics, the table and the report."""
