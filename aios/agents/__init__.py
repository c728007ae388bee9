"""Agents and their runs: what an agent is (``definitions``, ``presets``, ``setup``, and how
each CLI's output reads in ``formats``), the lifecycle core (``lifecycle``, ``learning``,
``effects``: pure, the only writer of run records), its shell (``supervisor``, ``attempt``,
``output``, ``recorder``, ``isolation``), process groups (``spawning``, ``process``,
``pipes``, ``process_groups``, ``watchdog``), sign-in checks (``auth``) and what the shell refuses
(``errors``)."""
