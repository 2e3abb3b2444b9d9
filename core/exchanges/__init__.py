"""Venues: the exchange contract (``base``), the paper simulator and the AsterDex client, with
symbol filters and the live venue check.

May import: ``store`` (the paper venue keeps its book there), ``config``, ``models``, ``errors``;
never a strategy, the CEO or the kernel.
"""
