"""The model clients: the provider contract and reply parsing (``base``), Gemini, any
OpenAI-compatible endpoint (Grok), retries, cost and the daily budget.

May import: ``store`` (the budget's spend), ``config``, ``models``, ``errors``; never an agent,
the CEO or the kernel (they call into this package).
"""
