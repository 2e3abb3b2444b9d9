"""Loopback fake model servers that speak the Gemini and OpenAI chat-completions HTTP protocols.

The provider tests and ``bench/llm_tick.py`` point the *real* google-genai and openai SDKs at these
servers, so request building, auth headers, response parsing, timeouts and error mapping are the
SDKs' own. The servers bind 127.0.0.1 only and never reach out.

* Gemini: ``POST /{version}/models/{model}:generateContent``, key in ``x-goog-api-key``; answers a
  ``GenerateContentResponse`` (candidates, finishReason, usageMetadata) or a Google error body.
* OpenAI: ``POST /v1/chat/completions``, key as ``Authorization: Bearer``; answers a
  ``chat.completion`` (choices, finish_reason, usage) or an OpenAI error body. With
  ``reject_json_schema`` it refuses ``response_format: json_schema`` with a 400, like servers that
  only know ``json_object``.

What a server answers is a ``Step``: scripted ones first (``script``), then ``default`` (by default
the echo of the prompt's ``RULE_SIGNAL_JSON:`` line, like the offline provider). A wrong key gets a
401 whose message quotes the key it was sent, so tests can check the desk never repeats it.
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

Protocol = Literal["gemini", "openai"]
GEMINI_PATH = re.compile(r"^/(v1beta|v1|v1alpha)/models/([^/:]+):generateContent$")
OPENAI_PATH = "/v1/chat/completions"
MARKER = "RULE_SIGNAL_JSON:"


@dataclass(frozen=True, slots=True)
class Step:
    """One answer: the model's text (None: no candidate / no content), or an HTTP error status."""

    text: str | None = None
    status: int = 200
    delay: float = 0.0
    finish_reason: str = "STOP"
    message: str = ""
    retry_after: str | None = None  # the Retry-After header of an error
    usage: dict[str, Any] | None = None  # OpenAI only: the usage object as sent (None: counted)


NOW = Step()


@dataclass(frozen=True, slots=True)
class Request:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def prompt(self) -> str:
        """The user prompt the SDK sent, in either protocol."""
        if "contents" in self.body:
            return "".join(p.get("text", "") for c in self.body["contents"] for p in c.get("parts", []))
        return str(self.body.get("messages", [{}])[-1].get("content", ""))


def echo_rule_signal(request: Request) -> Step:
    """Answer with the rule signal the prompt carries (a model that agrees with the rules)."""
    prompt = request.prompt
    at = prompt.find(MARKER)
    if at == -1:
        return Step(text="I see no signal.")
    return Step(text=prompt[at + len(MARKER):].strip().splitlines()[0])


def delayed(seconds: float, inner: Callable[[Request], Step] = echo_rule_signal) -> Callable[[Request], Step]:
    def behaviour(request: Request) -> Step:
        step = inner(request)
        return Step(step.text, step.status, seconds, step.finish_reason, step.message, step.retry_after)
    return behaviour


@dataclass
class FakeLLMServer:
    protocol: Protocol
    api_key: str = "test-key-not-secret"
    default: Callable[[Request], Step] = echo_rule_signal
    reject_json_schema: bool = False
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._script: deque[Step] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        """The base URL to hand the SDK (Gemini: host root; OpenAI: ``.../v1``)."""
        host, port = self._httpd.server_address[:2]
        root = f"http://{host}:{port}"
        return root if self.protocol == "gemini" else f"{root}/v1"

    def script(self, *steps: Step) -> None:
        with self._lock:
            self._script.extend(steps)

    def __enter__(self) -> FakeLLMServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    # ------------------------------------------------------------------------------ serving
    def answer(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> tuple[int, dict[str, Any], Step]:
        request = Request(path, headers, body)
        with self._lock:
            self.requests.append(request)
            scripted = self._script.popleft() if self._script else None
        if self.protocol == "gemini":
            match = GEMINI_PATH.match(path)
            if match is None:
                return 404, _google_error(404, "NOT_FOUND", f"no route {path}"), NOW
            sent = headers.get("x-goog-api-key", "")
            if sent != self.api_key:
                return 401, _google_error(401, "UNAUTHENTICATED", f"API key {sent!r} not valid"), NOW
            model = match.group(2)
        else:
            if path != OPENAI_PATH:
                return 404, _openai_error(f"no route {path}", "not_found"), NOW
            sent = headers.get("authorization", "")
            if sent != f"Bearer {self.api_key}":
                return 401, _openai_error(f"Incorrect API key provided: {sent}", "invalid_api_key"), NOW
            fmt = body.get("response_format") or {}
            if self.reject_json_schema and fmt.get("type") == "json_schema":
                return 400, _openai_error("response_format json_schema is not supported by this "
                                          "server", "invalid_request_error"), NOW
            model = str(body.get("model", ""))
        step = scripted or self.default(request)
        if step.status != 200:
            text = step.message or f"injected HTTP {step.status}"
            error = (_google_error(step.status, "UNAVAILABLE", text) if self.protocol == "gemini"
                     else _openai_error(text, "server_error"))
            return step.status, error, step
        make = _gemini_body if self.protocol == "gemini" else _openai_body
        return 200, make(model, request.prompt, step), step


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _gemini_body(model: str, prompt: str, step: Step) -> dict[str, Any]:
    usage = {"promptTokenCount": _tokens(prompt), "candidatesTokenCount": _tokens(step.text or ""),
             "thoughtsTokenCount": 7}
    usage["totalTokenCount"] = sum(usage.values())
    if step.text is None:
        return {"candidates": [], "promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": usage,
                "modelVersion": model}
    candidate = {"content": {"role": "model", "parts": [{"text": step.text}]},
                 "finishReason": step.finish_reason, "index": 0}
    return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": model}


def _openai_body(model: str, prompt: str, step: Step) -> dict[str, Any]:
    usage = {"prompt_tokens": _tokens(prompt), "completion_tokens": _tokens(step.text or "")}
    usage["total_tokens"] = sum(usage.values())
    finish = "stop" if step.finish_reason == "STOP" else step.finish_reason.lower()
    return {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 1_700_000_000, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": step.text},
                     "finish_reason": finish, "logprobs": None}],
        "usage": usage if step.usage is None else step.usage,
    }


def _google_error(code: int, status: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status}}


def _openai_error(message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": kind}}


def _handler(server: FakeLLMServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                body = {}
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, payload, step = server.answer(self.path.split("?")[0], headers, body)
            if step.delay and server._stopping.wait(step.delay):
                return
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                if step.retry_after is not None and status != 200:
                    self.send_header("retry-after", step.retry_after)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler
