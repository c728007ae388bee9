"""What can go wrong when asking the supervisor for something.

The server answers each with an HTTP status (``aios.server.errors.STATUS``); nothing here knows
HTTP.

SupervisorError
├── UnknownAgent        no such agent name
├── InvalidLaunch       agent unavailable, prompt missing, bad working directory
├── QueueFull           too many runs already waiting
├── WrongRunState       stopping a finished run, deleting a live one
├── WorktreeRefused     merge, discard or open refused (git's words when git said no)
├── NoChanges           a diff asked of a run that recorded none
└── ShuttingDown        a launch while the daemon shuts down
"""

from __future__ import annotations


class SupervisorError(Exception):
    pass


class UnknownAgent(SupervisorError):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown agent {name!r}; `aios agents` lists them")


class InvalidLaunch(SupervisorError):
    pass


class QueueFull(SupervisorError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the queue is full ({limit} runs waiting); try again later")


class WrongRunState(SupervisorError):
    pass


class WorktreeRefused(SupervisorError):
    pass


class NoChanges(SupervisorError):
    pass


class ShuttingDown(SupervisorError):
    def __init__(self) -> None:
        super().__init__("AIOS is shutting down; no new runs start")
