"""Hooks: tell other programs (a script, a chat channel, a phone) when a run changes.

- ``spec``: a hook as ``config.toml`` declares it (``[[hooks]]``), and how it is shown masked;
- ``mask``: secrets in addresses and headers, hidden for display and logs;
- ``message``: the event a hook receives, and its bodies (json, ntfy, slack);
- ``delivery``: one delivery, to a command or a URL, and what came of it;
- ``dispatcher``: listens to the event bus, decides which hooks an event is for, and delivers
  them off to the side, a few at a time, so no hook ever delays anything else.

Nothing here imports the server: the daemon owns a dispatcher and the server asks the daemon.
"""

from __future__ import annotations

from aios.hooks.dispatcher import Dispatcher
from aios.hooks.spec import EVENTS, FORMATS, Hook

__all__ = ["EVENTS", "FORMATS", "Dispatcher", "Hook"]
