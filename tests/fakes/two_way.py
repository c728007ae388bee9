"""A two-way Claude Code session for the fake CLI: ``--input-format stream-json`` with
``--permission-prompt-tool stdio``. SYNTHETIC: written from the Claude Agent SDK's documented
protocol (aios/agents/formats/claude.py describes it), not recorded from the real CLI; its
shape follows what Claude Code 2.1.332 was seen to do (``system/init`` as each turn starts, the
request's ``display_name``, ``description`` and ``permission_suggestions``).

Each stdin line is recorded (``AIOS_FAKE_STDIN_LOG``), so tests see what reached the agent. A
user message whose text starts with ``ask:`` makes the agent want to run that as a Bash command:
it asks through a ``can_use_tool`` control request and waits for the answer; any other message is
echoed back. Each message ends a turn with a ``result``; end of input ends the session.

A request suggests a rule for its command (``permission_suggestions``), as 2.1.332 does, unless
``AIOS_FAKE_NO_SUGGESTIONS`` is set: a CLI that suggests none (an older one) offers no "always".
The fake does not keep the rules an answer sends back: it asks each time.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

SESSION = "2f0e9b1c-6a5d-4c3b-9e8f-7a6b5c4d3e2f"
MODEL = "claude-sonnet-4-5"


def emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def record(line: str) -> None:
    path = os.environ.get("AIOS_FAKE_STDIN_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as log:
            log.write(line.rstrip("\n") + "\n")


def run(args: list[str]) -> int:
    session = args[args.index("--resume") + 1] if "--resume" in args else SESSION
    turns, asked = 0, 0
    for raw in sys.stdin:
        record(raw)
        message = json.loads(raw)
        if message.get("type") == "control_request":  # initialize
            emit(
                {
                    "type": "control_response",
                    "response": {
                        "subtype": "success",
                        "request_id": message["request_id"],
                        "response": {"commands": []},
                    },
                }
            )
            continue
        if message.get("type") != "user":
            continue
        emit({"type": "system", "subtype": "init", "session_id": session, "model": MODEL,
              "cwd": os.getcwd(), "permissionMode": "acceptEdits"})  # fmt: skip
        turns += 1
        text = str(message["message"]["content"])
        denials: list[dict[str, Any]] = []
        if text.startswith("ask:"):
            asked += 1
            command = text.removeprefix("ask:").strip()
            tool_id, request_id = f"toolu_{asked}", f"req-{asked}"
            assistant(session, turns, [{"type": "tool_use", "id": tool_id, "name": "Bash",
                                        "input": {"command": command}}])  # fmt: skip
            rule = {"toolName": "Bash", "ruleContent": command}
            suggestions = [{"type": "addRules", "rules": [rule], "behavior": "allow",
                            "destination": "localSettings"}]  # fmt: skip
            request = {"subtype": "can_use_tool", "tool_name": "Bash", "display_name": "Bash",
                       "input": {"command": command}, "permission_suggestions": suggestions,
                       "decision_reason": "This command requires approval",
                       "tool_use_id": tool_id}  # fmt: skip
            if os.environ.get("AIOS_FAKE_NO_SUGGESTIONS"):
                del request["permission_suggestions"]
            emit({"type": "control_request", "request_id": request_id, "request": request})
            answer = wait_for_answer(request_id)
            if answer.get("behavior") == "allow":
                ran = answer.get("updatedInput", {}).get("command", command)
                result(session, tool_id, f"ran: {ran}", error=False)
                reply = f"I ran {ran}."
            else:
                result(session, tool_id, f"denied: {answer.get('message', '')}", error=True)
                denials.append({"tool_name": "Bash", "tool_use_id": tool_id,
                                "tool_input": {"command": command}})  # fmt: skip
                reply = "I was not allowed to run it."
        else:
            reply = f"You said: {text}"
        assistant(session, turns, [{"type": "text", "text": reply}])
        emit({"type": "result", "subtype": "success", "is_error": False, "num_turns": turns,
              "result": reply, "session_id": session, "total_cost_usd": 0.001 * turns,
              "usage": {"input_tokens": 10 * turns, "output_tokens": 5 * turns},
              "permission_denials": denials})  # fmt: skip
    return 0


def wait_for_answer(request_id: str) -> dict[str, Any]:
    for raw in sys.stdin:
        record(raw)
        message = json.loads(raw)
        response = message.get("response", {})
        if message.get("type") == "control_response" and response.get("request_id") == request_id:
            answer: dict[str, Any] = response.get("response", {})
            return answer
    return {"behavior": "deny", "message": "input closed"}


def assistant(session: str, turn: int, content: list[dict[str, Any]]) -> None:
    usage = {"input_tokens": 10, "output_tokens": 5}
    emit({"type": "assistant", "session_id": session,
          "message": {"id": f"msg_{turn}_{len(content)}", "role": "assistant", "model": MODEL,
                      "content": content, "usage": usage}})  # fmt: skip


def result(session: str, tool_id: str, text: str, *, error: bool) -> None:
    emit({"type": "user", "session_id": session,
          "message": {"role": "user", "content": [{"type": "tool_result",
                                                   "tool_use_id": tool_id, "content": text,
                                                   "is_error": error}]}})  # fmt: skip
