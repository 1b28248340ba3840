"""The stages' handling of one message or batch, their stateful books, outgoing records and ack
order. Pure.
"""
