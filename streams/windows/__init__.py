"""Counters of a minute bucket, minute buckets, trailing-window sums and a worker's KPI state.
Pure.
"""
