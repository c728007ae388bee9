"""OpenAI Responses (``POST /v1/responses``, streamed), as Codex CLI calls it.

A file write is the ``apply_patch`` custom tool (``Tool("apply_patch", "*** Begin Patch…")``);
a shell command the ``exec_command`` function (``Tool("exec_command", {"cmd": …})``).
"""

from __future__ import annotations

import json
from typing import Any

from tests.models.base import (
    Answer,
    Fail,
    ScriptedModel,
    Seen,
    Text,
    Tool,
    json_answer,
    not_found,
    sse,
)

MODEL = "gpt-5.5"  # a slug Codex CLI 0.171.0 knows: it then offers apply_patch


def add_file(path: str, content: str) -> str:
    """An ``apply_patch`` input that creates ``path``."""
    lines = "".join(f"+{line}\n" for line in content.splitlines())
    return f"*** Begin Patch\n*** Add File: {path}\n{lines}*** End Patch\n"


def openai_error(reply: Fail) -> Answer:
    """An error as both of OpenAI's APIs write one: its type says what went wrong (clients such
    as litellm go by it, and a 500 typed ``invalid_request_error`` reads as a bad request)."""
    kind, code = {
        401: ("invalid_request_error", "invalid_api_key"),
        429: ("requests", "rate_limit_exceeded"),
    }.get(reply.status, ("server_error", "server_error"))
    error = {"message": reply.message, "type": kind, "param": None, "code": code}
    return json_answer({"error": error}, reply.status)


class ResponsesModel(ScriptedModel):
    def answer(self, seen: Seen) -> Answer:
        if seen.method != "POST" or not seen.path.startswith("/v1/responses"):
            return not_found(seen)
        reply, usage = self.script.next()
        if isinstance(reply, Fail):
            return openai_error(reply)
        n = self.script.taken
        item: dict[str, Any]
        if isinstance(reply, Text):
            item = {
                "type": "message", "id": f"msg_{n}", "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "text": reply.text, "annotations": []}],
            }  # fmt: skip
        elif isinstance(reply, Tool) and isinstance(reply.input, str):
            item = {
                "type": "custom_tool_call", "id": f"ctc_{n}", "call_id": f"call_{n}",
                "name": reply.name, "input": reply.input, "status": "completed",
            }  # fmt: skip
        else:
            assert isinstance(reply, Tool)
            item = {
                "type": "function_call", "id": f"fc_{n}", "call_id": f"call_{n}",
                "name": reply.name, "arguments": json.dumps(reply.input), "status": "completed",
            }  # fmt: skip
        response: dict[str, Any] = {
            "id": f"resp_{n}", "object": "response", "status": "in_progress",
            "model": (seen.body or {}).get("model") or MODEL, "output": [],
        }  # fmt: skip
        done = {
            **response,
            "status": "completed",
            "output": [item],
            "usage": {
                "input_tokens": usage.input,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": usage.output,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": usage.input + usage.output,
            },
        }
        events: list[tuple[str | None, object]] = [
            ("response.created", {"type": "response.created", "response": response}),
            (
                "response.output_item.added",
                {"type": "response.output_item.added", "output_index": 0, "item": item},
            ),
        ]
        if isinstance(reply, Text):
            events.append(
                (
                    "response.output_text.delta",
                    {"type": "response.output_text.delta", "item_id": item["id"], "output_index": 0,
                     "content_index": 0, "delta": reply.text},
                )
            )  # fmt: skip
        events += [
            (
                "response.output_item.done",
                {"type": "response.output_item.done", "output_index": 0, "item": item},
            ),
            ("response.completed", {"type": "response.completed", "response": done}),
        ]
        return sse(events)
