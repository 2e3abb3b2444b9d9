"""The CEO: the rules that judge every proposal and every agent.

``rules``: the hard risk rules (margin, stop distance, leverage, exposure, halt headroom) and the
sizing they allow, pure functions of a proposal and the account's figures; ``portfolio``: when to
pause, resume and rebalance agents (applied on the engine clock by ``core.desk.review``);
``model_reviewer``: the optional model that may only tighten an approved plan.

May import: ``llm`` (the reviewer's client), ``config``, ``models``, ``errors``. ``rules`` is pure:
it imports no store, venue, model client or framework.
"""
