"""The agents AIOS knows out of the box, one table; ``config.toml`` may override or extend it."""

from __future__ import annotations

from aios.agents.definitions import AgentDef
from aios.template import END_OF_OPTIONS, PERMISSION, PROMPT, RESUME


def _preset(
    name: str,
    label: str,
    description: str,
    output: str,
    *command: str,
    terminal: tuple[str, ...] = (),
) -> AgentDef:
    return AgentDef(
        name,
        command,
        "preset",
        description=description,
        label=label,
        format=output,
        terminal_command=terminal,
    )


# One table, so supporting another agent or a changed invocation never touches the supervisor;
# what each CLI's output means lives in aios.agents.formats. Each runs one prompt
# non-interactively, in its machine-readable mode where it has one, and exits; "--" (or aider's
# "--message=") keeps a prompt that starts with "-" a prompt; "{permission}" becomes the CLI's
# own flags for the run's permission (read-only, edit, full).
# ``terminal``: the same CLI in its own interactive interface, for a run in a terminal (checked
# against each pinned CLI's --help): the same permission flags, the prompt its first message.
PRESETS: tuple[AgentDef, ...] = (
    _preset(
        "claude", "Claude Code", "Anthropic's coding agent", "claude-stream-json",
        "claude", "-p", "--output-format", "stream-json", "--verbose", PERMISSION, RESUME,
        END_OF_OPTIONS, PROMPT,
        terminal=("claude", PERMISSION, RESUME, END_OF_OPTIONS, PROMPT),
    ),
    _preset(
        "codex", "Codex CLI", "OpenAI's coding agent", "codex-json",
        "codex", "exec", "--json", PERMISSION, RESUME, END_OF_OPTIONS, PROMPT,
        terminal=("codex", PERMISSION, RESUME, END_OF_OPTIONS, PROMPT),
    ),
    # --no-analytics: with no terminal aider answers its own opt-in question "yes", which is not
    # ours to give; --no-check-update: no network call of its own at every start.
    _preset(
        "aider", "Aider", "AI pair programming", "aider",
        "aider", "--no-analytics", "--no-check-update", PERMISSION, RESUME, "--message={prompt}",
        # Its chat has no option for a first message (--message answers one and exits): the
        # prompt is typed into the chat instead (AgentDef.typed_prompt).
        terminal=("aider", "--no-analytics", "--no-check-update", PERMISSION, RESUME),
    ),
    # --skip-trust: a logged-in gemini otherwise refuses (exit 55) every directory it has not
    # been told to trust, and AIOS launches it in whatever directory the user picked.
    # --prompt=: gemini 0.61 drops whatever follows "--", so the prompt is spliced after "=".
    _preset(
        "gemini", "Gemini CLI", "Google's coding agent", "gemini-stream-json",
        "gemini", "--skip-trust", "-o", "stream-json", PERMISSION, RESUME, "--prompt={prompt}",
        # -i: run the prompt, then stay interactive (-p/--prompt would be headless).
        terminal=(
            "gemini", "--skip-trust", PERMISSION, RESUME, "--prompt-interactive={prompt}"
        ),
    ),
    # The one preset that does use a shell: the prompt *is* the command line the user typed.
    _preset(
        "command", "Command", "Run the prompt as a shell command line", "text",
        "sh", "-c", END_OF_OPTIONS, PROMPT,
    ),
)  # fmt: skip
