"""Settings from the environment and ``.env``: the only place the desk reads configuration.

Every field is documented in ``.env.example``. Secrets (added by the live and LLM issues) are
``SecretStr`` so they never print. ``get_settings()`` validates once; a malformed value raises
``ConfigError`` with one readable line instead of a traceback.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SQLITE_PATH = PROJECT_ROOT / "data" / "desk.db"
# DESK_ENV_FILE picks another settings file (the test suite points it at an empty one, so a
# developer's keys in .env can never reach a test)
ENV_FILE = Path(os.environ.get("DESK_ENV_FILE") or PROJECT_ROOT / ".env")


# USD per 1M tokens (input, output): list prices at the time of writing; override with LLM_PRICES.
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gemini-2.5-pro": (1.25, 10.00),
    "gemini-2.5-flash": (0.30, 2.50),
    "gemini-2.5-flash-lite": (0.10, 0.40),
    "gemini-2.0-flash": (0.10, 0.40),
    "grok-4": (3.00, 15.00),
    "grok-4-fast": (0.20, 0.50),
    "grok-4-fast-reasoning": (0.20, 0.50),
    "grok-4-fast-non-reasoning": (0.20, 0.50),
    "grok-3": (3.00, 15.00),
    "grok-3-mini": (0.30, 0.50),
    "echo-rules": (0.0, 0.0),  # the offline provider costs nothing
}


def check_sqlite_path(database: str | None) -> None:
    """A SQLite store in a folder that does not exist would be a new, empty store (a typo would
    hide a live desk's open positions), so it is refused (ValueError); so is a URL that names no
    file (``sqlite:///``). In-memory stores (``sqlite://``, ``:memory:``) are for tests."""
    if database is None or database == ":memory:" or database.startswith("file::memory:"):
        return
    if not database.strip():
        raise ValueError("DATABASE_URL sqlite:/// names no file; use sqlite:///path/to/desk.db")
    folder = Path(database.removeprefix("file:").split("?", 1)[0]).expanduser().parent
    if not folder.is_dir():
        raise ValueError(f"DATABASE_URL points at a SQLite file in {folder}, a folder that does "
                         "not exist; create it or fix the path (a new, empty store would hide "
                         "the desk's history)")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=ENV_FILE,
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
    )

    # Store
    database_url: str = Field(default=f"sqlite:///{DEFAULT_SQLITE_PATH}")

    # Modes
    mode: Literal["paper", "live"] = Field(default="paper", alias="DESK_MODE")
    market_source: Literal["replay", "asterdex"] = "replay"

    # Replay feed
    replay_data_dir: Path = PROJECT_ROOT / "data" / "klines"
    replay_interval: Literal["1m", "15m", "1h"] = "15m"
    replay_start: date = date(2025, 6, 1)
    bars_per_tick: int = Field(default=4, ge=1, le=1000)
    tick_seconds: float = Field(default=2.0, gt=0, le=3600)
    symbols: str = "BTCUSDT,ETHUSDT,SOLUSDT"

    # Session
    default_capital: float = Field(default=100_000.0, gt=0)
    # The sixth agent, "External signals", proposes the trade ideas sent to POST
    # /api/agentic/signals; its share of a new session's capital (0: no such agent). The five
    # strategy agents share the rest in their roster proportions.
    external_signals_share: float = Field(default=0.0, ge=0, le=0.5)
    # The agents' parameters (strategy thresholds, capital shares, risk levels, models) for new
    # sessions and backtests; a relative path is read from the project folder
    # (core/agents/strategy_file.py)
    strategies_file: Path = PROJECT_ROOT / "strategies.toml"

    # Hard risk rules (DESIGN.md section 4)
    max_margin_fraction: float = Field(default=0.30, gt=0, le=1)
    max_open_positions_per_agent: int = Field(default=2, ge=1)
    stop_loss_margin_pct: float = Field(default=0.05, gt=0, le=1)
    gross_exposure_cap: float = Field(default=3.0, gt=0)
    drawdown_halt_pct: float = Field(default=0.15, gt=0, lt=1)
    agent_pause_drawdown_pct: float = Field(default=0.10, gt=0, lt=1)
    agent_pause_losing_streak: int = Field(default=4, ge=1)
    agent_pause_min_win_rate: float = Field(default=0.30, ge=0, le=1)
    agent_pause_win_rate_window: int = Field(default=10, ge=1)
    agent_resume_after_hours: float = Field(default=24.0, ge=0)
    review_interval_minutes: int = Field(default=60, ge=1)
    rebalance_interval_hours: int = Field(default=24, ge=1)
    rebalance_min_trades: int = Field(default=10, ge=0)
    allocation_min: float = Field(default=0.05, ge=0, le=1)
    allocation_max: float = Field(default=0.40, ge=0, le=1)
    snapshot_interval_minutes: int = Field(default=60, ge=1)

    # Paper exchange
    paper_taker_fee: float = Field(default=0.0004, ge=0, le=0.01)
    paper_slippage_bps: float = Field(default=2.0, ge=0, le=500)
    paper_funding_rate: float = Field(default=0.0001, ge=-0.01, le=0.01)
    paper_funding_interval_hours: int = Field(default=8, ge=1, le=24)

    # Dashboard
    dashboard_password: SecretStr | None = None
    # The time zone the dashboard shows times in (an IANA name such as Europe/Paris); the store,
    # the CLI and every CSV stay in UTC
    display_timezone: str = "UTC"

    # HTTP API (core/api/): the bearer tokens a client may send, comma-separated; empty refuses
    # every request and `./desk api` does not start
    api_tokens: SecretStr | None = None

    # Agents: "none" runs the rule strategies directly; "offline" sends every decision through the
    # model path with the deterministic offline provider; "auto" puts each agent on its
    # roster model (Gemini or Grok) where that model's key is set, and on its rules elsewhere
    agent_llm: Literal["none", "offline", "auto"] = "auto"

    # --- model providers (core/llm/gemini.py, core/llm/openai_compat.py) ------
    gemini_api_key: SecretStr | None = None
    gemini_model: str = Field(default="gemini-2.5-flash", min_length=1)
    gemini_base_url: str | None = None
    xai_api_key: SecretStr | None = None
    xai_base_url: str = Field(default="https://api.x.ai/v1", min_length=1)
    xai_model: str = Field(default="grok-4-fast-non-reasoning", min_length=1)
    llm_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    llm_max_retries: int = Field(default=2, ge=0, le=10)
    llm_retry_backoff_seconds: float = Field(default=1.0, ge=0, le=60)
    llm_temperature: float = Field(default=0.2, ge=0, le=2)

    # --- AsterDex venue (core/exchanges/asterdex_*.py); secrets are SecretStr ---------
    asterdex_base_url: str = "https://fapi.asterdex.com"
    asterdex_ws_url: str = "wss://fstream.asterdex.com"
    asterdex_auth: Literal["auto", "v1", "v3"] = "auto"
    asterdex_api_key: SecretStr | None = None
    asterdex_secret_key: SecretStr | None = None
    asterdex_user: str | None = None
    asterdex_signer: str | None = None
    asterdex_private_key: SecretStr | None = None
    # None: the host's own network (1666 mainnet, 714 on the testnet host)
    asterdex_chain_id: int | None = Field(default=None, ge=1)
    asterdex_recv_window_ms: int = Field(default=5000, ge=1, le=60_000)
    asterdex_timeout_s: float = Field(default=10.0, gt=0, le=120)
    asterdex_max_wait_s: float = Field(default=5.0, ge=0, le=600)
    # live execution and feed (core/exchanges/asterdex.py, core/feeds/asterdex.py)
    asterdex_deadman_seconds: float = Field(default=0.0, ge=0, le=86_400)
    asterdex_streams: bool = True
    # the user data stream (core/exchanges/asterdex_userstream.py): live fills as they happen;
    # its listenKey lives 60 minutes from the last keepalive, so the keepalive must come sooner
    asterdex_user_stream: bool = True
    asterdex_listen_key_keepalive_s: float = Field(default=1800.0, gt=0, le=3300)
    asterdex_reconcile_seconds: float = Field(default=60.0, ge=0, le=3600)
    asterdex_history_bars: int = Field(default=1500, ge=100, le=10_000)

    # --- LLM audit, cost, daily budget, CEO review, shadow baseline ----------
    llm_prices: dict[str, tuple[float, float]] = Field(default_factory=lambda: dict(DEFAULT_PRICES))
    llm_daily_budget_usd: float = Field(default=10.0, ge=0)
    llm_budget_exhausted: Literal["rules", "stop"] = "rules"
    ceo_llm_review: bool = False
    ceo_llm_provider: Literal["offline", "gemini", "grok"] = "gemini"
    shadow_baseline: bool = False

    # --- alerts (core/alerts/): targets are secrets (apprise URLs with tokens and passwords)
    alert_urls: SecretStr | None = None
    alert_kinds_off: str = ""  # kinds never sent, comma-separated (core/alerts/kinds.py)
    alert_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    alert_max_attempts: int = Field(default=8, ge=1, le=100)
    alert_retry_seconds: float = Field(default=10.0, ge=0, le=3600)
    alert_retry_max_seconds: float = Field(default=900.0, ge=0, le=86_400)
    alert_rate_per_minute: int = Field(default=10, ge=1, le=1000)
    alert_max_age_hours: float = Field(default=24.0, gt=0, le=24 * 365)
    alert_poll_seconds: float = Field(default=1.0, gt=0, le=600)

    # Engine
    engine_in_app: bool = True
    engine_lease_stale_seconds: float = Field(default=30.0, gt=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("database_url")
    @classmethod
    def _check_url(cls, v: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(v)
        except ArgumentError as exc:
            raise ValueError(f"DATABASE_URL is not a valid database URL ({exc})") from None
        if url.get_backend_name() not in ("sqlite", "postgresql"):
            raise ValueError("DATABASE_URL must be sqlite:///... or postgresql://...")
        if url.get_backend_name() == "sqlite":
            check_sqlite_path(url.database)
        return v

    @field_validator("strategies_file")
    @classmethod
    def _strategies_in_project(cls, value: Path) -> Path:
        return value if value.is_absolute() else PROJECT_ROOT / value

    @field_validator("display_timezone")
    @classmethod
    def _check_timezone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        name = v.strip() or "UTC"
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"DISPLAY_TIMEZONE {v!r} is not a time zone; use an IANA name such "
                             "as UTC, Europe/London or America/New_York") from None
        return name

    @field_validator("symbols")
    @classmethod
    def _check_symbols(cls, v: str) -> str:
        items = [s.strip().upper() for s in v.split(",") if s.strip()]
        if not items:
            raise ValueError("SYMBOLS must name at least one symbol")
        return ",".join(items)

    @property
    def symbol_list(self) -> tuple[str, ...]:
        return tuple(self.symbols.split(","))

    @property
    def api_token_list(self) -> tuple[str, ...]:
        """The HTTP API's bearer tokens (``API_TOKENS`` split on commas, blanks dropped)."""
        raw = self.api_tokens.get_secret_value() if self.api_tokens is not None else ""
        return tuple(t.strip() for t in raw.split(",") if t.strip())

    @property
    def replay_start_ms(self) -> int:
        start = datetime(
            self.replay_start.year, self.replay_start.month, self.replay_start.day, tzinfo=UTC
        )
        return int(start.timestamp() * 1000)


def load_settings(**overrides: object) -> Settings:
    """Build settings from env/.env plus explicit overrides; raise ConfigError on bad values."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "settings"
        message = str(first.get("msg", "")).removeprefix("Value error, ")
        raise ConfigError(f"invalid setting {where.upper()}: {message}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
