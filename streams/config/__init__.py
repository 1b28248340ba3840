"""Settings: the TOML file and KPISTREAM_* environment, durations, targets and budgets entries.
Pure.
"""
