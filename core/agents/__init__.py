"""The strategy agents: one small module per strategy, their shared shapes (``base``) and signals
(``common``), the roster, and the model-backed agent with its prompts.

May import: ``ceo`` (the limits a model is told), ``llm`` (the model clients), ``indicators``,
``config``, ``models``, ``errors``; never a venue, the store or the kernel.
"""
