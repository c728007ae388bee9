"""Agents and their runs: what an agent is (``definitions``, ``presets``, ``setup``, and how
each CLI's output reads in ``formats``), the lifecycle core (``lifecycle``: pure, fed events),
its shell (``supervisor``, ``output``, ``isolation``), process groups (``process``,
``watchdog``), sign-in checks (``auth``) and what the shell refuses (``errors``)."""
