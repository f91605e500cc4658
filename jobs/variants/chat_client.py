"""An OpenAI-compatible chat-completions client (vLLM, llama.cpp's llama-server, Ollama, TGI,
hosted APIs): bounded concurrency, retries with backoff on 429 and 5xx, a timeout per request,
and every answer cached on disk (:mod:`jobs.variants.reply_cache`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from jobs.variants.reply_cache import ReplyCache, request_key

RETRIED_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 60.0


@dataclass(frozen=True)
class ChatSettings:
    endpoint: str  # the API base (http://127.0.0.1:8000/v1) or the full .../chat/completions URL
    model: str
    api_key: str | None = field(default=None, repr=False)
    timeout: float = 120.0
    retries: int = 4
    backoff: float = 1.0  # seconds before the first retry; doubles each time
    concurrency: int = 4
    temperature: float = 0.7
    max_tokens: int = 2048
    seed: int = 0

    @property
    def url(self) -> str:
        base = self.endpoint.rstrip("/")
        return base if base.endswith("/chat/completions") else f"{base}/chat/completions"

    def body(self, messages: Sequence[dict[str, str]]) -> dict[str, Any]:
        # `seed` makes servers that honour it (vLLM, llama-server, OpenAI) repeat an answer;
        # the cache is what makes a rerun repeat it everywhere.
        return {
            "model": self.model,
            "messages": list(messages),
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "stream": False,
        }


@dataclass(frozen=True)
class ChatReply:
    content: str | None
    error: str | None = None
    cached: bool = False
    attempts: int = 0  # HTTP requests sent for this prompt
    key: str = ""


@dataclass
class ChatCounts:
    sent: int = 0  # HTTP requests, retries included
    cached: int = 0
    failed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, reply: ChatReply) -> None:
        with self.lock:
            self.sent += reply.attempts
            self.cached += reply.cached
            self.failed += reply.error is not None


def _content(response: httpx.Response) -> str:
    data = response.json()
    content = data["choices"][0]["message"]["content"]
    if not isinstance(content, str):
        raise TypeError(f"message content is {type(content).__name__}, not text")
    return content


def _retry_after(response: httpx.Response | None) -> float | None:
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return min(MAX_RETRY_AFTER, max(0.0, float(value))) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


class ChatClient:
    def __init__(self, settings: ChatSettings, cache: ReplyCache) -> None:
        self.settings = settings
        self.cache = cache
        self.counts = ChatCounts()

    def _headers(self) -> dict[str, str]:
        if not self.settings.api_key:
            return {}
        return {"Authorization": f"Bearer {self.settings.api_key}"}

    def _ask(self, client: httpx.Client, messages: Sequence[dict[str, str]]) -> ChatReply:
        body = self.settings.body(messages)
        key = request_key(body)
        hit = self.cache.get(key)
        if hit is not None:
            return ChatReply(hit, cached=True, key=key)
        error = "no attempt"
        for attempt in range(self.settings.retries + 1):
            response = None
            try:
                response = client.post(self.settings.url, json=body, headers=self._headers())
            except httpx.TimeoutException:
                error = f"timeout: no reply within {self.settings.timeout:g}s"
            except httpx.TransportError as exc:
                error = f"connection: {type(exc).__name__}: {exc}"
            else:
                if response.status_code == 200:
                    try:
                        content = _content(response)
                    except (ValueError, KeyError, IndexError, TypeError) as exc:
                        return ChatReply(None, f"malformed reply: {exc}", attempts=attempt + 1)
                    self.cache.put(key, body, content)
                    return ChatReply(content, attempts=attempt + 1, key=key)
                error = f"HTTP {response.status_code}: {response.text[:200]}"
                if response.status_code not in RETRIED_STATUS:
                    return ChatReply(None, error, attempts=attempt + 1, key=key)
            if attempt < self.settings.retries:
                delay = _retry_after(response)
                time.sleep(delay if delay is not None else self.settings.backoff * 2**attempt)
        return ChatReply(None, error, attempts=self.settings.retries + 1, key=key)

    def ask_all(self, prompts: Sequence[Sequence[dict[str, str]]]) -> list[ChatReply]:
        """One reply per prompt, in the prompts' order, at most ``concurrency`` in flight."""
        timeout = httpx.Timeout(self.settings.timeout)
        limits = httpx.Limits(max_connections=self.settings.concurrency)
        with httpx.Client(timeout=timeout, limits=limits) as client:

            def ask(messages: Sequence[dict[str, str]]) -> ChatReply:
                reply = self._ask(client, messages)
                self.counts.add(reply)
                return reply

            with ThreadPoolExecutor(max_workers=self.settings.concurrency) as pool:
                return list(pool.map(ask, prompts))
