"""Kafka clients and broker compatibility: connection settings, topics, probes, the stream
consumer, Tansu.
"""
