"""What travels between the stages: forwarded events, their exact JSON, failures, the campaign-
channel cap. Pure.
"""
