"""Comparing back-ends on one model and data set: the table, the reference posterior, the figures and
the report."""
