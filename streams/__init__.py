"""kpistream: live marketing KPIs from Kafka events."""
