"""KPI formulas and their Prometheus exposition."""
