"""Gemini ``generateContent`` and ``streamGenerateContent?alt=sse``, as Gemini CLI calls them.

Gemini CLI first asks a router model (``generateContent`` in JSON mode) which model to use:
that call is answered here, outside the script; the conversation is ``streamGenerateContent``.
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

_STATUS = {401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 429: "RESOURCE_EXHAUSTED"}


class GeminiModel(ScriptedModel):
    def answer(self, seen: Seen) -> Answer:
        if seen.method != "POST" or not seen.path.startswith("/v1beta/models/"):
            return not_found(seen)
        if ":generateContent" in seen.path:
            # The router's JSON-mode question (and any other side question): pick flash.
            # Both of its routing strategies' fields; no tokens, so a run's count is the script's.
            choice = {
                "model_choice": "flash",
                "reasoning": "a small task",
                "complexity_reasoning": "a small task",
                "complexity_score": 10,
            }
            none = {"promptTokenCount": 0, "candidatesTokenCount": 0, "totalTokenCount": 0}
            return json_answer(candidate([{"text": json.dumps(choice)}], none))
        if ":streamGenerateContent" not in seen.path:
            return not_found(seen)
        reply, usage = self.script.next()
        if isinstance(reply, Fail):
            status = _STATUS.get(reply.status, "INTERNAL")
            error = {"code": reply.status, "message": reply.message, "status": status}
            return json_answer({"error": error}, reply.status)
        if isinstance(reply, Text):
            parts: list[dict[str, Any]] = [{"text": reply.text}]
        else:
            assert isinstance(reply, Tool), "one part per answer"
            parts = [{"functionCall": {"name": reply.name, "args": reply.input}}]
        counts = {
            "promptTokenCount": usage.input,
            "candidatesTokenCount": usage.output,
            "totalTokenCount": usage.input + usage.output,
        }
        return sse([(None, candidate(parts, counts))])


def candidate(parts: list[dict[str, Any]], usage: dict[str, int]) -> dict[str, Any]:
    return {
        "candidates": [
            {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
        ],
        "usageMetadata": usage,
        "modelVersion": "gemini-2.5-flash",
    }
