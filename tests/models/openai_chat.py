"""OpenAI Chat Completions (``POST /v1/chat/completions``), as Aider calls it through litellm.

Aider edits files from the answer's words (its edit formats), so its script is :class:`Text`
only: ``whole_file("hello.txt", "hello")`` is an answer in the "whole" edit format.
"""

from __future__ import annotations

import time
from typing import Any

from tests.models.base import Answer, Fail, ScriptedModel, Seen, Text, json_answer, not_found, sse
from tests.models.openai_responses import openai_error

MODEL = "aios-test"  # aider is told ``--model openai/aios-test``


def whole_file(path: str, content: str) -> str:
    """An answer in aider's "whole" edit format that writes ``path``."""
    return f"I will create {path}.\n\n{path}\n```\n{content}\n```\n"


class ChatModel(ScriptedModel):
    def answer(self, seen: Seen) -> Answer:
        if seen.method != "POST" or not seen.path.startswith("/v1/chat/completions"):
            return not_found(seen)
        reply, usage = self.script.next()
        if isinstance(reply, Fail):
            return openai_error(reply)
        assert isinstance(reply, Text), "aider takes words only"
        n, created = self.script.taken, int(time.time())
        counts = {
            "prompt_tokens": usage.input,
            "completion_tokens": usage.output,
            "total_tokens": usage.input + usage.output,
        }
        head: dict[str, Any] = {"id": f"chatcmpl-{n}", "created": created, "model": MODEL}
        if not (seen.body or {}).get("stream"):
            message = {"role": "assistant", "content": reply.text}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            return json_answer(
                {**head, "object": "chat.completion", "choices": [choice], "usage": counts}
            )
        chunk = {**head, "object": "chat.completion.chunk"}
        return sse(
            [
                (
                    None,
                    {
                        **chunk,
                        "choices": [
                            {
                                "index": 0,
                                "delta": {"role": "assistant", "content": reply.text},
                                "finish_reason": None,
                            }
                        ],
                    },
                ),
                (None, {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
                (None, {**chunk, "choices": [], "usage": counts}),
                (None, "[DONE]"),
            ]
        )
