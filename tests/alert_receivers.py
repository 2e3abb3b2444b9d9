"""Real alert receivers on 127.0.0.1 for the alert tests: a JSON webhook (what apprise's
``json://`` posts) that answers, fails with 500 or hangs, and an SMTP server (aiosmtpd) that
keeps every mail it is given. Nothing here listens beyond loopback."""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class Webhook:
    """A loopback JSON receiver. ``mode``: ok (200), error (500) or hang (answers only once
    ``release`` is called, or after ``hang_s``)."""

    mode: str = "ok"
    hang_s: float = 120.0
    received: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    hanging: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                payload = json.loads(self.rfile.read(length) or b"{}")
                hook.received.append(payload)
                hook.paths.append(self.path)
                if hook.mode == "hang":
                    hook.hanging.set()
                    hook.released.wait(hook.hang_s)
                status = 500 if hook.mode == "error" else 200
                body = b'{"error": "receiver down"}' if status == 500 else b"{}"
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the sender gave up waiting and closed the connection
                    pass

            def log_message(self, *_: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook", userinfo: str = "") -> str:
        return f"json://{userinfo}127.0.0.1:{self.port}{path}"

    def titles(self) -> list[str]:
        return [str(p.get("title")) for p in self.received]

    def messages(self) -> list[str]:
        return [str(p.get("message")) for p in self.received]

    def release(self) -> None:
        self.released.set()

    def close(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()


class Mailbox:
    """A loopback SMTP server keeping each mail it accepts."""

    def __init__(self) -> None:
        self.mails: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        box = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                box.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
                box.mails.append(message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[arg-type]
                return "250 OK"

        with socket.socket() as probe:  # aiosmtpd needs the port before it listens
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def url(self) -> str:
        return (f"mailto://127.0.0.1:{self.port}?from=desk@example.com&to=trader@example.com")

    def text_of(self, mail: EmailMessage) -> str:
        part = mail.get_body(preferencelist=("plain",))
        return part.get_content() if part is not None else ""

    def close(self) -> None:
        self.controller.stop()
