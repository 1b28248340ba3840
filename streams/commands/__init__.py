"""The kpistream command line: worker, demo, validate, publish, collector, simulate, alert-rules,
suggest-targets.
"""
