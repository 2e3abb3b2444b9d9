"""Venues: the paper simulator, symbol filters, and the exchange contract."""
