"""The LLM read model: cost, failures and the shadow baseline per agent, the session's budget, and
the audit chain of one trade.

``agent_llm_stats`` and ``session_llm`` aggregate ``llm_calls`` and ``shadow_trades`` in SQL (on the
(session, agent) and (session, tick) indexes), so the Agents and Session pages can put cost and the
rules-only twin's PnL next to each agent's PnL. ``trade_chain`` walks one trade back to its origin:
fills and orders ← position ← CEO verdict (rules fired, before/after, the reviewer's call) ←
proposal ← the agent's LLM call (provider, model, prompt version, prompt, raw reply, parsed answer,
validation errors, latency, tokens, cost). A rule-only trade simply has no call at the end.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
from sqlalchemy import Engine, case, func, select

from core.queries.common import _iso, _marks
from core.store.tables import (
    CEO_DECISIONS,
    POSITIONS,
    PROPOSALS,
    AgentRow,
    CeoDecisionRow,
    FillRow,
    LLMCallRow,
    OrderRow,
    PositionRow,
    SessionRow,
    ShadowTradeRow,
)

DAY_MS = 86_400_000
CALL_FIELDS = ("id", "role", "provider", "model", "prompt_version", "system", "prompt",
               "prompt_sha256", "raw_reply", "parsed", "error", "validation_errors", "latency_ms",
               "input_tokens", "output_tokens", "cost_usd", "attempts", "tick_ms")


def agent_llm_stats(engine: Engine, session_id: int) -> dict[int, dict[str, Any]]:
    """Per agent id: model calls, failures and failure rate, tokens, cost, and the shadow twin's
    trades and PnL (net of fees, open twins marked at the engine's last marks). Agents with
    neither calls nor twins are absent."""
    c = LLMCallRow
    out: dict[int, dict[str, Any]] = {}
    with engine.connect() as conn:
        for r in conn.execute(
            select(c.agent_id, func.count().label("calls"),
                   func.sum(case((c.error.is_not(None), 1), else_=0)).label("failures"),
                   func.sum(c.cost_usd).label("cost"), func.sum(c.input_tokens).label("tin"),
                   func.sum(c.output_tokens).label("tout"), func.avg(c.latency_ms).label("lat"))
            .where(c.session_id == session_id, c.agent_id.is_not(None)).group_by(c.agent_id)
        ):
            calls = int(r.calls or 0)
            failures = int(r.failures or 0)
            out[r.agent_id] = {
                "llm_calls": calls, "llm_call_failures": failures,
                "failure_rate": round(failures / calls, 4) if calls else None,
                "llm_cost_usd": round(float(r.cost or 0.0), 6),
                "input_tokens": int(r.tin or 0), "output_tokens": int(r.tout or 0),
                "avg_latency_ms": round(float(r.lat), 1) if r.lat is not None else None,
            }
        marks = _marks(conn.scalar(select(SessionRow.marks).where(SessionRow.id == session_id)))
        s = ShadowTradeRow
        closed = conn.execute(
            select(s.agent_id, func.count().label("n"),
                   func.sum(s.realized_pnl - s.fees).label("net"))
            .where(s.session_id == session_id, s.status == "closed").group_by(s.agent_id)).all()
        held = conn.execute(
            select(s.agent_id, s.symbol, s.side, s.quantity, s.entry_price, s.fees)
            .where(s.session_id == session_id, s.status == "open")).all()
    for r in closed:
        row = out.setdefault(r.agent_id, _no_calls())
        row.update(shadow_trades=int(r.n), shadow_open=0, shadow_pnl=float(r.net or 0.0))
    for r in held:
        row = out.setdefault(r.agent_id, _no_calls())
        row.setdefault("shadow_trades", 0)
        row["shadow_open"] = row.get("shadow_open", 0) + 1
        sign = 1 if r.side == "LONG" else -1
        unrealized = (marks.get(r.symbol, r.entry_price) - r.entry_price) * r.quantity * sign
        row["shadow_pnl"] = row.get("shadow_pnl", 0.0) + unrealized - r.fees
    for row in out.values():
        if "shadow_pnl" in row:
            row["shadow_pnl"] = round(row["shadow_pnl"], 2)
    return out


def _no_calls() -> dict[str, Any]:
    return {"llm_calls": 0, "llm_call_failures": 0, "failure_rate": None, "llm_cost_usd": 0.0,
            "input_tokens": 0, "output_tokens": 0, "avg_latency_ms": None}


def session_llm(engine: Engine, session_id: int, daily_budget_usd: float) -> dict[str, Any]:
    """The session's model calls and cost, today's spend (engine-clock day) against the budget,
    and whether the budget ran out today (the CEO log says so once per day)."""
    c = LLMCallRow
    with engine.connect() as conn:
        clock = conn.scalar(select(SessionRow.clock_ms).where(SessionRow.id == session_id)) or 0
        start = clock - clock % DAY_MS
        r = conn.execute(
            select(func.count().label("calls"),
                   func.coalesce(func.sum(case((c.error.is_not(None), 1), else_=0)), 0).label("failures"),
                   func.coalesce(func.sum(c.cost_usd), 0.0).label("cost"),
                   func.coalesce(func.sum(case((c.tick_ms >= start, c.cost_usd), else_=0.0)), 0.0)
                   .label("today"),
                   func.coalesce(func.sum(case((c.role == "ceo_review", 1), else_=0)), 0).label("reviews"),
                   func.coalesce(func.sum(case((c.role == "ceo_review", c.cost_usd), else_=0.0)), 0.0)
                   .label("review_cost"))
            .where(c.session_id == session_id)
        ).one()
        exhausted_at = conn.scalar(
            select(func.max(CeoDecisionRow.ts_ms)).where(
                CeoDecisionRow.session_id == session_id, CeoDecisionRow.kind == "llm_budget",
                CeoDecisionRow.ts_ms >= start))
    today = float(r.today)
    return {
        "calls": int(r.calls or 0), "failures": int(r.failures or 0),
        "cost_usd": round(float(r.cost), 6), "cost_today_usd": round(today, 6),
        "review_calls": int(r.reviews or 0), "review_cost_usd": round(float(r.review_cost), 6),
        "daily_budget_usd": daily_budget_usd,
        "budget_left_usd": round(max(0.0, daily_budget_usd - today), 6),
        "budget_exhausted": exhausted_at is not None, "exhausted_at": _iso(exhausted_at),
        "engine_day": _iso(start)[:10] if clock else None,
    }


def _call(conn: Any, call_id: int | None) -> dict[str, Any] | None:
    if call_id is None:
        return None
    row = conn.execute(select(*(getattr(LLMCallRow, f) for f in CALL_FIELDS))
                       .where(LLMCallRow.id == call_id)).one_or_none()
    if row is None:
        return None
    out = dict(zip(CALL_FIELDS, row, strict=True))
    out["parsed"] = json.loads(out["parsed"]) if out["parsed"] else None
    out["at"] = _iso(out.pop("tick_ms"))
    return out


def trade_chain(engine: Engine, session_id: int, trade_id: int) -> dict[str, Any] | None:
    """One position (trade) and everything behind it, or None if the session has no such trade."""
    with engine.connect() as conn:
        pos = conn.execute(
            select(POSITIONS, AgentRow.name.label("agent"))
            .join(AgentRow, AgentRow.id == PositionRow.agent_id)
            .where(PositionRow.id == trade_id, PositionRow.session_id == session_id)
        ).one_or_none()
        if pos is None:
            return None
        position = {k: v for k, v in pos._mapping.items()}
        orders = pd.DataFrame(conn.execute(
            select(OrderRow.id, OrderRow.client_order_id, OrderRow.purpose, OrderRow.side,
                   OrderRow.type, OrderRow.quantity, OrderRow.stop_price, OrderRow.status,
                   OrderRow.executed_qty, OrderRow.avg_price, OrderRow.error, OrderRow.created_ms)
            .where(OrderRow.position_id == trade_id).order_by(OrderRow.id)).all(),
            columns=["id", "client_order_id", "purpose", "side", "type", "qty", "stop_price",
                     "status", "executed_qty", "avg_price", "error", "created_ms"])
        fills = pd.DataFrame(conn.execute(
            select(FillRow.trade_id, FillRow.client_order_id, FillRow.side, FillRow.quantity,
                   FillRow.price, FillRow.fee, FillRow.realized_pnl, FillRow.liquidation,
                   FillRow.ts_ms)
            .where(FillRow.position_id == trade_id).order_by(FillRow.ts_ms, FillRow.id)).all(),
            columns=["venue_trade_id", "client_order_id", "side", "qty", "price", "fee",
                     "realized_pnl", "liquidation", "ts_ms"])
        decision = proposal = None
        agent_call = review_call = None
        if position["decision_id"] is not None:
            d = conn.execute(select(CEO_DECISIONS).where(
                CEO_DECISIONS.c.id == position["decision_id"])).one_or_none()
            if d is not None:
                decision = {
                    "id": d.id, "at": _iso(d.ts_ms), "verdict": d.verdict,
                    "rules": [r for r in d.rules.split(",") if r], "reason": d.reason,
                    "changes": json.loads(d.changes) if d.changes else {},
                    "proposed_leverage": d.proposed_leverage, "final_leverage": d.final_leverage,
                    "proposed_margin": d.proposed_margin, "final_margin": d.final_margin,
                }
                review_call = _call(conn, d.llm_call_id)
                if d.proposal_id is not None:
                    p = conn.execute(select(PROPOSALS).where(
                        PROPOSALS.c.id == d.proposal_id)).one_or_none()
                    if p is not None:
                        proposal = {
                            "id": p.id, "at": _iso(p.tick_ms), "kind": p.kind, "symbol": p.symbol,
                            "action": p.action, "leverage": p.leverage,
                            "margin_fraction": p.margin_fraction, "stop_price": p.stop_price,
                            "take_profit": p.take_profit, "confidence": p.confidence,
                            "ref_price": p.ref_price, "reasoning": p.reasoning,
                        }
                        agent_call = _call(conn, p.llm_call_id)
    orders.insert(0, "at", [_iso(int(v)) for v in orders.pop("created_ms")])
    fills.insert(0, "at", [_iso(int(v)) for v in fills.pop("ts_ms")])
    position["opened_at"], position["closed_at"] = _iso(position["opened_ms"]), _iso(position["closed_ms"])
    return {"position": position, "orders": orders, "fills": fills, "decision": decision,
            "proposal": proposal, "llm_call": agent_call, "review_call": review_call}
