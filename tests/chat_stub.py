"""A small OpenAI-compatible chat-completions server on loopback with scripted answers, for the
template-variant tests: the protocol as vLLM and llama-server speak it (streaming off)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Answer:
    content: str | None = None  # the assistant message; None with an error status
    status: int = 200
    delay: float = 0.0  # seconds before the reply (past the client's timeout: a slow reply)
    headers: dict[str, str] = field(default_factory=dict)


def variants(*texts: str) -> Answer:
    return Answer(json.dumps({"variants": list(texts)}, ensure_ascii=False))


@dataclass
class ChatStub:
    """``script``: (a text the user message holds, the answers in turn; the last repeats)."""

    script: list[tuple[str, list[Answer]]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0
    in_flight: int = 0
    most_in_flight: int = 0  # the most requests the server held at once

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def answer(self, body: dict[str, Any]) -> Answer:
        user = next((m["content"] for m in body["messages"] if m["role"] == "user"), "")
        with self.lock:
            self.requests.append(body)
            for needle, answers in self.script:
                if needle in user:
                    return answers.pop(0) if len(answers) > 1 else answers[0]
        return Answer(None, status=404)


def _handler(stub: ChatStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: object) -> None:
            pass

        def do_POST(self) -> None:
            if self.path != "/v1/chat/completions":
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            assert body.get("stream") is False
            answer = stub.answer(body)
            with stub.lock:
                stub.in_flight += 1
                stub.most_in_flight = max(stub.most_in_flight, stub.in_flight)
            time.sleep(answer.delay)
            with stub.lock:
                stub.in_flight -= 1
            if answer.status != 200:
                self._send(answer.status, {"error": {"message": "scripted"}}, answer.headers)
                return
            message = {"role": "assistant", "content": answer.content}
            self._send(200, {
                "id": "chatcmpl-stub", "object": "chat.completion", "model": body["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            })  # fmt: skip

        def _send(
            self, status: int, data: dict[str, Any], headers: dict[str, str] | None = None
        ) -> None:
            payload = json.dumps(data).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (its timeout): what a real server sees too

    return Handler


@contextmanager
def chat_stub(script: list[tuple[str, list[Answer]]]) -> Iterator[ChatStub]:
    stub = ChatStub(script)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(stub))
    server.daemon_threads = True
    stub.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
