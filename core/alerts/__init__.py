"""Alerts: telling the trader, on a phone or by email, what the desk did while nobody watched.

Owns the catalogue of alert kinds and severities (``kinds``), the outbox writer the desk, the
service and the backtest call inside the transaction of each event (``outbox``, with one message
builder per event in ``events``), the ALERT_URLS targets and their subscriptions (``targets``),
sending through apprise (``channel``), the message texts and burst digests (``compose``) and the
sender worker that delivers the outbox outside the engine's tick with retries, back-off and a
per-target rate limit (``sender``). Target URLs are secrets: they are read from the
environment only, shown masked and never stored or logged.

May import: ``store`` and the shared modules (``config``, ``models``, ``errors``); never the
kernel, the LLM clients or anything above.
"""
