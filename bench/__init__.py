"""Benchmarks: kpistream's end-to-end speed measured against raw aiokafka in the same run."""
