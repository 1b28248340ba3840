"""The five event types: validation of a Kafka message (SPEC 1 and 4) and their JSON Schemas. Pure.
"""
