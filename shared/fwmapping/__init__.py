"""Flywheel mapping rules shared by the agent and every gear."""
