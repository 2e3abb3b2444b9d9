"""Market feeds: the feed contract, replay of recorded candles and the live AsterDex feed.

May import: ``exchanges`` (the live feed reads through the AsterDex client), ``agents`` (the
market view agents read), ``indicators``, ``models``, ``errors``.
"""
