"""Agents and their runs: definitions, the run state machine, process groups, the supervisor."""
