"""Scripted model servers for the real-agents tier (tests/test_real_agents.py)."""
