"""OpenAI-compatible chat-completions backend (vLLM, llama.cpp server, Ollama, SGLang).

Standard library only (``http.client``): one connection per request, so calls from several
worker threads never share a socket. Streaming (SSE) and plain responses are both parsed;
``delta.tool_calls`` fragments are joined by ``index``; reasoning arrives as
``reasoning_content`` (vLLM, SGLang, llama.cpp) or ``reasoning`` (Ollama, newer vLLM).
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from devices.registry import HomeConfig
from intents.model_tier_base import (
    ModelTier,
    split_reasoning,
)
from intents.model_tier_prompt import (
    build_tools,
    call_schema,
    system_prompt,
    user_message,
)
from intents.model_tier_types import (
    AudioInput,
    ImageInput,
    ModelAnswer,
    ModelQuery,
    ModelTierCancelled,
    ModelTierConfigError,
    ModelTierError,
    ModelTierHTTPError,
    ModelTierProtocolError,
    ModelTierSettings,
    ModelTierTimeout,
    ModelTierUnavailable,
    ToolCall,
)
from intents.schema import Intent

log = logging.getLogger(__name__)

#: Upper bounds on what a server may send us; a misbehaving server must not exhaust memory.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
MAX_LINE_BYTES = 1024 * 1024
_ERROR_BODY_CHARS = 300


@dataclass
class _Accumulator:
    """Joins streamed deltas into one answer."""

    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    model: str = ""
    finished: bool = False

    def add_message(self, msg: dict[str, Any]) -> None:
        if not isinstance(msg, dict):
            raise ModelTierProtocolError("message/delta is not an object")
        if isinstance(msg.get("content"), str):
            self.content.append(msg["content"])
        for key in ("reasoning_content", "reasoning"):
            if isinstance(msg.get(key), str):
                self.reasoning.append(msg[key])
        calls = msg.get("tool_calls") or []
        if not isinstance(calls, list):
            raise ModelTierProtocolError("tool_calls is not a list")
        for pos, tc in enumerate(calls):
            if not isinstance(tc, dict):
                raise ModelTierProtocolError("tool call is not an object")
            # Some servers omit ``index`` in non-streamed messages; position is then the index.
            index = tc.get("index", pos)
            if not isinstance(index, int):
                raise ModelTierProtocolError("tool call index is not an integer")
            slot = self.calls.setdefault(index, {"name": "", "arguments": []})
            fn = tc.get("function") or {}
            if not isinstance(fn, dict):
                raise ModelTierProtocolError("tool call function is not an object")
            if isinstance(fn.get("name"), str):
                slot["name"] += fn["name"]
            args = fn.get("arguments")
            if isinstance(args, str):
                slot["arguments"].append(args)
            elif isinstance(args, dict):  # Ollama sends an object, not a string
                slot["arguments"].append(json.dumps(args))

    def add_chunk(self, chunk: Any, *, streaming: bool) -> None:
        if not isinstance(chunk, dict):
            raise ModelTierProtocolError("response is not a JSON object")
        if "error" in chunk:
            err = chunk["error"]
            msg = err.get("message") if isinstance(err, dict) else err
            raise ModelTierHTTPError(f"server error: {str(msg)[:_ERROR_BODY_CHARS]}")
        if isinstance(chunk.get("model"), str):
            self.model = chunk["model"]
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            raise ModelTierProtocolError("response has no 'choices' list")
        for choice in choices:
            if not isinstance(choice, dict):
                raise ModelTierProtocolError("choice is not an object")
            if choice.get("index", 0) != 0:
                continue
            msg = choice.get("delta" if streaming else "message")
            if msg is not None:
                self.add_message(msg)
            if choice.get("finish_reason"):
                self.finished = True

    def answer(self, fallback_model: str) -> ModelAnswer:
        content, think = split_reasoning("".join(self.content))
        reasoning = " ".join(p for p in ("".join(self.reasoning).strip(), think) if p)
        calls = tuple(
            ToolCall(name=c["name"], arguments="".join(c["arguments"]))
            for _, c in sorted(self.calls.items())
            if c["name"]
        )
        return ModelAnswer(
            tool_calls=calls,
            content=content,
            reasoning=reasoning,
            model=self.model or fallback_model,
        )


class OpenAIModelTier(ModelTier):
    """Calls ``POST {url}/chat/completions`` with the tools of :func:`build_tools`."""

    def __init__(self, settings: ModelTierSettings) -> None:
        super().__init__(settings)
        if not settings.url:
            raise ModelTierConfigError("backend 'openai' needs 'url'")
        parts = urlsplit(settings.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ModelTierConfigError(
                f"url must be http(s)://host[:port]/..., got {settings.url!r}"
            )
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        path = parts.path.rstrip("/")
        if not path.endswith("/chat/completions"):
            path += "/chat/completions"
        self._path = path + (f"?{parts.query}" if parts.query else "")

    # -- request ------------------------------------------------------------------------------

    def build_request(
        self,
        text: str,
        *,
        config: HomeConfig,
        images: Sequence[ImageInput] = (),
        language: str = "en",
        context: Intent | None = None,
        audio: AudioInput | None = None,
    ) -> dict[str, Any]:
        """The JSON body (public so tests and ``--verbose`` logging can show it). ``audio``
        goes as an ``input_audio`` part (base64 WAV) after the transcript and any images: the
        shape vLLM (Qwen2-Audio, Qwen2.5-Omni, Ultravox) and OpenAI's audio models read."""
        s = self.settings
        said = user_message(text, context)
        user: str | list[dict[str, Any]] = said
        if images or audio is not None:
            parts: list[dict[str, Any]] = [{"type": "text", "text": said}]
            parts += [
                {"type": "image_url", "image_url": {"url": img.to_data_url()}} for img in images
            ]
            if audio is not None:
                parts.append(
                    {
                        "type": "input_audio",
                        "input_audio": {"data": audio.to_base64_wav(), "format": "wav"},
                    }
                )
            user = parts
        schema_only = s.output == "json_schema"
        body: dict[str, Any] = {
            "messages": [
                {
                    "role": "system",
                    "content": system_prompt(
                        config, s, language=language, tools_in_prompt=schema_only
                    ),
                },
                {"role": "user", "content": user},
            ],
            "max_tokens": s.max_tokens,
            "temperature": s.temperature,
            "stream": s.stream,
        }
        if schema_only:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": "hearth_call",
                    "strict": True,
                    "schema": call_schema(config, s),
                },
            }
        else:
            body["tools"] = build_tools(config, s)
            body["tool_choice"] = s.tool_choice
        if s.model:
            body["model"] = s.model
        if s.enable_thinking is not None:
            if "chat_template_kwargs" in s.thinking_params:
                body["chat_template_kwargs"] = {"enable_thinking": s.enable_thinking}
            if "top_level" in s.thinking_params:
                body["enable_thinking"] = s.enable_thinking
        if s.return_reasoning:
            # Unknown top-level fields are ignored by vLLM/llama.cpp/Ollama; only sent when
            # asked for, so strict servers keep working by default.
            body["return_reasoning"] = True
        return body

    def _headers(self) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream" if self.settings.stream else "application/json",
        }
        env = self.settings.api_key_env
        if env:
            key = os.environ.get(env)
            if not key:
                raise ModelTierConfigError(f"environment variable {env} (api_key_env) is not set")
            headers["Authorization"] = f"Bearer {key}"
        return headers

    # -- transport ----------------------------------------------------------------------------

    def _ask(self, q: ModelQuery) -> ModelAnswer:
        request = self.build_request(
            q.text, config=q.config, images=q.images, language=q.language, context=q.context,
            audio=q.audio,
        )
        body = json.dumps(request, ensure_ascii=False).encode("utf-8")
        headers = self._headers()
        deadline = time.monotonic() + self.settings.timeout_s
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        conn = cls(self._host, self._port, timeout=self.settings.timeout_s)
        t0 = time.perf_counter()
        try:
            conn.request("POST", self._path, body=body, headers=headers)
            # getresponse() drops conn.sock when the server says "Connection: close"; the
            # socket lives on in the response, and its read timeout must keep shrinking.
            sock = conn.sock
            resp = conn.getresponse()
            if resp.status != 200:
                detail = resp.read(2048).decode("utf-8", "replace")[:_ERROR_BODY_CHARS]
                raise ModelTierHTTPError(
                    f"HTTP {resp.status} from {self._path}: {detail}", status=resp.status
                )
            ctype = resp.getheader("Content-Type", "")
            acc = _Accumulator()
            if "text/event-stream" in ctype:
                self._read_stream(sock, resp, acc, deadline, q.cancel)
            else:
                data = resp.read(MAX_RESPONSE_BYTES + 1)
                if len(data) > MAX_RESPONSE_BYTES:
                    raise ModelTierProtocolError("response too large")
                try:
                    payload = json.loads(data)
                except (json.JSONDecodeError, UnicodeDecodeError) as e:
                    raise ModelTierProtocolError(f"response is not JSON: {e}") from None
                acc.add_chunk(payload, streaming=False)
        except TimeoutError as e:  # socket.timeout is TimeoutError since 3.10
            raise ModelTierTimeout(f"no answer within {self.settings.timeout_s:g} s") from e
        except ModelTierError:
            raise
        except (ConnectionError, socket.gaierror, http.client.HTTPException, OSError) as e:
            raise ModelTierUnavailable(f"{self._host}:{self._port}: {e}") from e
        finally:
            conn.close()
        answer = acc.answer(self.settings.model or "")
        log.debug(
            "model answered in %.3f s: %d call(s)", time.perf_counter() - t0, len(answer.tool_calls)
        )
        return answer

    def _read_stream(
        self,
        sock: socket.socket | None,
        resp: http.client.HTTPResponse,
        acc: _Accumulator,
        deadline: float,
        cancel: threading.Event | None,
    ) -> None:
        total = 0
        data_lines: list[str] = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ModelTierTimeout(f"stream not finished within {self.settings.timeout_s:g} s")
            if cancel is not None and cancel.is_set():
                raise ModelTierCancelled("cancelled while streaming")
            if sock is not None:
                # Each read may wait only for what is left of the overall deadline.
                sock.settimeout(remaining)
            line = resp.readline(MAX_LINE_BYTES + 1)
            total += len(line)
            if len(line) > MAX_LINE_BYTES or total > MAX_RESPONSE_BYTES:
                raise ModelTierProtocolError("stream too large")
            if not line:  # EOF
                if data_lines:
                    self._event(data_lines, acc)
                break
            decoded = line.decode("utf-8", "replace").rstrip("\r\n")
            if decoded == "":  # SSE: a blank line ends an event
                if data_lines and self._event(data_lines, acc):
                    break
                data_lines = []
            elif decoded.startswith("data:"):
                data_lines.append(decoded[5:].lstrip(" "))
            # comments (":") and other fields (event:, id:, retry:) carry nothing for us
        if not acc.calls and not acc.content and not acc.finished:
            raise ModelTierProtocolError("stream ended without any data")

    @staticmethod
    def _event(data_lines: list[str], acc: _Accumulator) -> bool:
        """Handle one SSE event; True at ``[DONE]``."""
        data = "\n".join(data_lines)
        if data.strip() == "[DONE]":
            return True
        try:
            chunk = json.loads(data)
        except json.JSONDecodeError as e:
            raise ModelTierProtocolError(f"stream chunk is not JSON: {e}") from None
        acc.add_chunk(chunk, streaming=True)
        return False
