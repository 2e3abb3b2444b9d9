"""The strategy agents: one small module per strategy, their shared shapes (``base``) and signals
(``common``), the roster, the model-backed agent with its prompts, and their parameters: each
strategy's model (``params``), the desk's whole set (``desk_params``) and the strategy file that
sets them (``strategy_file``).

May import: ``ceo`` (the limits a model is told), ``llm`` (the model clients), ``indicators``,
``config``, ``models``, ``errors``; never a venue, the store or the kernel.
"""
