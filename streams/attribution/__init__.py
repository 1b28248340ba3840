"""Which campaign an order belongs to (campaign id, promo code, remembered click) and customer
history. Pure.
"""
