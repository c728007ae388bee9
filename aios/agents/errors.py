"""What can go wrong when asking the supervisor for something, and the HTTP status it maps to.

SupervisorError
├── UnknownAgent        404  no such agent name
├── InvalidLaunch       422  agent unavailable, prompt missing, bad working directory
├── QueueFull           429  too many runs already waiting
├── WrongRunState       409  stopping a finished run, deleting a live one
├── WorktreeRefused     409  merge, discard or open refused (git's words when git said no)
├── NoChanges           404  a diff asked of a run that recorded none
└── ShuttingDown        503  a launch while the daemon shuts down
"""

from __future__ import annotations


class SupervisorError(Exception):
    status = 400


class UnknownAgent(SupervisorError):
    status = 404

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown agent {name!r}; `aios agents` lists them")


class InvalidLaunch(SupervisorError):
    status = 422


class QueueFull(SupervisorError):
    status = 429

    def __init__(self, limit: int) -> None:
        super().__init__(f"the queue is full ({limit} runs waiting); try again later")


class WrongRunState(SupervisorError):
    status = 409


class WorktreeRefused(SupervisorError):
    status = 409


class NoChanges(SupervisorError):
    status = 404


class ShuttingDown(SupervisorError):
    status = 503

    def __init__(self) -> None:
        super().__init__("AIOS is shutting down; no new runs start")
