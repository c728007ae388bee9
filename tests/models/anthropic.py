"""Anthropic Messages (``POST /v1/messages``, streamed), as Claude Code calls it."""

from __future__ import annotations

import json
from typing import Any

from tests.models.base import (
    Answer,
    Blocks,
    Fail,
    ScriptedModel,
    Seen,
    Text,
    Tool,
    json_answer,
    not_found,
    sse,
)

MODEL = "claude-opus-5-5"  # Claude Code 2.1.332's default: it prices it, so the run has a cost
Block = dict[str, Any]
_ERRORS = {401: "authentication_error", 429: "rate_limit_error", 529: "overloaded_error"}


class AnthropicModel(ScriptedModel):
    def answer(self, seen: Seen) -> Answer:
        if seen.method != "POST" or not seen.path.startswith("/v1/messages"):
            return not_found(seen)
        reply, usage = self.script.next()
        if isinstance(reply, Fail):
            kind = _ERRORS.get(reply.status, "api_error")
            error = {"type": "error", "error": {"type": kind, "message": reply.message}}
            return json_answer(error, reply.status)
        model = str((seen.body or {}).get("model") or MODEL)
        parts = reply.parts if isinstance(reply, Blocks) else (reply,)
        blocks = [self._block(part, index) for index, part in enumerate(parts)]
        stop = "tool_use" if any(isinstance(part, Tool) for part in parts) else "end_turn"
        if not (seen.body or {}).get("stream"):
            # Claude Code asks again without streaming when a stream broke off.
            whole = {
                "id": f"msg_{self.script.taken:04d}", "type": "message", "role": "assistant",
                "model": model, "content": [block for _, _, block in blocks],
                "stop_reason": stop, "stop_sequence": None,
                "usage": {"input_tokens": usage.input, "output_tokens": usage.output,
                          "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
            }  # fmt: skip
            return json_answer(whole)
        message: dict[str, Any] = {
            "id": f"msg_{self.script.taken:04d}", "type": "message", "role": "assistant",
            "model": model, "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": usage.input, "output_tokens": 1,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
        }  # fmt: skip
        events: list[tuple[str | None, object]] = [
            ("message_start", {"type": "message_start", "message": message})
        ]
        for index, (start, delta, _) in enumerate(blocks):
            events += [
                (
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": start},
                ),
                (
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                ),
                ("content_block_stop", {"type": "content_block_stop", "index": index}),
            ]
        return sse(
            [
                *events,
                (
                    "message_delta",
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": stop, "stop_sequence": None},
                        "usage": {"output_tokens": usage.output},
                    },
                ),
                ("message_stop", {"type": "message_stop"}),
            ]
        )

    def _block(self, part: Text | Tool, index: int) -> tuple[Block, Block, Block]:
        """A content block's start, its one delta, and the whole block."""
        if isinstance(part, Text):
            return (
                {"type": "text", "text": ""},
                {"type": "text_delta", "text": part.text},
                {"type": "text", "text": part.text},
            )
        start = {
            "type": "tool_use",
            "id": f"toolu_{self.script.taken:04d}" + (f"_{index}" if index else ""),
            "name": part.name,
            "input": {},
        }
        delta = {"type": "input_json_delta", "partial_json": json.dumps(part.input)}
        return start, delta, {**start, "input": part.input}
