"""Agents and their runs: the lifecycle core (``lifecycle``, ``learning``, ``effects``: pure, the
only writer of run records), its shell (``supervisor``, ``attempt``, ``output``, ``recorder``,
``isolation``), process groups (``spawning``, ``process``, ``process_groups``, ``watchdog``) and
the agents' formats."""
