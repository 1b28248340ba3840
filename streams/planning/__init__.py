"""Budget pacing and target baselines: arithmetic over epoch milliseconds and daily figures. Pure.
"""
