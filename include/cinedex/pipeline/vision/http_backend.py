"""A vision model behind an OpenAI-compatible endpoint (vLLM, SGLang): the window's prompt as chat messages with
the frames as images (`prompt.chat_messages`), the schema as `response_format` for the server to enforce."""

from __future__ import annotations

import logging

from cinedex.pipeline.vision.prompt import chat_messages
from cinedex.pipeline.vision.schema import VisionOptions, WindowResult, window_result, window_schema
from cinedex.pipeline.windows import Window

log = logging.getLogger(__name__)


class VisionEndpointError(RuntimeError):
    """The endpoint could not be reached or refused the request: the task fails (and is retried) rather than
    checkpointing a window as failed."""


class OpenAIBackend:
    """A Qwen3-VL (or other vision model) behind an OpenAI-compatible endpoint (vLLM, SGLang): one chat completion
    per window, constrained to the window's JSON schema by the server; up to `batch_size` requests in flight."""

    retryable_status = frozenset({408, 429, 500, 502, 503, 504})

    def __init__(self, base_url: str, model: str, api_key: str = "", *, tries: int = 4, backoff_s: float = 1.0,
                 timeout_s: float = 600.0):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.tries = max(1, tries)
        self.backoff_s = backoff_s
        self.timeout = timeout_s

    def request(self, window: Window, options: VisionOptions) -> dict:
        _, schema = window_schema(window, options)
        return self._body(chat_messages(window, options), "window_answer", schema, options)

    def _body(self, chat: list[dict], name: str, schema: dict, options: VisionOptions) -> dict:
        return {
            "model": self.model,
            "messages": chat,
            "max_tokens": options.max_new_tokens,
            "temperature": options.temperature,
            "response_format": {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}},
        }

    def write_json(self, chat: list[dict], schema_key: tuple, schema: dict, options: VisionOptions) -> str:
        import httpx

        with httpx.Client(timeout=httpx.Timeout(self.timeout, connect=10.0)) as client:
            reply = self._post(client, self._body(chat, str(schema_key[0]), schema, options))
        try:
            return reply["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError) as error:
            raise VisionEndpointError(f"vision endpoint {self.url}: not a chat completion ({error!r})") from error

    def _post(self, client, body: dict) -> dict:
        import time

        import httpx

        problem = ""
        for attempt in range(self.tries):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                response = client.post(self.url, json=body, headers=self.headers)
            except httpx.TransportError as error:
                problem = f"{type(error).__name__}: {error}"
            else:
                if response.status_code == 200:
                    try:
                        return response.json()
                    except ValueError as error:
                        raise VisionEndpointError(f"vision endpoint {self.url}: not JSON ({error})") from error
                problem = f"HTTP {response.status_code}: {response.text[:300]}"
                if response.status_code not in self.retryable_status:
                    raise VisionEndpointError(f"vision endpoint {self.url} refused the request: {problem}")
            log.warning("vision: %s (try %d of %d): %s", self.url, attempt + 1, self.tries, problem)
        raise VisionEndpointError(f"vision endpoint {self.url} failed after {self.tries} tries: {problem}")

    def _describe_one(self, client, window: Window, options: VisionOptions) -> WindowResult:
        if not window.frames:
            return WindowResult(window_index=window.index, error="window has no frames")
        reply = self._post(client, self.request(window, options))
        try:
            choice = reply["choices"][0]
            raw = choice["message"]["content"] or ""
        except (KeyError, IndexError, TypeError) as error:
            raise VisionEndpointError(f"vision endpoint {self.url}: not a chat completion ({error!r})") from error
        result = window_result(window, raw, options)
        if result.error and choice.get("finish_reason") == "length":
            result.error = "truncated (finish_reason=length); " + result.error
        return result

    def describe(self, windows: list[Window], options: VisionOptions) -> list[WindowResult]:
        from concurrent.futures import ThreadPoolExecutor

        import httpx

        timeout = httpx.Timeout(self.timeout, connect=10.0)
        with httpx.Client(timeout=timeout) as client, \
                ThreadPoolExecutor(max_workers=max(1, min(options.batch_size, len(windows)))) as pool:
            return list(pool.map(lambda w: self._describe_one(client, w, options), windows))
