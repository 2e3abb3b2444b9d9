"""The agentic trading desk for AsterDex perpetual futures.

Packages, from the interfaces down (each may import only what lies below it; the contracts are in
``pyproject.toml`` and import-linter checks them in the suite; docs/architecture.md draws them):

- ``cli`` and ``ui``: the terminal and the dashboard helper (pages live in ``views/``);
- ``service`` (what a user may do) over ``queries`` (what a user may read);
- ``backtest``: the desk replayed over recorded candles;
- ``desk``: the kernel, one tick of the engine and everything it drives;
- ``feeds`` and ``exchanges``: market data and venues (paper and AsterDex);
- ``agents``: the strategies; ``ceo``: the rules that judge them; ``llm``: the model clients;
- ``store``: tables and the database; ``config``, ``clock``, ``indicators``, ``models``,
  ``errors``: the shapes and settings everything shares.

Nothing here imports streamlit or the dashboard: the UI (``views/`` and its helper ``dashboard/``)
lives outside ``core`` and depends on it, never the other way (a contract in pyproject.toml).
"""
