"""ALERT_URLS: where alerts go, and what each target wants to hear.

Why it exists: targets are apprise URLs that carry secrets (bot tokens, passwords, webhook keys),
so they are parsed here once, from the environment only, into ``Target``s whose URL never shows
in a repr, a log line, an error or the store; everything else names a target by its name.

Syntax: targets are separated by whitespace (spaces or newlines; a URL never contains one). Each
is an apprise URL, optionally preceded by ``NAME[:SEVERITY[:KINDS]]=``:

- NAME: letters, digits, ``_`` and ``-`` (at most 32), unique; default ``<scheme>-<position>``
- SEVERITY: the least severity sent, ``info`` (default), ``warning`` or ``critical``
- KINDS: comma-separated kinds (core/alerts/kinds.py), ``prefix_*`` wildcards, ``*`` for all
  (default), and ``-kind`` to leave one out: ``*,-trade_opened``

``phone:warning=tgram://BOT_TOKEN/CHAT_ID mail::session_*,backtest_*=mailtos://me:pw@gmail.com``
sends warnings and worse of every kind to Telegram, and session and backtest news of any
severity by email. ALERT_KINDS_OFF switches kinds off for every target.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from core.alerts.kinds import KINDS, check_severity, parse_kinds, rank
from core.config import Settings
from core.errors import ConfigError

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")
CLAIM_STALE_MS = 300_000  # a delivery claimed this long ago by a sender that died is taken back


@dataclass(frozen=True, slots=True)
class Target:
    """One alert target. ``url`` is the secret: it is passed to apprise and nowhere else."""

    name: str
    scheme: str
    min_severity: str = "info"
    kinds: frozenset[str] = frozenset(KINDS)
    url: str = field(default="", repr=False, compare=False)

    @property
    def label(self) -> str:
        """How the target is shown: its name and service, never its URL."""
        return f"{self.name} ({self.scheme}://…)"

    def wants(self, kind: str, severity: str) -> bool:
        return kind in self.kinds and rank(severity) >= rank(self.min_severity)

    def secret_parts(self) -> list[str]:
        """Every piece of the URL that may be a secret (user, password, host, path segments,
        query values), longest first, for scrubbing texts that might quote them."""
        parts = {self.url}
        try:
            split = urlsplit(self.url)
            netloc = split.netloc.rsplit("@", 1)
            if len(netloc) == 2:
                parts.update(unquote(p) for p in netloc[0].split(":"))
            host = netloc[-1]
            parts.update((host, host.rsplit(":", 1)[0], split.netloc))
            parts.update(unquote(p) for p in split.path.split("/"))
            parts.update(v for _, v in parse_qsl(split.query))
        except ValueError:
            pass
        return sorted((p for p in parts if len(p) >= 3), key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for part in self.secret_parts():
            text = text.replace(part, "***")
        return text


@dataclass(frozen=True, slots=True)
class AlertConfig:
    """The targets and the sending policy (retries, back-off, rate limit, age limit)."""

    targets: tuple[Target, ...]
    kinds_off: frozenset[str] = frozenset()
    timeout_s: float = 10.0
    max_attempts: int = 8
    retry_s: float = 10.0
    retry_max_s: float = 900.0
    rate_per_minute: int = 10
    max_age_ms: int = 86_400_000
    poll_s: float = 1.0

    @classmethod
    def from_settings(cls, settings: Settings) -> AlertConfig:
        raw = settings.alert_urls.get_secret_value() if settings.alert_urls is not None else ""
        return cls(
            targets=parse_targets(raw),
            kinds_off=parse_kinds(settings.alert_kinds_off, where="ALERT_KINDS_OFF"),
            timeout_s=settings.alert_timeout_seconds, max_attempts=settings.alert_max_attempts,
            retry_s=settings.alert_retry_seconds, retry_max_s=settings.alert_retry_max_seconds,
            rate_per_minute=settings.alert_rate_per_minute,
            max_age_ms=int(settings.alert_max_age_hours * 3_600_000),
            poll_s=settings.alert_poll_seconds,
        )

    def subscribers(self, kind: str, severity: str) -> list[Target]:
        if kind in self.kinds_off:
            return []
        return [t for t in self.targets if t.wants(kind, severity)]

    def backoff_ms(self, attempts: int) -> int:
        """The wait after the ``attempts``-th failed try: doubles from ALERT_RETRY_SECONDS, at
        most ALERT_RETRY_MAX_SECONDS."""
        return int(min(self.retry_max_s, self.retry_s * 2 ** max(0, attempts - 1)) * 1000)


def parse_targets(raw: str) -> tuple[Target, ...]:
    """The targets of an ALERT_URLS value; ConfigError (naming the target by position, never
    quoting its URL) on a malformed one."""
    targets: list[Target] = []
    for position, entry in enumerate(raw.split(), start=1):
        targets.append(_target(entry, position))
    names = [t.name.lower() for t in targets]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"ALERT_URLS: target name {twice[0]!r} is used twice")
    return tuple(targets)


def _target(entry: str, position: int) -> Target:
    where = f"ALERT_URLS target {position}"
    cut = entry.find("://")
    if cut <= 0:
        raise ConfigError(f"{where} is not a URL: expected [NAME[:SEVERITY[:KINDS]]=]scheme://…")
    spec, url = ("", entry)
    if "=" in entry[:cut]:
        spec, url = entry.split("=", 1)
    scheme = url[:url.find("://")]
    if not SCHEME.match(scheme):
        raise ConfigError(f"{where}: {scheme!r} is not a URL scheme")
    name, severity, kinds_text = [*spec.split(":", 2), "", "", ""][:3]
    name = name.strip() or f"{scheme.lower()}-{position}"
    if not NAME.match(name):
        raise ConfigError(f"{where}: name {name!r} must be letters, digits, _ or - (at most 32)")
    where = f"ALERT_URLS target {name!r}"
    kinds = parse_kinds(kinds_text, where=where) if kinds_text.strip() else frozenset(KINDS)
    if not kinds:
        raise ConfigError(f"{where} subscribes to no kind (to add all but some: *,-kind)")
    return Target(
        name=name, scheme=scheme.lower(),
        min_severity=check_severity(severity, where=where) if severity.strip() else "info",
        kinds=kinds, url=url,
    )
