"""One target's line to the outside world: an apprise notifier, its timeouts, and what it said.

Why it exists: apprise reports a failed send as ``False`` and explains why only in its log
lines, which may quote the target's URL, host or token (a Discord webhook, a Telegram bot). This
module keeps those lines out of the desk's logs (the ``apprise`` logger does not propagate, and
urllib3, which logs each requested URL, is quiet below errors),
collects them per sending thread, and hands back the reason with every secret part of the
target's URL replaced by ``***``. Timeouts come from ALERT_TIMEOUT_SECONDS unless the URL sets
apprise's own ``cto``/``rto``, so a target that hangs costs its own thread that long, no more.
"""

from __future__ import annotations

import logging
import threading
from urllib.parse import parse_qsl, urlsplit

from core.alerts.targets import Target
from core.errors import ConfigError

_APPRISE_LOG = logging.getLogger("apprise")
_NOTIFY_TYPES = {"info": "INFO", "warning": "WARNING", "critical": "FAILURE"}  # apprise.NotifyType
DETAIL_MAX = 600


class _PerThread(logging.Handler):
    """Keeps the apprise log lines of each thread that asked for them."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: dict[int, list[logging.LogRecord]] = {}
        self.guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self.guard:
            lines = self.lines.get(threading.get_ident())
            if lines is not None:
                lines.append(record)

    def begin(self) -> None:
        with self.guard:
            self.lines[threading.get_ident()] = []

    def end(self) -> list[logging.LogRecord]:
        with self.guard:
            return self.lines.pop(threading.get_ident(), [])


_CAPTURE = _PerThread()
_APPRISE_LOG.addHandler(_CAPTURE)
_APPRISE_LOG.setLevel(logging.DEBUG)
_APPRISE_LOG.propagate = False  # its lines may quote a target's secrets
# apprise sends through requests, whose urllib3 logs every URL it requests at debug level: a
# Telegram bot token or a webhook key is in that path. Nothing else in the desk uses urllib3.
logging.getLogger("urllib3").setLevel(logging.ERROR)


class Channel:
    """Sends messages to one target; ``send`` returns None when it went out, else why not."""

    def __init__(self, target: Target, timeout_s: float) -> None:
        import apprise  # here: only a process with targets pays for loading it

        self.target = target
        _CAPTURE.begin()
        try:
            plugin = apprise.Apprise.instantiate(target.url, suppress_exceptions=True)
        finally:
            _CAPTURE.end()
        if plugin is None:
            raise ConfigError(f"ALERT_URLS target {target.name!r}: apprise cannot use this "
                              f"{target.scheme}:// URL (see the apprise documentation for it)")
        given = {k.lower() for k, _ in parse_qsl(urlsplit(target.url).query)}
        if "cto" not in given:
            plugin.socket_connect_timeout = timeout_s
        if "rto" not in given:
            plugin.socket_read_timeout = timeout_s
        self.service = str(getattr(plugin, "service_name", target.scheme))
        self._plugin = plugin
        self._types = {k: getattr(apprise.NotifyType, v) for k, v in _NOTIFY_TYPES.items()}
        self._lock = threading.Lock()  # one send at a time per notifier (apprise's throttle)

    def send(self, title: str, body: str, severity: str) -> str | None:
        _CAPTURE.begin()
        try:
            with self._lock:
                ok = bool(self._plugin.notify(body=body, title=title,
                                              notify_type=self._types.get(severity,
                                                                          self._types["info"])))
        except Exception as exc:  # a plugin's bug must not end the sender
            _CAPTURE.end()
            return self.target.scrub(f"{type(exc).__name__}: {exc}")[:DETAIL_MAX]
        lines = _CAPTURE.end()
        if ok:
            return None
        return self._reason(lines)

    def _reason(self, lines: list[logging.LogRecord]) -> str:
        """Apprise's warnings, and the underlying exception or response it logged at debug."""
        said = [r.getMessage() for r in lines if r.levelno >= logging.WARNING]
        said += [r.getMessage() for r in lines if r.levelno < logging.WARNING
                 and ("Exception" in r.getMessage() or "Response Details" in r.getMessage())]
        text = " ".join(" ".join(s.split()) for s in said) or "the target refused the message"
        return self.target.scrub(text)[:DETAIL_MAX]
