"""Whether a terminal agent's program is blocked reading its terminal, found as the shell finds
it (aios.agents.input_wait): real programs on a real pseudo-terminal."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from aios.agents.input_wait import reads_terminal
from aios.agents.process import AgentProcess
from aios.agents.spawning import spawn

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")

PROGRAMS = {
    "input()": "print('ready', flush=True); input()",  # a read on the terminal
    "select": (  # a poll on the terminal, as a TUI or readline waits for keys
        "import select, sys; print('ready', flush=True); select.select([sys.stdin], [], [])"
    ),
    "sleeping": "import time; print('ready', flush=True); time.sleep(60)",  # quiet, not reading
    "busy": "print('ready', flush=True)\nwhile True: pass",  # quiet, computing
    "child reads": (  # the program waits for its child, which reads the terminal
        "import subprocess, sys; print('ready', flush=True); "
        "subprocess.run([sys.executable, '-c', 'input()'])"
    ),
}
READING = {"input()": True, "select": True, "sleeping": False, "busy": False, "child reads": True}


async def looked_at(source: str) -> bool:
    agent = await spawn([sys.executable, "-c", source], cwd=Path.cwd(), env=dict(os.environ),
                        terminal=(80, 24))  # fmt: skip
    try:
        async with asyncio.timeout(10):
            while b"ready" not in await agent.read():
                pass
        return await settled(agent)
    finally:
        await agent.stop(timeout=0)
        agent.close()


async def settled(agent: AgentProcess) -> bool:
    """What the look finds once the program had a moment to reach where it waits: the same
    answer five times in a row (a program on its way there may be caught running)."""
    assert agent.tty is not None
    answers: list[bool] = []
    async with asyncio.timeout(10):
        while len(answers) < 5 or len(set(answers[-5:])) > 1:
            foreground = agent.foreground_group()
            assert foreground is not None
            answers.append(
                await asyncio.to_thread(reads_terminal, agent.pid, foreground, agent.tty)
            )
            await asyncio.sleep(0.05)
    return answers[-1]


@pytest.mark.parametrize("name", list(PROGRAMS))
async def test_a_program_blocked_reading_its_terminal_is_found_so(name: str) -> None:
    assert await looked_at(PROGRAMS[name]) is READING[name]
