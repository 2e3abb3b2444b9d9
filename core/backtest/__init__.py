"""Backtesting: the desk's own engine (``core.desk.engine.run_cycle``, the rule agents, the
CEO's hard rules and reviews, the paper venue) replayed over a chosen range of recorded candles as
fast as the machine allows, on the feed's step clock.

``params`` validates what the user asked for, ``runner`` runs it in a private in-memory store and
``transfer`` copies the finished run into the main store (a session with mode ``backtest`` plus a
``backtest_runs`` row), ``report`` computes the figures (pure functions), ``inputs`` gathers them
from a store and ``jobs`` runs backtests in a background thread for the dashboard (the
``python -m core backtest`` command is ``core.cli.backtest``).

May import: ``desk`` and everything below it; never the service, the queries or an interface.
"""
