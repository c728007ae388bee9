"""Agents and their runs: the lifecycle core (``lifecycle``, ``learning``, ``effects``: pure, the
only writer of run records), its shell (``supervisor``, ``attempt``, ``output``, ``recorder``,
``isolation``), process groups (``process``, ``watchdog``) and the agents' formats."""
