"""The desk's kernel: one engine tick (``engine.run_cycle``) and what it drives.

Owns the tick's control flow (``engine``), the CEO's judgement applied to a tick's proposals
(``judge``) and to the portfolio (``review``), orders and their booking (``execution``, with the
stop placement of ``protection`` and the stop coverage of ``coverage``), the books (``ledger``),
the venue's truth adopted after a restart (``reconcile``), the single-engine lease (``lease``),
the scheduler that ticks it (``scheduler``), the composition root that builds a session's
``Desk`` (``runtime``, ``live_runtime``), and the model services with their shadow book
(``llm_services``, ``shadow``). ``context`` holds the ``Desk`` type every part shares.

May import: ``feeds``, ``exchanges``, ``agents``, ``ceo``, ``llm``, ``store`` and the shared
modules; never the backtest, the service, the queries or an interface.
"""
