"""Research: tune the agents' parameters and tell a real edge from an overfit one.

``metrics`` turns an equity curve into daily returns and an objective (Sharpe, Sortino, Calmar,
return); ``overfitting`` holds the statistics that judge a search (the Deflated Sharpe Ratio and
the Probability of Backtest Overfitting by CSCV); ``storage`` keeps Optuna's studies in the desk's
database; ``trial`` is one backtest of one parameter set through the desk's own engine;
``study`` runs a search over worker processes; ``walkforward`` optimises on each training window
and reports only on the unseen window after it.

May import: ``backtest`` and everything below it; never the service, the queries or an
interface (the dashboard reaches research through ``core.service`` and ``core.queries``).
"""
