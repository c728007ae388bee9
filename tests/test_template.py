"""Command templates: where the prompt and the permission go, and what could misread a prompt."""

from __future__ import annotations

import pytest

from aios import template


@pytest.mark.parametrize(
    "command",
    [
        ["tool", "--", "{prompt}"],
        ["aider", "--message={prompt}"],
        ["tool", "-m={prompt}"],
        ["tool", "--flag"],  # no prompt at all
    ],
)
def test_safe_commands_have_no_warnings(command: list[str]) -> None:
    assert template.warnings(command) == []


@pytest.mark.parametrize(
    ("command", "words"),
    [
        (["claude", "-p", "{prompt}"], '"--" before "{prompt}"'),
        (["tool", "{prompt}", "--", "x"], '"--" before "{prompt}"'),
        (["tool", "--msg", "x{prompt}"], "'x{prompt}' stays literal"),
        (["tool", "--msg={prompt}.txt"], "stays literal"),
    ],
)
def test_risky_commands_are_warned_about(command: list[str], words: str) -> None:
    assert any(words in warning for warning in template.warnings(command))


def test_expand_replaces_prompt_splice_and_permission() -> None:
    command = ["tool", "{permission}", "--message={prompt}", "--", "{prompt}", "{prompt}x"]
    assert template.expand(command, "-v it", ["--mode", "edit"]) == [
        "tool", "--mode", "edit", "--message=-v it", "--", "-v it", "{prompt}x"
    ]  # fmt: skip
    assert template.expand(["tool", "{permission}", "{prompt}"], "p") == ["tool", "p"]
    assert template.takes_prompt(["a", "--m={prompt}"])
    assert not template.takes_prompt(["a", "x{prompt}"])
