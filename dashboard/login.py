"""The password gate: nothing renders before the dashboard password is entered, and wrong
guesses are logged (never the guess) and slowed down per client."""

from __future__ import annotations

import hmac
import logging
import math
import threading
import time
from collections.abc import Callable

import streamlit as st

from core.config import Settings

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------- access
_now = time.monotonic  # the throttle's clock (tests move it instead of sleeping)


class LoginThrottle:
    """Wrong dashboard passwords per client, for the whole server process: after ``free`` wrong
    guesses within ``window_s`` each further guess must wait twice as long as the one before
    (1 s, 2 s, 4 s … up to ``max_wait_s``), so guessing runs at a few tries an hour, not
    thousands a second. A right password clears the client's record."""

    def __init__(self, free: int = 3, window_s: float = 900.0, max_wait_s: float = 300.0,
                 clock: Callable[[], float] | None = None) -> None:
        self.free, self.window_s, self.max_wait_s = free, window_s, max_wait_s
        self.clock = clock or (lambda: _now())
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> list[float]:
        kept = [t for t in self._failures.get(client, []) if now - t < self.window_s]
        self._failures[client] = kept
        return kept

    def wait_s(self, client: str) -> float:
        """Seconds before ``client`` may try again (0: now)."""
        with self._lock:
            now = self.clock()
            recent = self._recent(client, now)
            if len(recent) < self.free:
                return 0.0
            wait = min(self.max_wait_s, 2.0 ** (len(recent) - self.free))
            return max(0.0, recent[-1] + wait - now)

    def failed(self, client: str) -> int:
        """Record a wrong guess; returns the client's wrong guesses within the window."""
        with self._lock:
            now = self.clock()
            recent = self._recent(client, now)
            recent.append(now)
            return len(recent)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)


@st.cache_resource
def login_throttle() -> LoginThrottle:
    return LoginThrottle()


def _client() -> str:
    """Who is guessing: the browser's address as the server sees it (behind a proxy that is the
    proxy, and every client shares one throttle: slower for all, never faster for anyone)."""
    try:
        address = st.context.ip_address
    except Exception:  # no browser context (tests, bare mode)
        address = None
    return address if isinstance(address, str) and address else "unknown address"


def password_gate(settings: Settings) -> None:
    """Stop the script (showing only a password box) until the dashboard password is entered;
    wrong guesses are logged (never the guess) and slowed down per client."""
    secret = settings.dashboard_password
    if secret is None or not secret.get_secret_value():
        return
    if st.session_state.get("authenticated"):
        return
    st.title("Agentic trading desk")
    with st.form("login"):
        entered = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Enter")
    if submitted:
        throttle, client = login_throttle(), _client()
        wait = throttle.wait_s(client)
        if wait > 0:  # not even checked: a right guess in a locked window would still leak
            st.error(f"Too many wrong passwords: try again in {math.ceil(wait)} s.")
            st.stop()
        if hmac.compare_digest(entered.encode(), secret.get_secret_value().encode()):
            throttle.succeeded(client)
            st.session_state["authenticated"] = True
            st.rerun()
        count = throttle.failed(client)
        log.warning("dashboard: wrong password from %s (%d in the last %.0f min)", client, count,
                    throttle.window_s / 60)
        wait = throttle.wait_s(client)
        st.error("Wrong password." + (f" Wait {math.ceil(wait)} s before the next try."
                                      if wait > 0 else ""))
    st.stop()
